import { handle, post } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";
import { z } from "../_shared/validation.ts";
import { requestFlush } from "../_shared/windows.ts";

const body = z.object({
  room_id: z.guid(),
  song_id: z.guid().nullable(),
  position_ms: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  is_playing: z.boolean(),
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

/** What edge.set_playback answers. */
interface SetPlaybackResult {
  applied: boolean;
  state: Record<string, unknown>;
  channel: string;
  flush_in_ms: number | null;
}

/**
 * POST /functions/v1/playback {room_id, song_id, position_ms, is_playing, seq}: the host's
 * player state, applied when seq is newer than the stored one (edge.set_playback). A new song
 * or play/pause is broadcast by that call, before the response; positions go through the room's
 * conflation window, which this call flushes when it opened it.
 */
export const handler = handle(post(
  { caller: "user_or_service", body, maxBytes: 4096 },
  async ({ body: state, call }) => {
    const result = await call<SetPlaybackResult>((sql) =>
      sql`edge.set_playback(${state.room_id}, ${state.song_id}, ${state.position_ms},
                            ${state.is_playing}, ${state.seq})`
    );
    if (result.flush_in_ms !== null) requestFlush(result.channel, result.flush_in_ms);
    return json(202, { applied: result.applied, state: result.state });
  },
));
