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

export interface HttpErrorOptions {
  /** The body's `error.details` (validation issues, the constraint broken). */
  details?: unknown;
  /** Response headers that go with it (`Retry-After`, `Allow`). */
  headers?: Record<string, string>;
}

/** An error that becomes `{"error": {code, message, details?}}` with its HTTP status. */
export class HttpError extends Error {
  readonly details?: unknown;
  readonly headers: Record<string, string>;

  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    { details, headers = {} }: HttpErrorOptions = {},
  ) {
    super(message);
    this.name = "HttpError";
    this.details = details;
    this.headers = headers;
  }
}
