// Local-only credentials, the same as the Supabase CLI's defaults for `supabase start`.
import { SignJWT } from "npm:jose@6.2.18";

export const jwtSecret = "super-secret-jwt-token-with-at-least-32-characters-long";

/** Signs `claims` as an HS256 JWT (claims are serialised in the given order). */
export function signJwt(claims: Record<string, unknown>, secret = jwtSecret): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(secret));
}

// Signed with the same claims as the CLI's demo keys, so they come out byte for byte equal.
const demoKeyExpiry = 1983812996;
export const anonKey = await signJwt({ iss: "supabase-demo", role: "anon", exp: demoKeyExpiry });
export const serviceRoleKey = await signJwt({
  iss: "supabase-demo",
  role: "service_role",
  exp: demoKeyExpiry,
});

/** A user access token shaped like the ones Supabase Auth issues. */
export function userToken(
  sub: string,
  { isAnonymous = false, expiresIn = 3600, ...extra }: {
    isAnonymous?: boolean;
    expiresIn?: number;
    [claim: string]: unknown;
  } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return signJwt({
    iss: "http://127.0.0.1:54321/auth/v1",
    sub,
    aud: "authenticated",
    exp: now + expiresIn,
    iat: now,
    email: isAnonymous ? "" : `${sub}@example.test`,
    phone: "",
    app_metadata: isAnonymous ? {} : { provider: "email", providers: ["email"] },
    user_metadata: {},
    role: "authenticated",
    aal: "aal1",
    amr: [{ method: isAnonymous ? "anonymous" : "password", timestamp: now }],
    session_id: crypto.randomUUID(),
    is_anonymous: isAnonymous,
    ...extra,
  });
}
