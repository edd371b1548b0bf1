import { requireUserOrService } from "../_shared/auth.ts";
import { asCaller } from "../_shared/db.ts";
import { handle, json, readJson } from "../_shared/http.ts";
import { parse, z } from "../_shared/validation.ts";
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
export const handler = handle({
  POST: async (req) => {
    const claims = await requireUserOrService(req);
    const state = parse(body, await readJson(req, 4096));
    const result = await asCaller<SetPlaybackResult>(
      claims,
      (sql) =>
        sql`edge.set_playback(${state.room_id}, ${state.song_id}, ${state.position_ms},
                              ${state.is_playing}, ${state.seq})`,
      req,
    );
    if (result.flush_in_ms !== null) requestFlush(result.channel, result.flush_in_ms);
    return json(202, { applied: result.applied, state: result.state });
  },
});
