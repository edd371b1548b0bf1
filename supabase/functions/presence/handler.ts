import { HttpError } from "../_shared/errors.ts";
import { get, handle, post } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";
import { jsonObject, z } from "../_shared/validation.ts";

const connectionId = z.string().regex(/^[A-Za-z0-9_-]{8,64}$/, "8 to 64 of A-Z a-z 0-9 _ -");

const body = z.discriminatedUnion("action", [
  z.object({
    action: z.literal("join"),
    room_id: z.guid(),
    connection_id: connectionId,
    user_id: z.guid().optional(),
    user_info: jsonObject().optional(),
  }),
  z.object({ action: z.literal("heartbeat"), room_id: z.guid(), connection_id: connectionId }),
  z.object({ action: z.literal("leave"), room_id: z.guid(), connection_id: connectionId }),
]);

const maxUserInfoBytes = 1024;

/**
 * POST /functions/v1/presence {action: join | heartbeat | leave, room_id, connection_id,
 * user_id?, user_info?} and GET /functions/v1/presence?room_id=: validated presence, stored in
 * Postgres (edge.presence_*), counting users rather than connections, with no member cap.
 */
export const handler = handle(
  post(
    { caller: "user_or_service", body, maxBytes: 8 * 1024 },
    async ({ claims, body: request, call }) => {
      let result;
      if (request.action === "join") {
        // The claimed identity must be the session's: nobody joins as someone else.
        if (request.user_id !== undefined && request.user_id !== claims.sub) {
          throw new HttpError(403, "user_id_mismatch", "user_id must be the signed-in user's id.");
        }
        const info = request.user_info ?? {};
        if (new TextEncoder().encode(JSON.stringify(info)).length > maxUserInfoBytes) {
          throw new HttpError(
            413,
            "user_info_too_large",
            "user_info is at most 1024 bytes as JSON.",
          );
        }
        result = await call((sql) =>
          sql`edge.presence_join(${request.room_id}, ${request.connection_id},
                                 ${JSON.stringify(info)}::text::json)`
        );
      } else if (request.action === "heartbeat") {
        result = await call((sql) =>
          sql`edge.presence_heartbeat(${request.room_id}, ${request.connection_id})`
        );
      } else {
        result = await call((sql) =>
          sql`edge.presence_leave(${request.room_id}, ${request.connection_id})`
        );
      }
      return json(200, result);
    },
  ),
  get(
    { caller: "user_or_service", query: z.object({ room_id: z.guid() }) },
    async ({ query: { room_id }, call }) =>
      json(200, await call((sql) => sql`edge.presence_get(${room_id})`)),
  ),
);
