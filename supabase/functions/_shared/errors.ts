import { json } from "./cors.ts";

// The error codes of the contract (API.md §4), plus internal_error for our own bugs.
export const errorCodes = [
  "invalid_request",
  "not_authenticated",
  "invalid_token",
  "not_a_member",
  "not_host",
  "identified_only",
  "user_id_mismatch",
  "tls_required",
  "push_not_enabled",
  "room_not_found",
  "not_found",
  "method_not_allowed",
  "payload_too_large",
  "user_info_too_large",
  "rate_limited",
  "unavailable",
  "internal_error",
] as const;
export type ErrorCode = typeof errorCodes[number];

export function isErrorCode(code: string): code is ErrorCode {
  return (errorCodes as readonly string[]).includes(code);
}

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
  const { code, message, details } = error;
  return json(error.status, {
    error: { code, message, ...(details === undefined ? {} : { details }) },
  }, error.headers);
}
