// The local Auth stand-in: the subset of Supabase Auth (GoTrue) that supabase-js's `auth` calls
// for this project, served by the gateway at /auth/v1/*, for development and CI only
// (production uses Supabase Auth). Sign-up and sign-in with email and password, anonymous
// sign-in, refresh with Supabase Auth's rotation rules, the signed-in user, sign-out; tokens,
// errors and tables shaped as Supabase Auth's. Like the platform's API gateway it wants the
// project's API key (`apikey`) on every endpoint but the public key set.
import postgres from "npm:postgres@3.4.9";
import { jsonbStorable } from "../../supabase/functions/_shared/validation.ts";
import { anonKey, serviceRoleKey } from "../keys.ts";
import type { AuthSettings } from "./config.ts";
import { AuthError, errorResponse, OAuthError, wantsDatedErrors } from "./errors.ts";
import { AuthStore, type LogoutScope, type SessionGrant, type UserRow } from "./store.ts";
import { bearerClaims, issueAccessToken } from "./tokens.ts";

const corsHeaders = {
  "Access-Control-Allow-Origin": "*",
  "Access-Control-Allow-Headers":
    "authorization, x-client-info, apikey, content-type, x-supabase-api-version",
  "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, OPTIONS",
  "Access-Control-Expose-Headers": "x-supabase-api-version, x-sb-error-code",
};

// What Supabase Auth accepts as an email address (the WHATWG form of one).
const emailPattern =
  /^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
// bcrypt reads at most 72 bytes; Supabase Auth refuses longer passwords.
const maxPasswordBytes = 72;
const invalidLogin = "Invalid login credentials";

type Params = Record<string, unknown>;

export class AuthServer {
  #store: AuthStore;

  private constructor(readonly settings: AuthSettings, sql: postgres.Sql) {
    this.#store = new AuthStore(sql);
  }

  static start(dbUrl: string, settings: AuthSettings): AuthServer {
    return new AuthServer(settings, postgres(dbUrl, { max: 4, onnotice: () => {} }));
  }

  async close(): Promise<void> {
    await this.#store.sql.end({ timeout: 1 });
  }

  /** Serves /auth/v1/*. */
  async handle(req: Request): Promise<Response> {
    const response = await this.#route(req);
    for (const [name, value] of Object.entries(corsHeaders)) response.headers.set(name, value);
    return response;
  }

  async #route(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname.replace(/^\/auth\/v1/, "").replace(/\/+$/, "");
    if (req.method === "OPTIONS") return new Response(null, { status: 204 });
    try {
      // An HS256-only project publishes no keys; the platform serves the set without a key.
      if (path === "/.well-known/jwks.json" && req.method === "GET") {
        return Response.json({ keys: [] });
      }
      const refusal = apiKeyRefusal(req, url);
      if (refusal) return refusal;
      const endpoint = endpoints[path];
      if (!endpoint) throw new AuthError(404, "not_found", `Nothing is served at ${url.pathname}`);
      if (endpoint.method !== req.method) {
        throw new AuthError(405, "method_not_allowed", `${req.method} is not allowed here`);
      }
      return await endpoint.serve.call(this, req, url);
    } catch (error) {
      if (error instanceof AuthError || error instanceof OAuthError) {
        return errorResponse(error, wantsDatedErrors(req));
      }
      console.error("auth stand-in:", error);
      const failure = new AuthError(500, "unexpected_failure", "Unexpected failure");
      return errorResponse(failure, wantsDatedErrors(req));
    }
  }

  /** POST /signup: email and password, or neither (an anonymous sign-in). */
  async signup(req: Request): Promise<Response> {
    const params = await jsonParams(req);
    const email = stringParam(params, "email");
    const phone = stringParam(params, "phone");
    const password = stringParam(params, "password");
    const data = objectParam(params, "data");
    if (email === "" && phone === "") {
      if (!this.settings.anonymousSignInsEnabled) {
        throw new AuthError(422, "anonymous_provider_disabled", "Anonymous sign-ins are disabled");
      }
      return this.#sessionResponse(req, await this.#store.signUpAnonymously(data));
    }
    if (!this.settings.signupEnabled) {
      throw new AuthError(422, "signup_disabled", "Signups not allowed for this instance");
    }
    if (password === "") {
      throw new AuthError(400, "validation_failed", "Signup requires a valid password");
    }
    if (new TextEncoder().encode(password).length > maxPasswordBytes) {
      throw new AuthError(
        400,
        "validation_failed",
        `Password cannot be longer than ${maxPasswordBytes} characters`,
      );
    }
    const weakness = this.#weakness(password);
    if (weakness) {
      throw new AuthError(422, "weak_password", weakness.message, {
        weak_password: { reasons: weakness.reasons },
      });
    }
    if (email !== "" && phone !== "") {
      throw new AuthError(
        400,
        "validation_failed",
        "Only an email address or phone number should be provided on signup.",
      );
    }
    if (phone !== "") {
      throw new AuthError(400, "phone_provider_disabled", "Phone signups are disabled");
    }
    const grant = await this.#store.signUp(validEmail(email), password, data);
    if (!grant) throw new AuthError(422, "user_already_exists", "User already registered");
    return this.#sessionResponse(req, grant);
  }

  /** POST /token?grant_type=password|refresh_token. */
  async token(req: Request, url: URL): Promise<Response> {
    const grantType = url.searchParams.get("grant_type");
    if (grantType === "password") return await this.#passwordGrant(req);
    if (grantType === "refresh_token") return await this.#refreshGrant(req);
    throw new AuthError(400, "invalid_credentials", "unsupported_grant_type");
  }

  async #passwordGrant(req: Request): Promise<Response> {
    const params = await jsonParams(req);
    const email = stringParam(params, "email");
    const phone = stringParam(params, "phone");
    const password = stringParam(params, "password");
    if (email !== "" && phone !== "") {
      throw new AuthError(
        400,
        "validation_failed",
        "Only an email address or phone number should be provided on login.",
      );
    }
    if (phone !== "") {
      throw new AuthError(422, "phone_provider_disabled", "Phone logins are disabled");
    }
    if (email === "") throw new AuthError(400, "validation_failed", "missing email or phone");
    const found = await this.#store.findByPassword(email.toLowerCase(), password);
    if (!found?.passwordMatches) throw new AuthError(400, "invalid_credentials", invalidLogin);
    if (!found.user.email_confirmed_at) {
      throw new AuthError(400, "email_not_confirmed", "Email not confirmed");
    }
    const grant = await this.#store.signIn(found.user, "password");
    // A password the current rules call weak still signs in; the answer says so.
    const weakness = this.#weakness(password);
    return this.#sessionResponse(req, grant, weakness && { weak_password: weakness });
  }

  async #refreshGrant(req: Request): Promise<Response> {
    const refreshToken = stringParam(await jsonParams(req), "refresh_token");
    if (refreshToken === "") throw new OAuthError("invalid_request", "refresh_token required");
    const outcome = await this.#store.refresh(
      refreshToken,
      this.settings.refreshTokenReuseIntervalS,
    );
    if ("refused" in outcome) {
      throw outcome.refused === "refresh_token_not_found"
        ? new AuthError(
          400,
          "refresh_token_not_found",
          "Invalid Refresh Token: Refresh Token Not Found",
        )
        : new AuthError(400, "refresh_token_already_used", "Invalid Refresh Token: Already Used");
    }
    return this.#sessionResponse(req, outcome.granted);
  }

  /** GET /user: the signed-in user. */
  async user(req: Request): Promise<Response> {
    const { user } = await this.#signedIn(req);
    return Response.json(userJson(user));
  }

  /** POST /logout?scope=global|local|others: ends sessions, and so their refresh tokens. */
  async logout(req: Request, url: URL): Promise<Response> {
    const { user, sessionId } = await this.#signedIn(req);
    const scope = url.searchParams.get("scope") || "global";
    if (!["global", "local", "others"].includes(scope)) {
      throw new AuthError(400, "validation_failed", `Unsupported logout scope "${scope}"`);
    }
    await this.#store.logout(user.id, sessionId, scope as LogoutScope);
    return new Response(null, { status: 204 });
  }

  /** The user (and session) of the request's access token, which must both still exist. */
  async #signedIn(req: Request): Promise<{ user: UserRow; sessionId?: string }> {
    const claims = await bearerClaims(req);
    const user = await this.#store.user(claims.sub);
    if (!user) {
      throw new AuthError(403, "user_not_found", "User from sub claim in JWT does not exist");
    }
    const sessionId = claims.session_id;
    if (sessionId && !(await this.#store.sessionExists(sessionId))) {
      throw new AuthError(
        403,
        "session_not_found",
        "Session from session_id claim in JWT does not exist",
      );
    }
    return { user, sessionId };
  }

  /** Supabase Auth's strength check: too short is weak (no character rules here). */
  #weakness(password: string): { message: string; reasons: string[] } | undefined {
    const minimum = this.settings.minimumPasswordLength;
    if (new TextEncoder().encode(password).length >= minimum) return undefined;
    return { message: `Password should be at least ${minimum} characters.`, reasons: ["length"] };
  }

  /** The session answer of sign-up, sign-in and refresh. */
  async #sessionResponse(
    req: Request,
    grant: SessionGrant,
    extra?: Params,
  ): Promise<Response> {
    const { token, expiresAt } = await issueAccessToken({
      user: grant.user,
      sessionId: grant.sessionId,
      amr: grant.amr,
      issuer: `${new URL(req.url).origin}/auth/v1`,
      ttlS: this.settings.accessTokenTtlS,
    });
    return Response.json({
      access_token: token,
      token_type: "bearer",
      expires_in: this.settings.accessTokenTtlS,
      expires_at: expiresAt,
      refresh_token: grant.refreshToken,
      user: userJson(grant.user),
      ...extra,
    });
  }
}

const endpoints: Record<
  string,
  { method: string; serve: (this: AuthServer, req: Request, url: URL) => Promise<Response> }
> = {
  "/signup": { method: "POST", serve: AuthServer.prototype.signup },
  "/token": { method: "POST", serve: AuthServer.prototype.token },
  "/user": { method: "GET", serve: AuthServer.prototype.user },
  "/logout": { method: "POST", serve: AuthServer.prototype.logout },
};

/** The platform's gateway refuses a request without one of the project's keys. */
function apiKeyRefusal(req: Request, url: URL): Response | undefined {
  const key = req.headers.get("apikey") || url.searchParams.get("apikey");
  if (key === null || key === "") {
    return Response.json({ message: "No API key found in request" }, { status: 401 });
  }
  if (key !== anonKey && key !== serviceRoleKey) {
    return Response.json({ message: "Invalid API key" }, { status: 401 });
  }
}

/** A user as Supabase Auth returns it (no identities: the stand-in keeps none). */
function userJson(user: UserRow): Record<string, unknown> {
  const iso = (date: Date | null) => date?.toISOString();
  const confirmed = [user.email_confirmed_at, user.phone_confirmed_at]
    .filter((date): date is Date => date !== null)
    .sort((a, b) => a.getTime() - b.getTime())[0] ?? null;
  return {
    id: user.id,
    aud: user.aud ?? "",
    role: user.role ?? "",
    email: user.email ?? "",
    email_confirmed_at: iso(user.email_confirmed_at),
    phone: user.phone ?? "",
    phone_confirmed_at: iso(user.phone_confirmed_at),
    confirmed_at: iso(confirmed),
    last_sign_in_at: iso(user.last_sign_in_at),
    app_metadata: user.raw_app_meta_data ?? {},
    user_metadata: user.raw_user_meta_data ?? {},
    identities: [],
    created_at: iso(user.created_at),
    updated_at: iso(user.updated_at),
    is_anonymous: user.is_anonymous,
  };
}

function badJson(reason: string): AuthError {
  return new AuthError(400, "bad_json", `Could not parse request body as JSON: ${reason}`);
}

async function jsonParams(req: Request): Promise<Params> {
  let body: unknown;
  try {
    body = JSON.parse(await req.text());
  } catch (error) {
    throw badJson(error instanceof Error ? error.message : String(error));
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw badJson("the body must be a JSON object");
  }
  return body as Params;
}

/** A string field ("" when absent); Postgres text cannot hold NUL, so neither may it. */
function stringParam(params: Params, name: string): string {
  const value = params[name] ?? "";
  if (typeof value !== "string") throw badJson(`${name} must be a string`);
  if (value.includes("\0")) {
    throw new AuthError(400, "validation_failed", `${name} must not contain NUL characters`);
  }
  return value;
}

/** An object field ({} when absent), storable as jsonb. */
function objectParam(params: Params, name: string): Record<string, unknown> {
  const value = params[name] ?? {};
  if (typeof value !== "object" || Array.isArray(value)) {
    throw badJson(`${name} must be an object`);
  }
  // What jsonb cannot store: NUL, lone surrogates, deep nesting (these used to be a 500). The
  // data comes back in every token as user_metadata, one level down, whose claims the functions
  // refuse past 32 levels: 31 here.
  if (!jsonbStorable(value, 1)) {
    throw new AuthError(
      400,
      "validation_failed",
      `${name} must not contain NUL characters or lone surrogates, nor nest deeper than 31 levels`,
    );
  }
  return value as Record<string, unknown>;
}

/** The address, lower-cased, or Supabase Auth's refusal of it. */
function validEmail(email: string): string {
  if (email.length > 255) {
    throw new AuthError(400, "validation_failed", "An email address is too long");
  }
  if (!emailPattern.test(email)) {
    throw new AuthError(
      400,
      "email_address_invalid",
      "Unable to validate email address: invalid format",
    );
  }
  return email.toLowerCase();
}
