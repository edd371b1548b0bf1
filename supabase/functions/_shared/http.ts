import { type Claims, requireClaims, requireUserOrService } from "./auth.ts";
import { preflightResponse } from "./cors.ts";
import { asCaller, type EntryPointCall } from "./db.ts";
import { clientErrorFromSql, databaseUnavailable, isDatabaseUnavailable } from "./db-errors.ts";
import { HttpError } from "./errors.ts";
import { errorResponse } from "./responses.ts";
import { jsonbStorable, parse, type z } from "./validation.ts";

export type Handler = (req: Request) => Promise<Response>;

/**
 * Who may call an endpoint: anyone with a valid project key or user token, or only a signed-in
 * user or the service role (the anon key identifies nobody: 403 `identified_only`).
 */
export type Caller = "any_token" | "user_or_service";

const verifyCaller: Record<Caller, (req: Request) => Promise<Claims>> = {
  any_token: requireClaims,
  user_or_service: requireUserOrService,
};

/** Runs one SQL entry point as the request's caller (asCaller); `Result` is what it answers. */
export type CallAsCaller = <Result = unknown>(entryPoint: EntryPointCall) => Promise<Result>;

/** What an endpoint's code is handed, besides its validated input. */
export interface CallerContext {
  /** The caller's verified claims. */
  claims: Claims;
  call: CallAsCaller;
}

/** One method of a function, ready to serve: the caller verified, the input validated. */
export interface Endpoint {
  method: "GET" | "POST";
  serve: Handler;
}

function callAs(claims: Claims, req: Request): CallAsCaller {
  return (entryPoint) => asCaller(claims, entryPoint, req);
}

/** An endpoint that verifies its caller first, then reads its input, then runs. */
function endpoint<Input>(
  method: Endpoint["method"],
  caller: Caller,
  readInput: (req: Request) => Input | Promise<Input>,
  run: (request: CallerContext & Input) => Promise<Response>,
): Endpoint {
  const verify = verifyCaller[caller];
  return {
    method,
    serve: async (req) => {
      const claims = await verify(req);
      const input = await readInput(req);
      return await run({ claims, call: callAs(claims, req), ...input });
    },
  };
}

/** A GET endpoint: `caller` may call it, with a query string that `query` validates (400). */
export function get<Query extends z.ZodType = z.ZodUndefined>(
  spec: { caller: Caller; query?: Query },
  run: (request: CallerContext & { query: z.infer<Query> }) => Promise<Response>,
): Endpoint {
  // Without a schema the query string is not read, and `query` is undefined (ZodUndefined).
  const readQuery = (req: Request) => ({
    query: (spec.query && parse(spec.query, queryOf(req))) as z.infer<Query>,
  });
  return endpoint("GET", spec.caller, readQuery, run);
}

/** A POST endpoint: `caller` may call it, with a JSON body of at most `maxBytes` (413) that
 * `body` validates (400). */
export function post<Body extends z.ZodType>(
  spec: { caller: Caller; body: Body; maxBytes: number },
  run: (request: CallerContext & { body: z.infer<Body> }) => Promise<Response>,
): Endpoint {
  const readBody = async (req: Request) => ({
    body: parse(spec.body, await readJson(req, spec.maxBytes)),
  });
  return endpoint("POST", spec.caller, readBody, run);
}

/**
 * A function's handler, serving its endpoints: answers the CORS preflight, refuses other methods
 * with 405, and turns every failure into the contract's error format. An unreachable database
 * is 503 `unavailable`; anything unexpected is logged and answered 500 without internals.
 */
export function handle(...endpoints: Endpoint[]): Handler {
  const served = new Map(endpoints.map(({ method, serve }) => [method, serve]));
  const allowed = ["OPTIONS", ...served.keys()].join(", ");
  return async (req) => {
    if (req.method === "OPTIONS") return preflightResponse();
    const serve = served.get(req.method as Endpoint["method"]);
    try {
      if (!serve) {
        throw new HttpError(405, "method_not_allowed", `Use one of: ${allowed}.`, {
          headers: { Allow: allowed },
        });
      }
      return await serve(req);
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
async function readJson(req: Request, maxBytes: number): Promise<unknown> {
  const tooLarge = () =>
    new HttpError(413, "payload_too_large", `The request body is larger than ${maxBytes} bytes.`);
  const declared = Number(req.headers.get("content-length") ?? "0");
  if (declared > maxBytes) throw tooLarge();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (req.body) {
    try {
      for await (const chunk of req.body) {
        size += chunk.byteLength;
        if (size > maxBytes) throw tooLarge();
        chunks.push(chunk);
      }
    } catch (error) {
      if (error instanceof HttpError) throw error;
      // The client went away mid-upload: nobody reads this answer, but it is no server error.
      throw new HttpError(400, "invalid_request", "The request body could not be read to its end.");
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

/** The query string as an object (a repeated parameter keeps its last value). */
function queryOf(req: Request): Record<string, string> {
  return Object.fromEntries(new URL(req.url).searchParams);
}
