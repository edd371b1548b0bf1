import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
} from "npm:jose@6.2.18";
import { HttpError } from "./errors.ts";
import { jsonbStorable } from "./validation.ts";

/** The database roles a Supabase JWT may carry; anything else is refused. */
export type ApiRole = "anon" | "authenticated" | "service_role";
export const apiRoles: ReadonlySet<string> = new Set(["anon", "authenticated", "service_role"]);

/** Verified claims, as Supabase Auth issues them (anon/service keys carry only `role`). */
export type Claims = JWTPayload & {
  role: ApiRole;
  sub?: string;
  is_anonymous?: boolean;
  [claim: string]: unknown;
};

const asymmetricAlgorithms = ["RS256", "ES256", "EdDSA"];

// Importing the HMAC key costs more than the check itself: do it once per secret.
let hmacKey: { secret: string; key: Promise<CryptoKey> } | undefined;
function legacySecretKey(secret: string): Promise<CryptoKey> {
  if (hmacKey?.secret !== secret) {
    const key = crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["verify"],
    );
    hmacKey = { secret, key };
  }
  return hmacKey.key;
}

// A client sends the same token on every request until it expires; remember the verified ones
// (bounded, oldest dropped first) so each is checked once, and never past its `exp`. A token
// stays accepted until then even if its signing key is rotated away, as with any stateless JWT.
const verifiedTokens = new Map<string, Claims>();
const maxVerifiedTokens = 10_000;
let jwks: ReturnType<typeof createRemoteJWKSet> | ReturnType<typeof createLocalJWKSet> | undefined;

// Asymmetric signing keys: SUPABASE_JWKS when given (the CLI injects it locally), otherwise the
// project's published set, fetched once and cached by jose.
function signingKeys() {
  if (!jwks) {
    const inline = Deno.env.get("SUPABASE_JWKS");
    const projectUrl = Deno.env.get("SUPABASE_URL");
    if (inline) jwks = createLocalJWKSet(JSON.parse(inline));
    else if (projectUrl) {
      jwks = createRemoteJWKSet(new URL("/auth/v1/.well-known/jwks.json", projectUrl));
    } else throw invalidToken("No JWKS is configured for asymmetric tokens.");
  }
  return jwks;
}

function invalidToken(message: string): HttpError {
  return new HttpError(401, "invalid_token", message);
}

/** A correctly signed, unexpired token whose claims are not those of a Supabase token: 401
 * `invalid_token` too, told apart so that Realtime can name it as Realtime does. */
export class InvalidClaimsError extends HttpError {
  constructor(message: string) {
    super(401, "invalid_token", message);
  }
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * What Supabase Auth puts in a token and the database relies on: an API role, `sub` (when
 * present) a uuid, which auth.uid() casts to, `is_anonymous` (when present) a boolean, which the
 * channel rules cast to, and claims that jsonb can hold, since auth.jwt() reads them as jsonb.
 * A token that breaks one of these is not one Supabase Auth issued.
 */
function checkClaims(payload: JWTPayload): Claims {
  if (typeof payload.role !== "string" || !apiRoles.has(payload.role)) {
    throw new InvalidClaimsError("The token's role must be anon, authenticated or service_role.");
  }
  if (
    payload.sub !== undefined && (typeof payload.sub !== "string" || !uuidPattern.test(payload.sub))
  ) {
    throw new InvalidClaimsError("The token's sub must be a user id (a uuid).");
  }
  if (payload.is_anonymous !== undefined && typeof payload.is_anonymous !== "boolean") {
    throw new InvalidClaimsError("The token's is_anonymous must be true or false.");
  }
  if (!jsonbStorable(payload)) {
    throw new InvalidClaimsError(
      "The token's claims may not hold a \\u0000 or a lone surrogate, nor nest deeper than 32 levels.",
    );
  }
  return payload as Claims;
}

/**
 * Verifies a Supabase JWT: HS256 with the legacy secret (JWT_SECRET), or RS256/ES256/EdDSA
 * against the project's JWKS. `alg: none`, bad signatures, expired tokens, tokens without
 * `exp` and roles other than the API roles are refused with 401 `invalid_token`.
 */
export async function verifyJwt(token: string): Promise<Claims> {
  const known = verifiedTokens.get(token);
  if (known && (known.exp ?? 0) * 1000 > Date.now()) return known;
  verifiedTokens.delete(token);
  const claims = await verifySignedJwt(token);
  if (verifiedTokens.size >= maxVerifiedTokens) {
    verifiedTokens.delete(verifiedTokens.keys().next().value!);
  }
  verifiedTokens.set(token, claims);
  return claims;
}

async function verifySignedJwt(token: string): Promise<Claims> {
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw invalidToken("The token is not a JWT.");
  }
  if (alg !== "HS256" && !asymmetricAlgorithms.includes(alg as string)) {
    const named = typeof alg === "string" ? `alg "${alg}"` : "no alg";
    throw invalidToken(`Tokens signed with ${named} are not accepted.`);
  }
  let payload: JWTPayload;
  try {
    if (alg === "HS256") {
      const secret = Deno.env.get("JWT_SECRET");
      if (!secret) throw invalidToken("HS256 tokens are not accepted: JWT_SECRET is not set.");
      ({ payload } = await jwtVerify(token, await legacySecretKey(secret), {
        algorithms: ["HS256"],
        requiredClaims: ["exp"],
      }));
    } else {
      ({ payload } = await jwtVerify(token, signingKeys(), {
        algorithms: asymmetricAlgorithms,
        requiredClaims: ["exp"],
      }));
    }
  } catch (error) {
    if (error instanceof HttpError) throw error;
    const code = (error as { code?: string }).code;
    // The project's key set could not be fetched: our problem, not the token's.
    if (alg !== "HS256" && (code === "ERR_JWKS_TIMEOUT" || error instanceof TypeError)) {
      throw new HttpError(
        503,
        "unavailable",
        "The signing keys cannot be fetched; try again shortly.",
        {
          headers: { "Retry-After": "5" },
        },
      );
    }
    const reason = code === "ERR_JWT_EXPIRED"
      ? "The token has expired."
      : "The token could not be verified.";
    throw invalidToken(reason);
  }
  return checkClaims(payload);
}

/** The bearer token of a request, or 401 `not_authenticated` when there is none. */
export function bearerToken(req: Request): string {
  const header = req.headers.get("authorization") ?? "";
  const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!match) {
    throw new HttpError(
      401,
      "not_authenticated",
      "An Authorization: Bearer <jwt> header is required.",
    );
  }
  return match[1];
}

/** The verified claims of the caller. */
export function requireClaims(req: Request): Promise<Claims> {
  return verifyJwt(bearerToken(req));
}

/**
 * The verified claims of a signed-in user (a `sub`) or of the service role. The anon key
 * identifies nobody, so it is refused with 403 `identified_only`; whether an anonymous *user* may
 * go on is the channel rules' call, made in SQL.
 */
export async function requireUserOrService(req: Request): Promise<Claims> {
  const claims = await requireClaims(req);
  const user = claims.role === "authenticated" && typeof claims.sub === "string";
  if (!user && claims.role !== "service_role") {
    throw new HttpError(403, "identified_only", "Sign in: this endpoint is for signed-in users.");
  }
  return claims;
}
