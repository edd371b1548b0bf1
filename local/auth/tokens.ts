// Access tokens as Supabase Auth issues them (HS256 with the local JWT secret, its claims in its
// order), refresh tokens, and the bearer check of the endpoints that need a signed-in user.
import { errors as joseErrors, jwtVerify } from "npm:jose@6.2.18";
import { jwtSecret, signJwt } from "../keys.ts";
import { AuthError } from "./errors.ts";
import type { UserRow } from "./store.ts";

export interface AmrEntry {
  method: string;
  timestamp: number;
}

/** The signed access token of `user` for session `sessionId`, and when it expires. */
export async function issueAccessToken(
  { user, sessionId, amr, issuer, ttlS }: {
    user: UserRow;
    sessionId: string;
    amr: AmrEntry[];
    issuer: string;
    ttlS: number;
  },
): Promise<{ token: string; expiresAt: number }> {
  const iat = Math.floor(Date.now() / 1000);
  const exp = iat + ttlS;
  const token = await signJwt({
    iss: issuer,
    sub: user.id,
    aud: user.aud ?? "",
    exp,
    iat,
    email: user.email ?? "",
    phone: user.phone ?? "",
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    role: user.role ?? "",
    aal: "aal1",
    amr,
    session_id: sessionId,
    is_anonymous: user.is_anonymous,
  });
  return { token, expiresAt: exp };
}

/** An opaque refresh token: 16 random bytes, base64url. */
export function newRefreshToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(
    /=+$/,
    "",
  );
}

export interface AccessClaims {
  sub: string;
  session_id?: string;
  [claim: string]: unknown;
}

const secretKey = new TextEncoder().encode(jwtSecret);
const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The verified claims of the request's `Authorization: Bearer` token, refused with the codes
 * and messages Supabase Auth uses. */
export async function bearerClaims(req: Request): Promise<AccessClaims> {
  const match = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization")?.trim() ?? "");
  if (!match) {
    throw new AuthError(401, "no_authorization", "This endpoint requires a valid Bearer token");
  }
  let payload: Record<string, unknown>;
  try {
    ({ payload } = await jwtVerify(match[1], secretKey, { algorithms: ["HS256"] }));
  } catch (error) {
    const reason = error instanceof joseErrors.JWTExpired
      ? "token has invalid claims: token is expired"
      : error instanceof joseErrors.JWSSignatureVerificationFailed
      ? "token signature is invalid: signature is invalid"
      : "token is malformed";
    throw new AuthError(
      403,
      "bad_jwt",
      `invalid JWT: unable to parse or verify signature, ${reason}`,
    );
  }
  const { sub, session_id: sessionId } = payload;
  if (typeof sub !== "string" || sub === "") {
    throw new AuthError(403, "bad_jwt", "invalid claim: missing sub claim");
  }
  if (!uuidPattern.test(sub)) {
    throw new AuthError(400, "bad_jwt", "invalid claim: sub claim must be a UUID");
  }
  if (sessionId !== undefined && (typeof sessionId !== "string" || !uuidPattern.test(sessionId))) {
    throw new AuthError(403, "bad_jwt", "invalid claim: session_id claim must be a UUID");
  }
  return payload as AccessClaims;
}
