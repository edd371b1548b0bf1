// Errors in the shapes Supabase Auth answers with. A request that says `X-Supabase-Api-Version:
// 2024-01-01` or later (auth-js always does) gets `{code: "<error_code>", message}` and the
// version echoed back, which is what makes auth-js read `code`; any other gets the initial shape
// `{code: <status>, error_code, msg}`. Both carry `x-sb-error-code`. The OAuth-style errors of
// the token endpoint are `{error, error_description}`.

export class AuthError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Extra top-level fields (`weak_password`). */
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

export class OAuthError extends Error {
  constructor(readonly error: string, readonly description: string) {
    super(description);
  }
}

const apiVersionHeader = "X-Supabase-Api-Version";
const currentApiVersion = "2024-01-01";

/** Whether the request asks for the 2024-01-01 error shape (a valid date on or after it). */
export function wantsDatedErrors(req: Request): boolean {
  const asked = req.headers.get(apiVersionHeader)?.trim() ?? "";
  if (!/^\d{4}-\d{2}-\d{2}$/.test(asked) || Number.isNaN(Date.parse(asked))) return false;
  return asked >= currentApiVersion;
}

export function errorResponse(error: AuthError | OAuthError, dated: boolean): Response {
  if (error instanceof OAuthError) {
    return Response.json({ error: error.error, error_description: error.description }, {
      status: 400,
    });
  }
  const headers = new Headers({ "x-sb-error-code": error.code });
  if (dated) {
    headers.set(apiVersionHeader, currentApiVersion);
    return Response.json({ code: error.code, message: error.message, ...error.extra }, {
      status: error.status,
      headers,
    });
  }
  return Response.json(
    { code: error.status, error_code: error.code, msg: error.message, ...error.extra },
    { status: error.status, headers },
  );
}
