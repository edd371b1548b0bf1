import { get, handle } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";
import { intParam, z } from "../_shared/validation.ts";

const query = z.object({
  room_id: z.guid(),
  chat_limit: intParam(1, 200).default(50),
  history_limit: intParam(1, 50).default(10),
});

/**
 * GET /functions/v1/room-context?room_id=&chat_limit=50&history_limit=10: everything a late
 * joiner needs in one call and one database round trip (edge.room_context), read as the
 * caller so RLS and the room channel's rules apply. The snapshot is answered as SQL built it.
 */
export const handler = handle(get(
  { caller: "user_or_service", query },
  async ({ query: { room_id, chat_limit, history_limit }, call }) => {
    const context = await call((sql) =>
      sql`edge.room_context(${room_id}, ${chat_limit}, ${history_limit})`
    );
    return json(200, context);
  },
));
