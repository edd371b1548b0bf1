// The settings of the local Auth stand-in: config.toml's `[auth]` block, as `supabase start`
// hands it to Supabase Auth, with environment overrides for development and tests.
import { parse as parseToml } from "npm:smol-toml@1.9.1";

export interface AuthSettings {
  /** Lifetime of an access token, in seconds (`jwt_expiry`; AUTH_ACCESS_TOKEN_TTL_S). */
  accessTokenTtlS: number;
  /** How long the refresh token a session has just moved on from may still be presented, in
   * seconds (`refresh_token_reuse_interval`; AUTH_REFRESH_TOKEN_REUSE_INTERVAL_S). */
  refreshTokenReuseIntervalS: number;
  /** `enable_signup`: sign-up with email and password. */
  signupEnabled: boolean;
  /** `enable_anonymous_sign_ins`. */
  anonymousSignInsEnabled: boolean;
  /** `minimum_password_length`. */
  minimumPasswordLength: number;
}

// The Supabase CLI's defaults for the keys config.toml leaves out.
const defaults: AuthSettings = {
  accessTokenTtlS: 3600,
  refreshTokenReuseIntervalS: 10,
  signupEnabled: true,
  anonymousSignInsEnabled: false,
  minimumPasswordLength: 6,
};

/** Reads `[auth]` from config.toml; the environment, then `overrides`, win over it. */
export async function authSettings(
  configPath: string,
  overrides: Partial<AuthSettings> = {},
): Promise<AuthSettings> {
  const { auth = {} } = parseToml(await Deno.readTextFile(configPath)) as {
    auth?: Record<string, unknown>;
  };
  const settings: AuthSettings = {
    accessTokenTtlS: wholeNumber("jwt_expiry", auth.jwt_expiry, defaults.accessTokenTtlS, 1),
    refreshTokenReuseIntervalS: wholeNumber(
      "refresh_token_reuse_interval",
      auth.refresh_token_reuse_interval,
      defaults.refreshTokenReuseIntervalS,
      0,
    ),
    signupEnabled: flag("enable_signup", auth.enable_signup, defaults.signupEnabled),
    anonymousSignInsEnabled: flag(
      "enable_anonymous_sign_ins",
      auth.enable_anonymous_sign_ins,
      defaults.anonymousSignInsEnabled,
    ),
    minimumPasswordLength: wholeNumber(
      "minimum_password_length",
      auth.minimum_password_length,
      defaults.minimumPasswordLength,
      0,
    ),
  };
  const ttl = Deno.env.get("AUTH_ACCESS_TOKEN_TTL_S");
  if (ttl !== undefined) {
    settings.accessTokenTtlS = wholeNumber("AUTH_ACCESS_TOKEN_TTL_S", Number(ttl), 0, 1);
  }
  const reuse = Deno.env.get("AUTH_REFRESH_TOKEN_REUSE_INTERVAL_S");
  if (reuse !== undefined) {
    settings.refreshTokenReuseIntervalS = wholeNumber(
      "AUTH_REFRESH_TOKEN_REUSE_INTERVAL_S",
      Number(reuse),
      0,
      0,
    );
  }
  return { ...settings, ...overrides };
}

/** A whole number of at least `min`, or `fallback` when not given. */
function wholeNumber(name: string, value: unknown, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
    throw new Error(`auth setting ${name} must be a whole number of at least ${min}`);
  }
  return value;
}

function flag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new Error(`auth setting ${name} must be true or false`);
  return value;
}
