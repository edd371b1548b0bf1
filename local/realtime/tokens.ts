// Token checks with the codes and messages Supabase Realtime answers with (its join reasons,
// `system` messages and connect errors), on top of the functions' own JWT verification.
import { decodeJwt } from "npm:jose@6.2.18";
import {
  apiRoles,
  type Claims,
  InvalidClaimsError,
  verifyJwt,
} from "../../supabase/functions/_shared/auth.ts";
import { HttpError } from "../../supabase/functions/_shared/errors.ts";

export class TokenError extends Error {
  constructor(readonly code: string, message: string, readonly expired = false) {
    super(message);
  }

  /** A join refusal reads `<Code>: <message>`. */
  get reason(): string {
    return `${this.code}: ${this.message}`;
  }
}

export async function verifyToken(token: string): Promise<Claims> {
  try {
    return await verifyJwt(token);
  } catch (error) {
    if (!(error instanceof HttpError)) throw error;
    throw explain(token, error);
  }
}

function explain(token: string, error: HttpError): TokenError {
  let claims: ReturnType<typeof decodeJwt>;
  try {
    claims = decodeJwt(token);
  } catch {
    return new TokenError("MalformedJWT", "The token provided is not a valid JWT");
  }
  if (typeof claims.role !== "string" || typeof claims.exp !== "number") {
    return new TokenError("InvalidJWTToken", "Fields `role` and `exp` are required in JWT");
  }
  const expiredFor = Math.floor(Date.now() / 1000) - claims.exp;
  if (expiredFor >= 0) {
    return new TokenError("InvalidJWTToken", `Token has expired ${expiredFor} seconds ago`, true);
  }
  if (!apiRoles.has(claims.role)) return new TokenError("InvalidJWTToken", error.message);
  // Signed, unexpired, but a `sub` that is no user id, an `is_anonymous` that is no boolean...
  if (error instanceof InvalidClaimsError) return new TokenError("InvalidJWTToken", error.message);
  return new TokenError("JwtSignatureError", "Failed to validate JWT signature");
}
