import type { JsonArray } from "../_shared/db.ts";
import { handle, post } from "../_shared/http.ts";
import { json } from "../_shared/responses.ts";
import { jsonObject, z } from "../_shared/validation.ts";

// 50 messages of a few KiB each; a channel's own payload limit (64 KiB by default) is the rule's.
const maxBodyBytes = 1024 * 1024;

const message = z.object({
  channel: z.string().min(1).max(200),
  event: z.string()
    .regex(/^[A-Za-z0-9:_.-]{1,100}$/, "1 to 100 of A-Z a-z 0-9 : _ . -")
    .refine(
      (event) => !/^(chat|playback|presence):/.test(event),
      "chat:, playback: and presence: events are the backend's own.",
    ),
  payload: jsonObject(),
  push: jsonObject().optional(),
  id: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, "1 to 64 of A-Z a-z 0-9 : _ -").optional(),
});
const body = z.union([
  z.object({ messages: z.array(message.strict()).min(1).max(50) }).strict(),
  message.strict(),
]);

/** What edge.publish answers. */
interface PublishResult {
  published: {
    id: string;
    channel: string;
    event: string;
    timestamp: number;
    duplicate: boolean;
  }[];
}

/**
 * POST /functions/v1/publish {channel, event, payload, push?, id?} or {messages: [...]} (1..50):
 * publishes through each channel's rule (edge.publish as the caller: publish right, identified,
 * TLS, payload limit, push, history and persist last, rate limit), all or nothing, in order.
 * A resent `id` on a channel answers duplicate: true and is not published again.
 */
export const handler = handle(post(
  { caller: "user_or_service", body, maxBytes: maxBodyBytes },
  async ({ body: request, call }) => {
    const messages = "messages" in request ? request.messages : [request];
    const result = await call<PublishResult>(
      (sql) => sql`edge.publish(${sql.json(messages as JsonArray)})`,
    );
    return json(202, result);
  },
));
