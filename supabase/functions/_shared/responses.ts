import { corsHeaders } from "./cors.ts";
import type { HttpError } from "./errors.ts";

/** A JSON response with CORS headers: every response of every function is one of these. */
export function json(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { ...corsHeaders, ...headers, "Content-Type": "application/json" },
  });
}

/** The contract's error body, `{"error": {code, message, details?}}`, with the error's status. */
export function errorResponse(error: HttpError): Response {
  const { code, message, details } = error;
  return json(error.status, {
    error: { code, message, ...(details === undefined ? {} : { details }) },
  }, error.headers);
}
