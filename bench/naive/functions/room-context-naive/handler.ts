// The seed's getRecentContext (shared/reference/seed-pusher-ably-patterns.md §5) as an Edge
// Function, for bench/late-joiner.ts to set against room-context: three queries issued one after
// another, each in its own transaction as the caller, as supabase-js → PostgREST would run them
// (PostgREST makes every request its own transaction with the JWT's role and claims). The
// queries are the seed's, ordering included (created_at, played_at). Benchmark only.
import type { Claims } from "../../../../supabase/functions/_shared/auth.ts";
import type postgres from "npm:postgres@3.4.9";
import { db } from "../../../../supabase/functions/_shared/db.ts";
import { get, handle } from "../../../../supabase/functions/_shared/http.ts";
import { json } from "../../../../supabase/functions/_shared/responses.ts";
import { z } from "../../../../supabase/functions/_shared/validation.ts";

const query = z.object({ room_id: z.guid() });

/** A request as PostgREST runs it: one transaction, the JWT's role and claims (and the request's
 * headers) set first, then the query, planned as the caller, so RLS applies. */
function asPostgrest(
  claims: Claims,
  read: (tx: postgres.TransactionSql) => Promise<postgres.Row[]>,
): Promise<postgres.Row[]> {
  return db().begin(async (tx) => {
    await tx`select set_config('role', ${claims.role}, true),
                    set_config('request.jwt.claims', ${JSON.stringify(claims)}, true),
                    set_config('request.headers', '{"x-forwarded-proto":"https"}', true)`;
    return await read(tx);
  }) as Promise<postgres.Row[]>;
}

export const handler = handle(get(
  { caller: "any_token", query },
  async ({ claims, query: { room_id } }) => {
    // from('messages').select('*').eq('room_id', id).order('created_at', desc).limit(50)
    const chat = await asPostgrest(
      claims,
      (tx) =>
        tx`select * from public.messages where room_id = ${room_id}
           order by created_at desc limit 50`,
    );
    // from('play_history').select('*, songs(*)').eq('room_id', id).order('played_at', desc)
    // .limit(10): PostgREST embeds the to-one song as one JSON object per row.
    const history = await asPostgrest(
      claims,
      (tx) =>
        tx`select h.*, (select to_jsonb(s) from public.songs s where s.id = h.song_id) as songs
           from public.play_history h where h.room_id = ${room_id}
           order by h.played_at desc limit 10`,
    );
    // getRoomState(roomId): the room's playback state.
    const [current] = await asPostgrest(
      claims,
      (tx) => tx`select * from public.playback_state where room_id = ${room_id}`,
    );
    return json(200, { chat: [...chat].reverse(), history, current: current ?? null });
  },
));
