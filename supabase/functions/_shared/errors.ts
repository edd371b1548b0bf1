import { corsHeaders } from "./cors.ts";

// The error codes of the contract (API.md §4). A code outside this list is a bug.
export type ErrorCode =
  | "invalid_request"
  | "not_authenticated"
  | "invalid_token"
  | "not_a_member"
  | "not_host"
  | "identified_only"
  | "user_id_mismatch"
  | "tls_required"
  | "push_not_enabled"
  | "room_not_found"
  | "not_found"
  | "method_not_allowed"
  | "payload_too_large"
  | "user_info_too_large"
  | "rate_limited"
  | "unavailable"
  | "internal_error";

/** An error that becomes `{"error": {code, message, details?}}` with its HTTP status. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "HttpError";
  }
}

export function errorResponse(error: HttpError): Response {
  const body = {
    error: {
      code: error.code,
      message: error.message,
      ...(error.details === undefined ? {} : { details: error.details }),
    },
  };
  return new Response(JSON.stringify(body), {
    status: error.status,
    headers: { ...corsHeaders, ...error.headers, "Content-Type": "application/json" },
  });
}
