import type { JsonArray } from "../_shared/db.ts";
import { handle, post } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";
import { jsonObject, z } from "../_shared/validation.ts";
import { requestFlush } from "../_shared/windows.ts";

/** The request body (the benchmarks' naive chat-send takes the same). */
export const chatSendBody = z.object({
  room_id: z.guid(),
  messages: z.array(z.object({
    client_id: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, "1 to 64 of A-Z a-z 0-9 : _ -"),
    body: z.string().min(1).max(2000).refine((text) => text.trim() !== "", "The body is blank."),
    push: jsonObject().optional(),
  })).min(1).max(50),
});

/** What edge.send_chat answers. */
interface SendChatResult {
  accepted: { client_id: string; id: number; created_at: string; duplicate: boolean }[];
  channel: string;
  flush_in_ms: number;
}

/**
 * POST /functions/v1/chat-send {room_id, messages: [{client_id, body, push?}]}: stores the
 * messages at once (202 means durable; a resent client_id returns the stored message with
 * duplicate: true) through edge.send_chat as the caller, then has the room flushed when its
 * interval allows (private.flush_window numbers what waits and sends it as chat:batch).
 */
export const handler = handle(post(
  { caller: "user_or_service", body: chatSendBody, maxBytes: 64 * 1024 },
  async ({ body: { room_id, messages }, call }) => {
    const result = await call<SendChatResult>(
      (sql) => sql`edge.send_chat(${room_id}, ${sql.json(messages as JsonArray)})`,
    );
    requestFlush(result.channel, result.flush_in_ms);
    return json(202, { accepted: result.accepted });
  },
));
