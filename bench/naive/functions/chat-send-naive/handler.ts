// chat-send without batching, for bench/ingest.ts to set against the real one: the same request,
// validation, checks, rate limit and idempotent insert (bench/naive/sql.ts has the SQL), but
// every stored message is broadcast at once with its own realtime.send, in the request's
// transaction: no window, no flush. Benchmark only.
import type { JsonArray } from "../../../../supabase/functions/_shared/db.ts";
import { handle, post } from "../../../../supabase/functions/_shared/http.ts";
import { json } from "../../../../supabase/functions/_shared/responses.ts";
import { chatSendBody } from "../../../../supabase/functions/chat-send/handler.ts";

export const handler = handle(post(
  { caller: "user_or_service", body: chatSendBody, maxBytes: 64 * 1024 },
  async ({ body: { room_id, messages }, call }) => {
    const result = await call<{ accepted: unknown[] }>(
      (sql) => sql`bench.send_chat_naive(${room_id}, ${sql.json(messages as JsonArray)})`,
    );
    return json(202, { accepted: result.accepted });
  },
));
