// chat-send without batching, for bench/ingest.ts to set against the real one: the same request,
// validation, checks, rate limit and idempotent insert (bench/naive/sql.ts has the SQL), but
// every stored message is broadcast at once with its own realtime.send, in the request's
// transaction: no window, no flush. Benchmark only.
import { requireUserOrService } from "../../../../supabase/functions/_shared/auth.ts";
import { asCaller, type JsonArray } from "../../../../supabase/functions/_shared/db.ts";
import { handle, json, readJson } from "../../../../supabase/functions/_shared/http.ts";
import { parse } from "../../../../supabase/functions/_shared/validation.ts";
import { chatSendBody } from "../../../../supabase/functions/chat-send/handler.ts";

export const handler = handle({
  POST: async (req) => {
    const claims = await requireUserOrService(req);
    const { room_id, messages } = parse(chatSendBody, await readJson(req, 64 * 1024));
    const result = await asCaller<{ accepted: unknown[] }>(
      claims,
      (sql) => sql`bench.send_chat_naive(${room_id}, ${sql.json(messages as JsonArray)})`,
      req,
    );
    return json(202, { accepted: result.accepted });
  },
});
