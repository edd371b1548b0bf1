import { preflightResponse } from "./cors.ts";
import { clientErrorFromSql, databaseUnavailable, isDatabaseUnavailable } from "./db-errors.ts";
import { HttpError } from "./errors.ts";
import { errorResponse, json } from "./responses.ts";
import { jsonbStorable } from "./validation.ts";

export { json };

export type Handler = (req: Request) => Promise<Response>;
type MethodHandlers = Partial<Record<"GET" | "POST", (req: Request) => Promise<Response>>>;

/**
 * Wraps a function's per-method handlers: answers the CORS preflight, refuses other methods
 * with 405, and turns every failure into the contract's error format. An unreachable database
 * is 503 `unavailable`; anything unexpected is logged and answered 500 without internals.
 */
export function handle(methods: MethodHandlers): Handler {
  const allowed = ["OPTIONS", ...Object.keys(methods)].join(", ");
  return async (req) => {
    if (req.method === "OPTIONS") return preflightResponse();
    const run = methods[req.method as keyof MethodHandlers];
    try {
      if (!run) {
        throw new HttpError(405, "method_not_allowed", `Use one of: ${allowed}.`, {
          headers: { Allow: allowed },
        });
      }
      return await run(req);
    } catch (error) {
      if (error instanceof HttpError) return errorResponse(error);
      const fromSql = clientErrorFromSql(error);
      if (fromSql) return errorResponse(fromSql);
      if (isDatabaseUnavailable(error)) return errorResponse(databaseUnavailable());
      console.error(error);
      return errorResponse(
        new HttpError(500, "internal_error", "Something went wrong on our side."),
      );
    }
  };
}

/**
 * Reads a JSON request body of at most `maxBytes` bytes: 413 `payload_too_large` above it
 * (checked while streaming, so a lying Content-Length cannot get more through), 400
 * `invalid_request` when it is not JSON.
 */
export async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const tooLarge = () =>
    new HttpError(413, "payload_too_large", `The request body is larger than ${maxBytes} bytes.`);
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    for await (const chunk of req.body) {
      size += chunk.byteLength;
      if (size > maxBytes) throw tooLarge();
      chunks.push(chunk);
    }
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch {
    throw new HttpError(400, "invalid_request", "The request body must be valid JSON.");
  }
  if (!jsonbStorable(value)) {
    throw new HttpError(
      400,
      "invalid_request",
      "The body may not nest deeper than 32 levels, nor hold a \\u0000 or a lone surrogate.",
    );
  }
  return value;
}
