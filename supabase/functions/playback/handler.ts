import { requireUserOrService } from "../_shared/auth.ts";
import { asCaller } from "../_shared/db.ts";
import { handle, json, readJson } from "../_shared/http.ts";
import { parse, z } from "../_shared/validation.ts";
import { flushNow, scheduleFlush } from "../_shared/windows.ts";

const body = z.object({
  room_id: z.guid(),
  song_id: z.guid().nullable(),
  position_ms: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  is_playing: z.boolean(),
  seq: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
});

/**
 * POST /functions/v1/playback {room_id, song_id, position_ms, is_playing, seq}: the host's
 * player state, applied when seq is newer than the stored one (public.set_playback). A new song
 * or play/pause is flushed at once, before the response; positions go through the room's
 * conflation window, whose flush sends the latest state.
 */
export const handler = handle({
  POST: async (req) => {
    const claims = await requireUserOrService(req);
    const state = parse(body, await readJson(req, 4096));
    const [{ result }] = await asCaller(
      claims,
      (tx) =>
        tx`select public.set_playback(${state.room_id}, ${state.song_id}, ${state.position_ms},
                                      ${state.is_playing}, ${state.seq}) as result`,
      req,
    );
    // A new song or play/pause goes out before the host hears back; positions wait for their
    // window.
    const next = result.flush_now ? await flushNow(result.channel) : result.flush_in_ms;
    if (next !== null) scheduleFlush(result.channel, next);
    return json(202, { applied: result.applied, state: result.state });
  },
});
