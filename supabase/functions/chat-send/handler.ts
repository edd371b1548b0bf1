import { requireUserOrService } from "../_shared/auth.ts";
import { asCaller, type JsonArray } from "../_shared/db.ts";
import { handle, json, readJson } from "../_shared/http.ts";
import { parse, z } from "../_shared/validation.ts";
import { scheduleFlush } from "../_shared/windows.ts";

const maxBodyBytes = 64 * 1024;

/** The request body (the benchmarks' naive chat-send takes the same). */
export const chatSendBody = z.object({
  room_id: z.guid(),
  messages: z.array(z.object({
    client_id: z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, "1 to 64 of A-Z a-z 0-9 : _ -"),
    body: z.string().min(1).max(2000).refine((text) => text.trim() !== "", "The body is blank."),
    push: z.record(z.string(), z.unknown()).optional(),
  })).min(1).max(50),
});

/**
 * POST /functions/v1/chat-send {room_id, messages: [{client_id, body, push?}]}: stores the
 * messages at once (202 means durable; a resent client_id returns the stored message with
 * duplicate: true) through public.send_chat as the caller, then flushes the room's chat window
 * when it is due (private.flush_window sends one chat:batch).
 */
export const handler = handle({
  POST: async (req) => {
    const claims = await requireUserOrService(req);
    const { room_id, messages } = parse(chatSendBody, await readJson(req, maxBodyBytes));
    const [{ result }] = await asCaller(
      claims,
      (tx) => tx`select public.send_chat(${room_id}, ${tx.json(messages as JsonArray)}) as result`,
      req,
    );
    if (result.flush_now) scheduleFlush(result.channel, 0, true);
    else if (result.flush_in_ms !== null) scheduleFlush(result.channel, result.flush_in_ms);
    return json(202, { accepted: result.accepted });
  },
});
