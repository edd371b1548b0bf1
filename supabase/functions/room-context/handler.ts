import { requireUserOrService } from "../_shared/auth.ts";
import { asCaller } from "../_shared/db.ts";
import { handle, json } from "../_shared/http.ts";
import { intParam, parse, queryOf, z } from "../_shared/validation.ts";

const query = z.object({
  room_id: z.guid(),
  chat_limit: intParam(1, 200).default(50),
  history_limit: intParam(1, 50).default(10),
});

/**
 * GET /functions/v1/room-context?room_id=&chat_limit=50&history_limit=10: everything a late
 * joiner needs in one call and one database round trip (edge.room_context), read as the
 * caller so RLS and the room channel's rules apply.
 */
export const handler = handle({
  GET: async (req) => {
    const claims = await requireUserOrService(req);
    const { room_id, chat_limit, history_limit } = parse(query, queryOf(req));
    const context = await asCaller<Record<string, unknown>>(
      claims,
      (sql) => sql`edge.room_context(${room_id}, ${chat_limit}, ${history_limit})`,
      req,
    );
    return json(200, context);
  },
});
