// Realtime's REST broadcast (reference/realtime.md §4.5): the batch endpoint
// `POST /realtime/v1/api/broadcast` {messages: [{topic, event, payload, private?, id?}]} and the
// single one `POST /realtime/v1/api/broadcast/<topic>/events/<event>[?private=true]` whose body
// is the payload (JSON, or bytes as application/octet-stream) that `channel.httpSend()` uses.
// 202 on success; private messages pass the caller's write check once per topic and are dropped
// silently without it.
import type postgres from "npm:postgres@3.4.9";
import { z } from "npm:zod@4.6.7";
import { jsonObject } from "../../supabase/functions/_shared/validation.ts";
import { bearerToken, type Claims } from "../../supabase/functions/_shared/auth.ts";
import { corsHeaders, preflightResponse } from "../../supabase/functions/_shared/cors.ts";
import { headersForRls, writeGrants } from "./authorization.ts";
import type { Hub } from "./hub.ts";
import { type BroadcastPayload, exceedsPayloadLimit } from "./protocol.ts";
import { TokenError, verifyToken } from "./tokens.ts";

interface RestMessage {
  topic: string;
  event: string;
  private: boolean;
  id?: string;
  payload: BroadcastPayload;
}

const batchMessage = z.object({
  topic: z.string().min(1),
  event: z.string().min(1),
  payload: jsonObject(),
  private: z.boolean().optional(),
  id: z.string().optional(),
});
// Realtime's batch limit is a tenant setting; this keeps one request's fan-out bounded.
const maxBatchMessages = 1000;
const singlePath = /^\/realtime\/v1\/api\/broadcast\/([^/]+)\/events\/([^/]+)$/;

/** Realtime's HTTP errors: `{"message": "..."}`, with CORS as every response here. */
export function realtimeError(status: number, message: string): Response {
  return Response.json({ message }, { status, headers: corsHeaders });
}
// Realtime's validation errors: `{"errors": {"messages": [...]}}`.
const invalid = (messages: unknown[]) =>
  Response.json({ errors: { messages } }, { status: 422, headers: corsHeaders });
const tooLarge = "Payload size exceeds tenant limit";

/** Whether `pathname` is one of the REST broadcast endpoints. */
export function isRestBroadcast(pathname: string): boolean {
  return pathname === "/realtime/v1/api/broadcast" || singlePath.test(pathname);
}

export async function restBroadcast(
  { hub, sql }: { hub: Hub; sql: postgres.Sql },
  req: Request,
): Promise<Response> {
  if (req.method === "OPTIONS") return preflightResponse();
  if (req.method !== "POST") return realtimeError(405, "Use POST.");
  // A Bearer token wins; a bad one does not fall back to the apikey header.
  let token: string | null;
  try {
    token = bearerToken(req);
  } catch {
    token = req.headers.has("authorization") ? null : req.headers.get("apikey");
  }
  if (!token) return realtimeError(401, "Unauthorized");
  let claims: Claims;
  try {
    claims = await verifyToken(token);
  } catch (error) {
    if (error instanceof TokenError) return realtimeError(401, "Unauthorized");
    throw error;
  }
  const { pathname, searchParams } = new URL(req.url);
  const single = singlePath.exec(pathname);
  const parsed = single
    ? await readSingle(req, single[1], single[2], searchParams)
    : readBatch(await req.json().catch(() => undefined));
  if (parsed instanceof Response) return parsed;
  const headers = headersForRls(req);
  const mayWrite = new Map<string, Promise<boolean>>();
  for (const m of parsed) {
    if (m.private) {
      if (!mayWrite.has(m.topic)) {
        mayWrite.set(
          m.topic,
          writeGrants(sql, { topic: m.topic, claims, headers }, ["broadcast"])
            .then((grants) => grants.broadcast === true, () => false),
        );
      }
      if (!(await mayWrite.get(m.topic))) continue;
    }
    hub.broadcast({
      topic: m.topic,
      isPrivate: m.private,
      event: m.event,
      payload: m.payload,
      meta: m.id === undefined ? undefined : { id: m.id },
    });
  }
  return new Response(null, { status: 202, headers: corsHeaders });
}

/** The batch body; per message a map of field errors (`{}` for a valid one) when any is bad. */
function readBatch(body: unknown): RestMessage[] | Response {
  const list = typeof body === "object" && body !== null
    ? (body as { messages?: unknown }).messages
    : undefined;
  if (!Array.isArray(list) || list.length === 0) return invalid(["can't be blank"]);
  if (list.length > maxBatchMessages) {
    return invalid([`should have at most ${maxBatchMessages} item(s)`]);
  }
  const messages: RestMessage[] = [];
  const errors = list.map((item) => {
    const parsed = batchMessage.safeParse(item);
    const fieldErrors: Record<string, string[]> = {};
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        (fieldErrors[String(issue.path[0] ?? "message")] ??= []).push(issue.message);
      }
      return fieldErrors;
    }
    const payload = { json: JSON.stringify(parsed.data.payload) };
    if (exceedsPayloadLimit(payload)) return { payload: [tooLarge] };
    messages.push({ ...parsed.data, private: parsed.data.private ?? false, payload });
    return fieldErrors;
  });
  return messages.length === list.length ? messages : invalid(errors);
}

/** The single endpoint's message: topic and event from the path, the body as the payload (a
 * JSON object, or raw bytes sent as application/octet-stream). */
async function readSingle(
  req: Request,
  encodedTopic: string,
  encodedEvent: string,
  query: URLSearchParams,
): Promise<RestMessage[] | Response> {
  let target: Omit<RestMessage, "payload">;
  try {
    target = {
      topic: decodeURIComponent(encodedTopic),
      event: decodeURIComponent(encodedEvent),
      private: query.get("private") === "true",
    };
  } catch {
    return invalid([{ topic: ["is not a valid URL-encoded name"] }]);
  }
  const bytes = new Uint8Array(await req.arrayBuffer());
  if (exceedsPayloadLimit({ binary: bytes })) return invalid([{ payload: [tooLarge] }]);
  if (req.headers.get("content-type")?.startsWith("application/octet-stream")) {
    return [{ ...target, payload: { binary: bytes } }];
  }
  let payload: unknown;
  try {
    payload = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return invalid([{ payload: ["is not JSON"] }]);
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return invalid([{ payload: ["must be a JSON object"] }]);
  }
  return [{ ...target, payload: { json: JSON.stringify(payload) } }];
}
