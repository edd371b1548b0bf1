// Property-based fuzzing (fast-check) of everything the local stack serves, through a real gateway
// over real HTTP and WebSockets: every function under /functions/v1, the Auth stand-in's /auth/v1,
// Realtime's REST broadcast and raw frames on /realtime/v1/websocket (vsn 1.0.0 and 2.0.0). Bodies,
// query strings, methods, content types and tokens are generated, half the time valid and
// otherwise anything; what is asserted:
//
// - never a 5xx (the database is up, so not even a 503);
// - a function's non-2xx is the contract's error (`{"error": {code, message, details?}}`) with CORS
//   headers, a status and code of API.md §4, and what the token deserves (401 invalid_token for a
//   forged, expired, unsigned or malformed one, before anything else is looked at); a request the
//   contract calls valid is never refused as invalid (400, 413);
// - the Auth stand-in and REST broadcast answer in their own services' shapes, with CORS; a
//   session Auth hands out is one the functions take;
// - a WebSocket frame that decodes never costs the socket (it still answers a heartbeat), one that
//   does not closes it with 1003; a join gets its reply, and a join with a bad token is refused;
//   a second socket joined where the frames go keeps its socket and gets frames that decode;
// - what is published, joined with or REST-broadcast comes back as sent, odd keys included;
// - the gateway logs no error (console.error) and has no unhandled rejection while fuzzed;
// - afterwards it still serves: health, a member's chat-send accepted and broadcast to a
//   supabase-js private channel.
//
// The gateway is started in this process (`startGateway`, the code `npm start` runs) on a free
// port against the database of SUPABASE_DB_URL, so that its logs and rejections can be watched.
// A failure prints the property, the seed and the shrunk counterexample. `chaos/fuzz.test.ts`
// runs every property with a modest number of cases; `npm run chaos` calls fuzzAll with
// thousands, and `deno run -A chaos/fuzz.ts [runs] [seed]` runs them on a throw-away stack of
// their own.
import { isDeepStrictEqual } from "node:util";
import fc from "npm:fast-check@4.11.0";
import { anonKey, jwtSecret, serviceRoleKey, userToken } from "../local/keys.ts";
import { startGateway } from "../local/stack.ts";
import { closeDb } from "../supabase/functions/_shared/db.ts";
import type { TestUser } from "../local/test-helpers.ts";

// --- Figures and failures ----------------------------------------------------------------------

/** What one property did: how many cases it ran and what came back, by outcome. */
export interface FuzzFigures {
  name: string;
  runs: number;
  seed: number;
  ms: number;
  /** HTTP statuses (`"202"`), or Realtime outcomes (`"reply error"`, `"closed 1003"`). */
  outcomes: Record<string, number>;
}

export interface FuzzOptions {
  /** Cases per property. */
  runs: number;
  /** fast-check's seed; FUZZ_SEED or a fixed one by default, so a run can be repeated. */
  seed?: number;
  /** Where progress lines go (console.log by default). */
  log?: (line: string) => void;
}

export const defaultSeed = Number(Deno.env.get("FUZZ_SEED") ?? 20261215);

/** Shortens long strings, so a counterexample of 70 KB prints as a few lines. */
function printable(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v) =>
      typeof v === "string" && v.length > 300
        ? `${v.slice(0, 200)}…(${v.length} chars in all)…${v.slice(-40)}`
        : v instanceof Uint8Array
        ? `bytes[${v.length}]: ${[...v.slice(0, 64)].join(",")}`
        : v,
  );
}

/** A property's failure: its name, seed and the (shrunk) counterexample. */
export class FuzzFailure extends Error {}

async function runProperty<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  check: (value: T, outcome: (label: string) => void) => Promise<void>,
  { runs, seed = defaultSeed, log = console.log }: FuzzOptions,
  target: FuzzTarget,
): Promise<FuzzFigures> {
  const outcomes: Record<string, number> = {};
  const started = performance.now();
  const details = await fc.check(
    fc.asyncProperty(arbitrary, async (value) => {
      const before = target.problems.length;
      await check(value, (label) => outcomes[label] = (outcomes[label] ?? 0) + 1);
      // Anything the gateway logged or left unhandled meanwhile is this case's doing.
      await new Promise((resolve) => setTimeout(resolve, 0));
      if (target.problems.length > before) {
        throw new Error(`the gateway logged: ${target.problems.slice(before).join("\n")}`);
      }
    }),
    { numRuns: runs, seed },
  );
  const figures = { name, runs, seed, ms: Math.round(performance.now() - started), outcomes };
  log(formatFigures(figures));
  if (details.failed) {
    const error = details.errorInstance instanceof Error
      ? details.errorInstance.message
      : String(details.errorInstance);
    throw new FuzzFailure(
      `${name}: failed after ${details.numRuns} run(s) (seed ${details.seed}, path ` +
        `"${details.counterexamplePath}", ${details.numShrinks} shrink(s)).\n` +
        `Counterexample: ${printable(details.counterexample)}\n${error}`,
    );
  }
  return figures;
}

export function formatFigures({ name, runs, seed, ms, outcomes }: FuzzFigures): string {
  const seen = Object.entries(outcomes).sort(([a], [b]) => a.localeCompare(b))
    .map(([label, n]) => `${label}×${n}`).join(" ");
  return `fuzz ${name}: ${runs} runs, seed ${seed}, ${(ms / 1000).toFixed(1)} s — ${seen}`;
}

// --- The target: a gateway in this process, and the people and rooms it is fuzzed with ---------

export interface FuzzTarget {
  url: string;
  host: TestUser;
  member: TestUser;
  dj: TestUser;
  outsider: TestUser;
  anonymousMember: TestUser;
  /** A public room with host, member, dj and anonymousMember. */
  room: string;
  /** A private room of the host alone. */
  privateRoom: string;
  songId: string;
  /** What the gateway logged with console.error, and rejections nobody handled. */
  problems: string[];
  close(): Promise<void>;
}

/**
 * Starts a gateway in this process on a free port (against SUPABASE_DB_URL, with the
 * functions' environment that `npm test` and `withThrowawayStack` set) and the fixtures the
 * properties use, and watches the process for logged errors and unhandled rejections.
 */
export async function startFuzzTarget(): Promise<FuzzTarget> {
  // Imported here: test-helpers.ts reads the stack's environment when it loads, which a runner that
  // imports this module may set only later.
  const { createCast, createRoom, withDb } = await import("../local/test-helpers.ts");
  const problems: string[] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => {
    problems.push(args.map((a) => a instanceof Error ? a.stack : String(a)).join(" "));
    originalError(...args);
  };
  const onRejection = (event: PromiseRejectionEvent) => {
    event.preventDefault();
    problems.push(`unhandled rejection: ${event.reason?.stack ?? event.reason}`);
  };
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    problems.push(`uncaught error: ${event.error?.stack ?? event.message}`);
  };
  globalThis.addEventListener("unhandledrejection", onRejection);
  globalThis.addEventListener("error", onError);
  const gateway = await startGateway(Deno.env.get("SUPABASE_DB_URL")!, 0, () => {});
  const fixtures = await withDb(async (sql) => {
    const cast = await createCast(sql);
    const room = await createRoom(sql, cast.host, [
      cast.listener,
      [cast.dj, "dj"],
      cast.anonymousListener,
    ]);
    const privateRoom = await createRoom(sql, cast.host, [], "private");
    const [{ id: songId }] = await sql`select id from public.songs order by id limit 1`;
    return {
      host: cast.host,
      member: cast.listener,
      dj: cast.dj,
      outsider: cast.outsider,
      anonymousMember: cast.anonymousListener,
      room,
      privateRoom,
      songId: songId as string,
    };
  });
  return {
    url: gateway.url,
    ...fixtures,
    problems,
    async close() {
      await gateway.shutdown();
      // The functions it served opened this process's pools; a flush they asked for may still
      // be on its way (its timer is at most a batching interval away).
      await new Promise((resolve) => setTimeout(resolve, 300));
      await closeDb();
      console.error = originalError;
      globalThis.removeEventListener("unhandledrejection", onRejection);
      globalThis.removeEventListener("error", onError);
    },
  };
}

/** Runs `work` against a target of its own, closed afterwards. */
export async function withFuzzTarget<T>(work: (target: FuzzTarget) => Promise<T>): Promise<T> {
  const target = await startFuzzTarget();
  try {
    return await work(target);
  } finally {
    await target.close();
  }
}

// --- Values: JSON of every type and shape, with what JSON.stringify cannot write ----------------

/** An object written with its keys as given: repeated, `__proto__`, in any order. */
class Entries {
  /** `valid`: made by objectOf's valid branch, every field as the contract wants it. */
  constructor(readonly entries: [string, Json][], readonly valid = false) {}
  toJSON() {
    return { "(entries)": this.entries };
  }
}
/** JSON text written as is: `1e999`, `-0`, nesting 5,000 deep. */
class Raw {
  constructor(readonly text: string) {}
  toJSON() {
    return { "(raw)": this.text };
  }
}
type Json = null | boolean | number | string | Json[] | Entries | Raw | { [key: string]: Json };

function render(value: Json): string {
  if (value instanceof Raw) return value.text;
  if (value instanceof Entries) {
    return `{${value.entries.map(([k, v]) => `${JSON.stringify(k)}:${render(v)}`).join(",")}}`;
  }
  if (Array.isArray(value)) return `[${value.map(render).join(",")}]`;
  if (value !== null && typeof value === "object") {
    return render(new Entries(Object.entries(value)));
  }
  return JSON.stringify(value) ?? "null";
}

/** Characters that have broken parsers, databases and renderers before. */
const oddCharacter = fc.constantFrom(
  "\u0000",
  "\ud800",
  "\udfff",
  "\ud83c",
  "\u202e", // right-to-left override
  "\u200f",
  "\u0645", // Arabic
  "\ufeff",
  "\u3000",
  "\u00a0",
  "🎵",
  "👩‍👩‍👧",
  "e\u0301",
  "\n",
  "\r",
  "\t",
  " ",
  "\\",
  '"',
  "'",
  "%",
  "%00",
  "<",
  "{",
  "\u2028",
  "\uffff",
  "\u{10ffff}",
  "\u001f",
  "\u007f",
);

const protoKeys = [
  "__proto__",
  "constructor",
  "toString",
  "prototype",
  "valueOf",
  "hasOwnProperty",
];

const oddString: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.string({
      unit: fc.oneof(oddCharacter, fc.string({ unit: "binary", minLength: 1, maxLength: 1 })),
      maxLength: 24,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      "",
      " ",
      ...protoKeys,
      "null",
      "true",
      "NaN",
      "-1",
      "1e309",
      "0x10",
      "Infinity",
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: "grapheme", maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      "00000000-0000-0000-0000-000000000000",
      "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
      "{00000000-0000-4000-8000-000000000000}",
      "00000000000040008000000000000000",
      "room:",
      "room::chat",
      "room:x:chat",
      "user:1:activity",
      "realtime:",
      "chat:batch",
      "presence:member_added",
      "' or 1=1 --",
      "$1",
      "%s%n",
    ),
  },
);

/** Strings around the limits that matter: 64, 100, 200, 2000 characters, 1 KiB, 64 KiB, 1 MiB. */
const longString: fc.Arbitrary<string> = fc.tuple(
  fc.constantFrom(63, 64, 65, 101, 201, 1025, 1999, 2000, 2001, 65_600, 1_050_000),
  fc.constantFrom("x", "🎵", "\u0645", " "),
).map(([n, unit]) => unit.repeat(unit.length === 2 ? Math.ceil(n / 2) : n));

const oddNumber: fc.Arbitrary<number | Raw> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -1, 1.5, 2 ** 31, 2 ** 53, 2 ** 53 + 2, 2 ** 63, 1e308, -1e308, 5e-324),
  fc.constantFrom("1e999", "-1e999", "-0", "1E400", "123456789012345678901234567890", "0.1e-400")
    .map((text) => new Raw(text)),
);

/** `[[[…]]]` or `{"a":{"a":…}}` around jsonb's depth limit (32 here), or far beyond it. */
const nestedAround = (depths: number[]): fc.Arbitrary<Raw> =>
  fc.constantFrom(...depths).chain((n) =>
    fc.constantFrom(
      new Raw("[".repeat(n) + "]".repeat(n)),
      new Raw('{"a":'.repeat(n) + "1" + "}".repeat(n)),
    )
  );
const deepNesting = nestedAround([31, 32, 33, 200, 5_000]);

const anyKey = fc.oneof(fc.constantFrom(...protoKeys), oddString);

/** Any JSON value, objects with repeated and prototype keys included. */
const anyJson: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    fc.constant(null),
    fc.boolean(),
    oddNumber,
    oddString,
    fc.array(tie("value"), { maxLength: 4 }),
    fc.array(fc.tuple(anyKey, tie("value")), { maxLength: 4 }).map((e) => new Entries(e)),
  ),
})).value;

const bigJson: fc.Arbitrary<Json> = fc.oneof(longString, deepNesting);

/** An arbitrary for a field, which may know which of its values are valid ones. */
type FieldArb = fc.Arbitrary<Json> & { valid?: fc.Arbitrary<Json> };
const validOf = (arb: FieldArb): fc.Arbitrary<Json> => arb.valid ?? arb;

/** A field's value: mostly one of `good` (the first of them valid, the others near misses),
 * sometimes anything. */
function field(...good: FieldArb[]): FieldArb {
  return Object.assign(
    fc.oneof(
      { weight: 12, arbitrary: fc.oneof(...good) },
      { weight: 1, arbitrary: anyJson },
      { weight: 1, arbitrary: bigJson },
    ),
    { valid: validOf(good[0]) },
  );
}

/** A claim's value: as `field`, but small enough for an HTTP header (servers refuse larger
 * ones before any handler runs). */
function claimField(...good: fc.Arbitrary<Json>[]): fc.Arbitrary<Json> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.oneof(...good) },
    { weight: 2, arbitrary: anyJson },
    { weight: 1, arbitrary: nestedAround([31, 32, 33, 200]) },
  );
}

const absent = Symbol("absent");

/**
 * An object with `shape`'s fields: half the time a valid one (every field not `optional`
 * present, each with a valid value), so that requests get past validation to the database;
 * otherwise any field may be missing or anything, with extra or repeated keys.
 */
function objectOf(shape: Record<string, FieldArb>, optional: string[] = []): FieldArb {
  const keys = Object.keys(shape);
  const clean = fc.tuple(
    ...Object.entries(shape).map(([key, arb]) =>
      optional.includes(key)
        ? fc.option(validOf(arb), { nil: absent, freq: 2 }).map((v) =>
          v === absent ? [] : [[key, v] as [string, Json]]
        )
        : validOf(arb).map((v) => [[key, v] as [string, Json]])
    ),
  ).map((parts) => new Entries(parts.flat(), true) as Json);
  const fields = Object.entries(shape).map(([key, arb]) =>
    fc.option(arb, { nil: absent, freq: 8 }).map((v) =>
      v === absent ? [] : [[key, v] as [string, Json]]
    )
  );
  const dirty = fc.tuple(
    fc.tuple(...fields),
    fc.oneof(
      { weight: 3, arbitrary: fc.constant([]) },
      {
        weight: 1,
        arbitrary: fc.array(
          fc.tuple(fc.oneof(fc.constantFrom(...keys), anyKey), anyJson),
          { minLength: 1, maxLength: 2 },
        ),
      },
    ),
    fc.boolean(),
  ).map(([present, extra, extraFirst]) => {
    const own = present.flat();
    // A repeated key: JSON.parse keeps the last one, so where it goes matters.
    return new Entries(extraFirst ? [...extra, ...own] : [...own, ...extra]) as Json;
  });
  return Object.assign(fc.oneof(clean, dirty), { valid: clean });
}

/** A request's body or query string, and whether it is a valid one. */
interface Input {
  text: string;
  valid: boolean;
}

const invalid = (text: string): Input => ({ text, valid: false });

/** A request body: mostly `shape`, sometimes any JSON, text that is not JSON, or nothing. */
function bodyOf(shape: fc.Arbitrary<Json>): fc.Arbitrary<Input> {
  return fc.oneof(
    {
      weight: 12,
      arbitrary: shape.map((v) => ({ text: render(v), valid: v instanceof Entries && v.valid })),
    },
    { weight: 1, arbitrary: anyJson.map((v) => invalid(render(v))) },
    { weight: 1, arbitrary: bigJson.map((v) => invalid(render(v))) },
    {
      weight: 1,
      arbitrary: fc.oneof(
        fc.constantFrom("", "{", "{nope}", "[1,]", "nul", '{"a":1}{"a":2}', "\ufeff{}", "{'a':1}"),
        oddString,
      ).map(invalid),
    },
  );
}

const uuid = fc.uuid();
// TRACE and TRACK are methods fetch() will not send (nor let a server build a Request with):
// they go over a socket of their own.
const methods = [
  "GET",
  "POST",
  "PUT",
  "PATCH",
  "DELETE",
  "HEAD",
  "OPTIONS",
  "PROPFIND",
  "TRACE",
  "TRACK",
] as const;
const forbiddenByFetch = new Set(["TRACE", "TRACK"]);
const contentTypes = fc.constantFrom(
  undefined,
  "application/json",
  "application/json; charset=utf-16",
  "text/plain",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=x",
  "application/octet-stream",
  "ünïcode/ÿ",
);

// --- Tokens --------------------------------------------------------------------------------------

type Who = "host" | "member" | "dj" | "outsider" | "anonymousMember";
/** How a token is made; generated, then materialized (signing is asynchronous). */
type TokenRecipe =
  | { kind: "none" }
  | { kind: "header"; value: string }
  | { kind: "key"; key: "anon" | "service_role" }
  | { kind: "user"; who: Who }
  | { kind: "ghost" } // a user who does not exist
  | {
    kind: "signed";
    header: Json;
    claims: Json;
    secret: "right" | "wrong" | "none";
    scheme: string;
  };

/** What a token deserves: to be used, refused as invalid, or not seen as a token at all. */
type TokenVerdict = "user" | "service" | "anon" | "invalid" | "missing";

const now = () => Math.floor(Date.now() / 1000);

/** Claims around those Supabase Auth issues, each of them sometimes wrong. */
function claimsArb(target: FuzzTarget): fc.Arbitrary<Json> {
  const inOneHour = fc.constant(0).map(() => now() + 3600);
  return objectOf({
    sub: claimField(
      fc.constantFrom(target.member.id, target.host.id, target.outsider.id),
      uuid,
      fc.constantFrom("not-a-uuid", "", " ", "00000000-0000-0000-0000-00000000000g"),
      oddString,
      fc.constant(null),
      fc.integer(),
      fc.constant([target.member.id]),
    ),
    role: claimField(
      fc.constantFrom("authenticated", "anon", "service_role"),
      fc.constantFrom(
        "postgres",
        "supabase_admin",
        "",
        "AUTHENTICATED",
        "authenticator",
        "pg_read_server_files",
      ),
      fc.constant(["authenticated"]),
    ),
    exp: claimField(
      inOneHour,
      fc.constant(0).map(() => now() - 3600),
      fc.constantFrom(1e300, 9_999_999_999.5, "9999999999"),
    ),
    nbf: claimField(
      fc.constant(0).map(() => now() - 60),
      fc.constant(0).map(() => now() + 3600),
      fc.constant("0"),
    ),
    iat: claimField(fc.constant(0).map(() => now()), fc.constant("yesterday")),
    is_anonymous: claimField(fc.boolean(), fc.constantFrom("true", "false", "yes", 1, 0)),
    email: claimField(fc.constant("someone@example.test"), oddString),
    user_metadata: claimField(
      fc.constant({}),
      fc.constant({ name: "Lucía" }),
      fc.constant({ bad: "nul\u0000" }),
      fc.constant({ bad: "\ud800" }),
    ),
    session_id: claimField(uuid),
  });
}

function tokenArb(target: FuzzTarget): fc.Arbitrary<TokenRecipe> {
  const header = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<Json>({ alg: "HS256", typ: "JWT" }, { alg: "HS256" }) },
    {
      weight: 3,
      arbitrary: fc.constantFrom<Json>(
        { alg: "none", typ: "JWT" },
        { alg: "HS512" },
        { alg: "hs256" },
        { alg: "RS256", kid: "nope" },
        { alg: "ES256" },
        { alg: "EdDSA" },
        { alg: ["HS256"] },
        { typ: "JWT" },
        { alg: "HS256", crit: ["exp"] },
        { alg: "HS256", b64: false, crit: ["b64"] },
        new Entries([["alg", new Entries([["toString", 1]])]]),
        new Entries([["alg", new Entries([["__proto__", null]])]]),
        new Entries([["__proto__", new Entries([["alg", "HS256"]])]]),
        new Entries([["alg", "none"], ["alg", "HS256"]]),
        new Entries([["alg", "HS256"], ["alg", "none"]]),
        [],
        "HS256",
      ),
    },
    { weight: 1, arbitrary: anyJson },
  );
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant<TokenRecipe>({ kind: "none" }) },
    {
      weight: 2,
      arbitrary: fc.oneof(
        fc.constantFrom(
          "Basic dXNlcjpwYXNz",
          "Bearer",
          "Bearer ",
          "Bearer a b",
          "Token abc",
          "bearer",
        ),
        oddString.map((s) => `Bearer ${s}`),
        fc.constantFrom("a", "a.b", "a.b.c", "a.b.c.d", "...", "e30.e30.", "e30.e30.e30")
          .map((s) => `Bearer ${s}`),
        fc.integer({ min: 1, max: 40_000 }).map((n) => `Bearer ${"a".repeat(n)}`),
      ).map((value): TokenRecipe => ({ kind: "header", value })),
    },
    {
      weight: 3,
      arbitrary: fc.constantFrom("anon", "service_role").map((key): TokenRecipe => ({
        kind: "key",
        key: key as "anon" | "service_role",
      })),
    },
    {
      weight: 24,
      arbitrary: fc.constantFrom<Who>(
        "host",
        "member",
        "member",
        "dj",
        "outsider",
        "anonymousMember",
      )
        .map((who): TokenRecipe => ({ kind: "user", who })),
    },
    { weight: 1, arbitrary: fc.constant<TokenRecipe>({ kind: "ghost" }) },
    {
      weight: 4,
      arbitrary: fc.record({
        header,
        claims: fc.oneof({ weight: 9, arbitrary: claimsArb(target) }, {
          weight: 1,
          arbitrary: anyJson,
        }),
        secret: fc.constantFrom("right", "right", "right", "wrong", "none") as fc.Arbitrary<
          "right" | "wrong" | "none"
        >,
        scheme: fc.constantFrom("Bearer", "Bearer", "Bearer", "bearer", "BEARER"),
      }).map((r): TokenRecipe => ({ kind: "signed", ...r })),
    },
  );
}

const base64url = (bytes: Uint8Array) =>
  btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const encodeSegment = (text: string) => {
  const bytes = new TextEncoder().encode(text);
  let out = "";
  for (let i = 0; i < bytes.length; i += 30_000) {
    out += String.fromCharCode(...bytes.subarray(i, i + 30_000));
  }
  return btoa(out).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
};

const hmacKeys = new Map<string, Promise<CryptoKey>>();
function hmacKey(secret: string): Promise<CryptoKey> {
  if (!hmacKeys.has(secret)) {
    hmacKeys.set(
      secret,
      crypto.subtle.importKey(
        "raw",
        new TextEncoder().encode(secret),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      ),
    );
  }
  return hmacKeys.get(secret)!;
}

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether Postgres' jsonb can hold `value` as our boundary allows it: no \u0000, no lone
 * surrogate, at most 32 levels. */
function storableJson(value: unknown, depth = 0): boolean {
  if (typeof value === "string") return value.isWellFormed() && !value.includes("\u0000");
  if (value === null || typeof value !== "object") return true;
  if (depth >= 32) return false;
  return Object.entries(value).every(([k, v]) =>
    storableJson(k, depth) && storableJson(v, depth + 1)
  );
}

/** What a correctly signed HS256 token with these claims deserves (API.md §1: a user token
 * carries a uuid `sub`, an API role, a future `exp` and a boolean `is_anonymous`). */
function verdictOfClaims(claims: unknown): TokenVerdict {
  if (claims === null || typeof claims !== "object" || Array.isArray(claims)) return "invalid";
  const c = claims as Record<string, unknown>;
  const t = now();
  if (typeof c.exp !== "number" || c.exp <= t + 5) return "invalid";
  if ("nbf" in c && (typeof c.nbf !== "number" || c.nbf > t - 5)) return "invalid";
  if ("iat" in c && typeof c.iat !== "number") return "invalid";
  if (typeof c.role !== "string" || !["anon", "authenticated", "service_role"].includes(c.role)) {
    return "invalid";
  }
  if ("sub" in c && (typeof c.sub !== "string" || !uuidPattern.test(c.sub))) return "invalid";
  if ("is_anonymous" in c && typeof c.is_anonymous !== "boolean") return "invalid";
  if (!storableJson(c)) return "invalid";
  if (c.role === "service_role") return "service";
  return c.role === "authenticated" && typeof c.sub === "string" ? "user" : "anon";
}

interface Token {
  /** The Authorization header, if any. */
  authorization?: string;
  /** The bare token (Realtime's apikey, a join's access_token). */
  token?: string;
  verdict: TokenVerdict;
}

async function materialize(recipe: TokenRecipe, target: FuzzTarget): Promise<Token> {
  const bearer = (token: string, verdict: TokenVerdict): Token => ({
    authorization: `Bearer ${token}`,
    token,
    verdict,
  });
  switch (recipe.kind) {
    case "none":
      return { verdict: "missing" };
    case "header": {
      // What an HTTP header can carry (fetch refuses the rest): tab, space, visible ASCII and
      // bytes above 0x7f.
      const value = recipe.value.replace(/[^\t\x20-\x7e\x80-\xff]/g, "?");
      const match = /^Bearer\s+(\S+)$/i.exec(value.trim());
      return {
        authorization: value,
        token: match?.[1],
        verdict: match ? "invalid" : "missing",
      };
    }
    case "key":
      return recipe.key === "anon" ? bearer(anonKey, "anon") : bearer(serviceRoleKey, "service");
    case "user":
      return bearer(target[recipe.who].token, "user");
    case "ghost":
      return bearer(await userToken(crypto.randomUUID()), "user");
    case "signed": {
      const signingInput = `${encodeSegment(render(recipe.header))}.${
        encodeSegment(render(recipe.claims))
      }`;
      const secret = recipe.secret === "right"
        ? jwtSecret
        : "another-secret-of-at-least-32-characters-long";
      const signature = recipe.secret === "none" ? "" : base64url(
        new Uint8Array(
          await crypto.subtle.sign(
            "HMAC",
            await hmacKey(secret),
            new TextEncoder().encode(signingInput),
          ),
        ),
      );
      const token = `${signingInput}.${signature}`;
      let header: unknown;
      let claims: unknown;
      try {
        header = JSON.parse(render(recipe.header));
        claims = JSON.parse(render(recipe.claims));
      } catch {
        header = undefined;
      }
      const header_ = header as Record<string, unknown> | undefined;
      const wellSigned = recipe.secret === "right" && header_ !== null &&
        typeof header_ === "object" && !Array.isArray(header_) && header_.alg === "HS256" &&
        Object.keys(header_).every((k) => k === "alg" || k === "typ");
      return {
        authorization: `${recipe.scheme} ${token}`,
        token,
        verdict: wellSigned ? verdictOfClaims(claims) : "invalid",
      };
    }
  }
}

// --- HTTP oracles -------------------------------------------------------------------------------

const contractStatus: Record<number, string[]> = {
  400: ["invalid_request", "push_not_enabled"],
  401: ["not_authenticated", "invalid_token"],
  403: ["not_a_member", "not_host", "identified_only", "user_id_mismatch", "tls_required"],
  404: ["room_not_found", "not_found"],
  405: ["method_not_allowed"],
  413: ["payload_too_large", "user_info_too_large"],
  429: ["rate_limited"],
};

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

interface Answer {
  status: number;
  headers: Headers;
  text: string;
}

async function send(target: FuzzTarget, request: Sent): Promise<Answer> {
  if (forbiddenByFetch.has(request.method)) return await sendRaw(target, request);
  const hasBody = request.body !== undefined && request.method !== "GET" &&
    request.method !== "HEAD";
  const response = await fetch(`${target.url}${request.path}`, {
    method: request.method,
    headers: request.headers,
    body: hasBody ? request.body : undefined,
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** An HTTP/1.1 request written by hand, read to the end of the connection. */
async function sendRaw(target: FuzzTarget, request: Sent): Promise<Answer> {
  const { hostname, port } = new URL(target.url);
  const body = new TextEncoder().encode(request.body ?? "");
  const lines = [
    `${request.method} ${request.path} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    "Connection: close",
    `Content-Length: ${body.length}`,
    ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`),
  ];
  // Header values are bytes (latin-1), as fetch would send them.
  const head = Uint8Array.from(`${lines.join("\r\n")}\r\n\r\n`, (c) => c.charCodeAt(0) & 0xff);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  const chunks: Uint8Array[] = [];
  try {
    await connection.write(new Uint8Array([...head, ...body]));
    const buffer = new Uint8Array(65536);
    for (;;) {
      const n = await connection.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
    }
  } finally {
    connection.close();
  }
  const text = new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  const [top, ...rest] = text.split("\r\n\r\n");
  const [statusLine, ...headerLines] = top.split("\r\n");
  const headers = new Headers();
  for (const line of headerLines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1]),
    headers,
    text: rest.join("\r\n\r\n"),
  };
}

/** Throws, describing the answer, unless `ok`. */
function expect(ok: boolean, what: string, answer: Answer): void {
  if (!ok) {
    throw new Error(`${what}; got ${answer.status} ${answer.text.slice(0, 500)}`);
  }
}

/** A function's error: the contract's shape, status and code, and CORS. */
function checkContractError(answer: Answer): { code: string } {
  let body: unknown;
  try {
    body = JSON.parse(answer.text);
  } catch {
    expect(false, "an error body must be JSON", answer);
  }
  const error = (body as { error?: Record<string, unknown> })?.error;
  expect(
    typeof body === "object" && body !== null && Object.keys(body).length === 1 &&
      typeof error === "object" && error !== null,
    'the error must be {"error": {...}}',
    answer,
  );
  const { code, message, details, ...rest } = error!;
  expect(
    typeof code === "string" && /^[a-z]+(_[a-z]+)*$/.test(code) && typeof message === "string" &&
      message.length > 0 && Object.keys(rest).length === 0,
    "the error must be {code, message, details?}",
    answer,
  );
  void details;
  expect(
    (contractStatus[answer.status] ?? []).includes(code as string),
    `status ${answer.status} with code ${code} is not one of API.md §4`,
    answer,
  );
  if (answer.status === 429) {
    expect(answer.headers.has("retry-after"), "429 needs Retry-After", answer);
  }
  return { code: code as string };
}

function checkCors(answer: Answer): void {
  expect(
    answer.headers.get("access-control-allow-origin") === "*",
    "every response carries CORS headers",
    answer,
  );
}

// --- The functions --------------------------------------------------------------------------------

interface FunctionCase {
  method: string;
  query: Input;
  body?: Input;
  contentType?: string;
  token: TokenRecipe;
  proto?: string;
}

interface Endpoint {
  name: string;
  /** The methods the function serves. */
  serves: ("GET" | "POST")[];
  /** The request's query string (GET) and body (POST), generated. */
  query?: (t: FuzzTarget) => fc.Arbitrary<Input>;
  body?: (t: FuzzTarget) => fc.Arbitrary<Input>;
  /** Whether the anon key may use it (health). */
  anonAllowed?: boolean;
}

/** A query parameter's value: mostly one of `good` (the first valid), sometimes anything. */
function param(...good: fc.Arbitrary<string>[]): fc.Arbitrary<string> & {
  valid: fc.Arbitrary<string>;
} {
  return Object.assign(
    fc.oneof(
      { weight: 6, arbitrary: fc.oneof(...good) },
      { weight: 2, arbitrary: oddString },
      { weight: 1, arbitrary: longString.map((s) => s.slice(0, 600)) },
    ),
    { valid: good[0] },
  );
}

/** Percent-encoding as UTF-8; lone surrogates become U+FFFD, as a browser sends them. */
function encodeUriLenient(s: string): string {
  return [...new TextEncoder().encode(s)].map((b) =>
    /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b))
      ? String.fromCharCode(b)
      : `%${b.toString(16).padStart(2, "0").toUpperCase()}`
  ).join("");
}

/**
 * `?a=b&…`: half the time valid (every parameter not `optional`, valid values; `validTogether`
 * false when valid values may still clash), otherwise parameters missing, odd, repeated (the
 * last one counts) and malformed pieces.
 */
function queryOf(
  params: Record<string, ReturnType<typeof param>>,
  optional: string[] = [],
  { validTogether = true } = {},
): fc.Arbitrary<Input> {
  const pairOf = (key: string, value: string) =>
    `${encodeUriLenient(key)}=${encodeUriLenient(value)}`;
  const join = (parts: (string | undefined)[]) => {
    const present = parts.filter((p): p is string => p !== undefined);
    return present.length ? `?${present.join("&")}` : "";
  };
  const clean = fc.tuple(
    ...Object.entries(params).map(([key, arb]) =>
      optional.includes(key)
        ? fc.option(arb.valid.map((v) => pairOf(key, v)), { nil: undefined, freq: 2 })
        : arb.valid.map((v) => pairOf(key, v))
    ),
  ).map((parts) => ({ text: join(parts), valid: validTogether }));
  const pair = fc.oneof(
    {
      weight: 8,
      arbitrary: fc.constantFrom(...Object.keys(params)).chain((key) =>
        params[key].map((value) => pairOf(key, value))
      ),
    },
    { weight: 1, arbitrary: fc.tuple(anyKey, oddString).map(([k, v]) => pairOf(k, v)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom("%", "%zz", "%ED%A0%80", "=", "a=b=c", "+", "&", "%00=%00"),
    },
  );
  const dirty = fc.tuple(
    fc.tuple(
      ...Object.entries(params).map(([key, arb]) =>
        fc.option(arb.map((v) => pairOf(key, v)), { nil: undefined, freq: 3 })
      ),
    ),
    fc.array(pair, { maxLength: 4 }),
  ).map(([own, more]) => invalid(join([...own, ...more])));
  return fc.oneof(clean, dirty);
}

const digits = (min: number, max: number) => fc.integer({ min, max }).map(String);
const oddDigits = fc.constantFrom("0", "-1", "1.5", "1e3", "0x10", " 5", "99999999999999999", "");

/** Room ids in their valid form: the public room mostly, the private one, any uuid. */
function roomIds(t: FuzzTarget): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constant(t.room) },
    { weight: 1, arbitrary: fc.constant(t.privateRoom) },
    { weight: 1, arbitrary: fc.constant(t.room.toUpperCase()) },
    { weight: 2, arbitrary: uuid },
  );
}

const nearRoomIds = (t: FuzzTarget) =>
  fc.constantFrom(`{${t.room}}`, t.room.replace(/-/g, ""), ` ${t.room}`, `${t.room}\u0000`);

/** Channel names: ours (the fixtures' rooms and users), then names that do not parse. */
function channels(t: FuzzTarget): fc.Arbitrary<string> {
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(
        fc.constantFrom(t.room, t.privateRoom, "00000000-0000-4000-8000-000000000000"),
        fc.constantFrom("", ":chat", ":queue", ":queue", ":playback"),
      ).map(([room, kind]) => `room:${room}${kind}`),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(
        fc.constantFrom(t.member.id, t.host.id),
        fc.constantFrom(":activity", ":notifications"),
      ).map(([id, kind]) => `user:${id}${kind}`),
    },
  );
}

const oddChannels = (t: FuzzTarget) =>
  fc.oneof(
    fc.constantFrom(
      `room:${t.room}:nope`,
      `room:${t.room}:chat:x`,
      `user:x:activity`,
      `user:${t.member.id}:other`,
      `user:${t.member.id}`,
      "room:",
      "lobby",
    ),
    oddString,
  );

const chatMessage: FieldArb = objectOf({
  client_id: field(
    uuid,
    fc.stringMatching(/^[A-Za-z0-9:_-]{1,64}$/),
    fc.constantFrom("a".repeat(64), "a".repeat(65), "with space", "é"),
  ),
  body: field(
    fc.constantFrom(
      "hi",
      "¡Qué buena esta!",
      "🎵".repeat(1000),
      "🎵".repeat(2000),
      "x".repeat(2000),
      "\u202eabc",
      "a\u0301",
      "مرحبا",
    ),
    fc.constantFrom("", "   ", "\u3000", "\u00a0", "\ufeff", "x".repeat(2001), "🎵".repeat(2001)),
    oddString,
  ),
  push: field(fc.constant({ title: "t" }), fc.constant({}), fc.constant(new Raw("[]"))),
}, ["push"]);

const endpoints: Endpoint[] = [
  {
    name: "health",
    serves: ["GET"],
    query: () => queryOf({ x: param(fc.constant("1")) }, ["x"]),
    anonAllowed: true,
  },
  {
    name: "room-context",
    serves: ["GET"],
    query: (t) =>
      queryOf({
        room_id: param(roomIds(t), nearRoomIds(t)),
        chat_limit: param(digits(1, 200), digits(0, 201), oddDigits),
        history_limit: param(digits(1, 50), digits(0, 51), oddDigits),
      }, ["chat_limit", "history_limit"]),
  },
  {
    name: "history",
    serves: ["GET"],
    query: (t) => {
      const channel = param(channels(t), oddChannels(t));
      const limit = param(digits(1, 1000), digits(0, 1001), oddDigits);
      const moment = param(digits(0, 2 ** 53), fc.constant("8640000000000001"), oddDigits);
      const cursor = param(
        fc.record({
          channel: channels(t),
          direction: fc.constantFrom("backwards", "forwards"),
          start: fc.oneof(fc.constant(null), fc.nat()),
          end: fc.oneof(fc.constant(null), fc.nat()),
          after: fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
        }).map((c) => encodeSegment(JSON.stringify(c))),
        fc.record({
          channel: channels(t),
          direction: fc.constantFrom("backwards", "up"),
          start: fc.oneof(fc.constant(null), fc.integer(), fc.constant(8.64e15 + 1)),
          end: fc.oneof(fc.constant(null), fc.integer({ min: 0 })),
          after: fc.oneof(fc.constant(-1), fc.constant(2 ** 60), fc.constant("1")),
        }).map((c) => encodeSegment(JSON.stringify(c))),
        anyJson.map((v) => encodeSegment(render(v))),
      );
      const direction = param(fc.constantFrom("backwards", "forwards"), fc.constant("sideways"));
      const afterSeq = param(digits(0, 2 ** 53), oddDigits);
      const rewind = param(
        fc.constantFrom("1", "100", "30s", "2m", "9999m", "9999s"),
        fc.constantFrom("101", "0", "1h", "s", "99999"),
      );
      return fc.oneof(
        // Valid values may still clash: a cursor is another page's (mixed with direction, start
        // or end, or given for another channel, it is refused), after_seq is for chat channels,
        // and a persist-last channel answers rewind=1 only.
        queryOf({ channel, limit, direction, start: moment, end: moment, cursor }, [
          "limit",
          "direction",
          "start",
          "end",
          "cursor",
        ], { validTogether: false }),
        queryOf({ channel, rewind }, [], { validTogether: false }),
        queryOf({ channel, after_seq: afterSeq, limit }, ["limit"], { validTogether: false }),
      );
    },
  },
  {
    name: "presence GET",
    serves: ["GET", "POST"],
    query: (t) => queryOf({ room_id: param(roomIds(t), nearRoomIds(t)) }),
  },
  {
    name: "presence POST",
    serves: ["GET", "POST"],
    body: (t) =>
      bodyOf(objectOf({
        action: field(
          fc.constantFrom("join", "join", "heartbeat", "leave"),
          fc.constantFrom("JOIN", "ping"),
        ),
        room_id: field(roomIds(t), nearRoomIds(t)),
        connection_id: field(
          fc.stringMatching(/^[A-Za-z0-9_-]{8,64}$/),
          fc.constantFrom("short", "a".repeat(65), "with space!"),
        ),
        user_id: field(fc.constantFrom(t.member.id, t.host.id), uuid),
        user_info: field(
          fc.oneof(
            fc.constant({ name: "Lucía" }),
            fc.constant({}),
            fc.constant({ pad: "x".repeat(1000) }),
          ),
          fc.constant({ pad: "x".repeat(1020) }),
          fc.constant({ pad: "🎵".repeat(300) }),
          fc.dictionary(anyKey, anyJson, { maxKeys: 3 }).map((d) => d as Json),
        ),
      }, ["user_id", "user_info"])),
  },
  {
    name: "chat-send",
    serves: ["POST"],
    body: (t) =>
      bodyOf(objectOf({
        room_id: field(roomIds(t), nearRoomIds(t)),
        messages: field(
          fc.array(validOf(chatMessage), { minLength: 1, maxLength: 3 }),
          fc.array(chatMessage, { minLength: 1, maxLength: 3 }),
          fc.constantFrom(0, 50, 51).chain((n) =>
            fc.constant(
              Array.from({ length: n }, (_, i) => ({ client_id: `bulk-${i}`, body: "b" })),
            )
          ),
        ),
      })),
  },
  {
    name: "playback",
    serves: ["POST"],
    body: (t) =>
      bodyOf(objectOf({
        room_id: field(roomIds(t), nearRoomIds(t)),
        song_id: field(fc.oneof(fc.constant(t.songId), fc.constant(null)), uuid),
        position_ms: field(
          fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
          oddNumber,
        ),
        is_playing: field(fc.boolean(), fc.constantFrom("true", 1)),
        seq: field(
          fc.oneof(fc.nat(), fc.constant(Number.MAX_SAFE_INTEGER)),
          oddNumber,
        ),
      })),
  },
  {
    name: "publish",
    serves: ["POST"],
    body: (t) => {
      const message = objectOf({
        channel: field(channels(t), oddChannels(t)),
        event: field(
          fc.stringMatching(/^[A-Za-z0-9:_.-]{1,100}$/).filter((e) =>
            !/^(chat|playback|presence):/.test(e)
          ),
          fc.constantFrom("queue:add", "chat:batch", "playback:x", "presence:x", "a".repeat(101)),
        ),
        payload: field(
          fc.constant({ song_id: t.songId }),
          fc.dictionary(anyKey, anyJson, { maxKeys: 3 }).map((d) => d as Json),
          fc.constant({ pad: "x".repeat(70_000) }),
        ),
        push: field(fc.constant({ title: "t" })),
        id: field(uuid, fc.constantFrom("a".repeat(65), "dup-1")),
      }, ["push", "id"]);
      return bodyOf(
        fc.oneof(
          message,
          objectOf({
            messages: field(
              fc.array(validOf(message), { minLength: 1, maxLength: 3 }),
              fc.array(message, { minLength: 1, maxLength: 3 }),
              fc.constant([]),
            ),
          }),
        ),
      );
    },
  },
];

function functionCase(endpoint: Endpoint, t: FuzzTarget): fc.Arbitrary<FunctionCase> {
  const main = endpoint.body ? "POST" : "GET";
  return fc.record({
    method: fc.oneof({ weight: 12, arbitrary: fc.constant(main) }, {
      weight: 1,
      arbitrary: fc.constantFrom(...methods),
    }),
    query: endpoint.query ? endpoint.query(t) : fc.constant({ text: "", valid: true }),
    body: endpoint.body ? endpoint.body(t) : fc.option(oddString.map(invalid), { nil: undefined }),
    contentType: contentTypes,
    token: tokenArb(t),
    proto: fc.option(fc.constantFrom("http", "https", "ftp", "", "https, http"), {
      nil: undefined,
      freq: 4,
    }),
  }, { requiredKeys: ["method", "query", "token"] });
}

/** Fuzzes one function through the gateway and checks every answer against the contract. */
async function fuzzFunction(
  endpoint: Endpoint,
  target: FuzzTarget,
  options: FuzzOptions,
): Promise<FuzzFigures> {
  const path = `/functions/v1/${endpoint.name.split(" ")[0]}`;
  return await runProperty(
    endpoint.name,
    functionCase(endpoint, target),
    async (c, outcome) => {
      const token = await materialize(c.token, target);
      const headers: Record<string, string> = {};
      if (token.authorization !== undefined) headers.authorization = token.authorization;
      if (c.contentType !== undefined) headers["content-type"] = c.contentType;
      if (c.proto !== undefined) headers["x-forwarded-proto"] = c.proto;
      const answer = await send(target, {
        method: c.method,
        path: path + c.query.text,
        headers,
        body: c.body?.text,
      });
      outcome(String(answer.status));
      expect(answer.status < 500, "no input produces a 5xx (the database is up)", answer);
      checkCors(answer);
      if (c.method === "OPTIONS") {
        return expect(
          answer.status === 204,
          "OPTIONS is the preflight",
          answer,
        );
      }
      if (!(endpoint.serves as string[]).includes(c.method)) {
        expect(answer.status === 405, `${c.method} is 405`, answer);
        if (c.method !== "HEAD") checkContractError(answer);
        return;
      }
      if (answer.status >= 300) {
        const { code } = checkContractError(answer);
        if (token.verdict === "invalid") {
          expect(code === "invalid_token", "a bad token is 401 invalid_token", answer);
        } else if (token.verdict === "missing") {
          expect(code === "not_authenticated", "no token is 401 not_authenticated", answer);
        } else {
          expect(answer.status !== 401, `a good token (${token.verdict}) is not refused`, answer);
          if (token.verdict === "anon" && !endpoint.anonAllowed) {
            expect(code === "identified_only", "the anon key identifies nobody", answer);
          }
          // What the contract calls valid is not refused as invalid (a channel without push
          // refuses a push, which only the rule knows).
          const input = endpoint.body ? c.body : c.query;
          if (input?.valid && c.method === (endpoint.body ? "POST" : "GET")) {
            expect(
              (answer.status !== 400 || code === "push_not_enabled") && answer.status !== 413,
              "a valid request is not refused as invalid",
              answer,
            );
          }
        }
      } else {
        expect(
          token.verdict !== "invalid" && token.verdict !== "missing",
          `a ${token.verdict} token may not get a ${answer.status}`,
          answer,
        );
        JSON.parse(answer.text);
      }
    },
    options,
    target,
  );
}

/** Paths and methods the gateway has no function for. */
export function fuzzGatewayPaths(target: FuzzTarget, options: FuzzOptions): Promise<FuzzFigures> {
  const segment = fc.oneof(
    fc.constantFrom(
      "",
      "_shared",
      "..",
      "%2e%2e",
      "constructor",
      "__proto__",
      "toString",
      "health%00",
      "chat-send/extra",
      "Health",
    ),
    oddString.map(encodeUriLenient),
  );
  const path = fc.oneof(
    segment.map((s) => `/functions/v1/${s}`),
    segment.map((s) => `/${s}`),
    fc.constantFrom("/functions", "/functions/v1", "/rest/v1/rpc/send_chat", "/storage/v1/object"),
  );
  return runProperty(
    "gateway paths",
    fc.tuple(path, fc.constantFrom(...methods), tokenArb(target)),
    async ([p, method, recipe], outcome) => {
      const token = await materialize(recipe, target);
      const headers: Record<string, string> = token.authorization
        ? { authorization: token.authorization }
        : {};
      const answer = await send(target, {
        method,
        path: p,
        headers,
        body: method === "POST" ? "{}" : undefined,
      });
      outcome(String(answer.status));
      expect(answer.status < 500, "no path produces a 5xx", answer);
    },
    options,
    target,
  );
}

// --- The Auth stand-in ------------------------------------------------------------------------------

/** Supabase Auth's error shapes (local/auth/errors.ts): dated, initial, OAuth, or the gateway's. */
function checkAuthError(answer: Answer): void {
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(answer.text);
  } catch {
    expect(false, "an Auth error is JSON", answer);
  }
  const dated = typeof body.code === "string" && typeof body.message === "string";
  const initial = body.code === answer.status && typeof body.error_code === "string" &&
    typeof body.msg === "string";
  const oauth = typeof body.error === "string" && typeof body.error_description === "string";
  const gateway = typeof body.message === "string" && answer.status === 401;
  expect(dated || initial || oauth || gateway, "an Auth error has one of Auth's shapes", answer);
}

export function fuzzAuth(target: FuzzTarget, options: FuzzOptions): Promise<FuzzFigures> {
  const email = field(
    fc.oneof(
      uuid.map((id) => `fuzz-${id}@example.test`),
      fc.constantFrom("host@whatssound.test", "HOST@whatssound.test", "dj@whatssound.test"),
    ),
    fc.constantFrom("a@b", "@", "a".repeat(250) + "@x.test", "ä@x.test"),
    oddString,
  );
  const password = field(
    fc.constantFrom("whatssound-local", "correct horse", "x".repeat(72)),
    fc.constantFrom("short", "", "é".repeat(37), "x".repeat(73)),
    oddString,
  );
  const body = bodyOf(objectOf({
    email,
    password,
    phone: field(fc.constant(""), fc.constant("+15555550100")),
    data: field(
      fc.constant({ name: "Lucía" }),
      fc.dictionary(anyKey, anyJson, { maxKeys: 3 }).map((d) => d as Json),
    ),
    refresh_token: field(fc.constantFrom("", "nope"), oddString),
    gotrue_meta_security: field(fc.constant({})),
  }, ["phone", "data", "refresh_token", "gotrue_meta_security"]));
  // Each endpoint with the method it takes; now and then another method.
  const endpoint = fc.oneof(
    {
      weight: 12,
      arbitrary: fc.constantFrom<[string, string]>(
        ["POST", "/signup"],
        ["POST", "/signup"],
        ["POST", "/token?grant_type=password"],
        ["POST", "/token?grant_type=password"],
        ["POST", "/token?grant_type=refresh_token"],
        ["POST", "/token?grant_type=pkce"],
        ["POST", "/token"],
        ["POST", "/token?grant_type=password&grant_type=refresh_token"],
        ["GET", "/user"],
        ["GET", "/user"],
        ["POST", "/logout"],
        ["POST", "/logout?scope=local"],
        ["POST", "/logout?scope=others"],
        ["POST", "/logout?scope=everyone"],
        ["GET", "/.well-known/jwks.json"],
        ["GET", "/settings"],
        ["POST", "/signup/"],
        ["POST", "//signup"],
      ),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom(...methods),
        fc.constantFrom("/signup", "/token?grant_type=password", "/user", "/logout"),
      ),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(
        fc.constantFrom("GET", "POST"),
        oddString.map((s) => `/${encodeUriLenient(s)}`),
      ),
    },
  );
  const apikey = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(anonKey, anonKey, serviceRoleKey) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<string | undefined>(undefined, "", "nope", `${anonKey}x`),
    },
  );
  const authCase = fc.record({
    endpoint,
    body,
    apikey,
    apiVersion: fc.constantFrom<string | undefined>(
      "2024-01-01",
      undefined,
      "2023-01-01",
      "garbage",
      "9999-99-99",
    ),
    contentType: contentTypes,
    token: fc.option(tokenArb(target), { nil: undefined }),
  }, { requiredKeys: ["endpoint", "body", "token"] });
  return runProperty(
    "auth",
    authCase,
    async (c, outcome) => {
      const [method, path] = c.endpoint;
      const headers: Record<string, string> = {};
      if (c.apikey !== undefined) headers.apikey = c.apikey;
      if (c.apiVersion !== undefined) headers["x-supabase-api-version"] = c.apiVersion;
      if (c.contentType !== undefined) headers["content-type"] = c.contentType;
      if (c.token) {
        const token = await materialize(c.token, target);
        if (token.authorization !== undefined) headers.authorization = token.authorization;
      }
      const answer = await send(target, {
        method,
        path: `/auth/v1${path}`,
        headers,
        body: c.body.text,
      });
      outcome(String(answer.status));
      expect(answer.status < 500, "no input produces a 5xx", answer);
      checkCors(answer);
      if (method === "OPTIONS" || method === "HEAD") return;
      if (answer.status >= 400) checkAuthError(answer);
      else if (answer.status !== 204) {
        const session = JSON.parse(answer.text);
        // A session Auth hands out is one the functions take.
        if (typeof session.access_token === "string") {
          const health = await send(target, {
            method: "GET",
            path: "/functions/v1/health",
            headers: { authorization: `Bearer ${session.access_token}` },
          });
          expect(health.status === 200, "the functions take the token Auth issued", health);
        }
      }
      if (
        !path.startsWith("/.well-known/") && c.apikey !== anonKey && c.apikey !== serviceRoleKey
      ) {
        expect(answer.status === 401, "a request without the project's key is 401", answer);
      } else if (method === "POST" && path === "/signup" && c.body.valid) {
        // A new address (or a seeded one, taken) with a strong password.
        expect([200, 422].includes(answer.status), "a valid sign-up is 200 or 422", answer);
      }
    },
    options,
    target,
  );
}

// --- Realtime: REST broadcast --------------------------------------------------------------------

export function fuzzRestBroadcast(target: FuzzTarget, options: FuzzOptions): Promise<FuzzFigures> {
  const topic = fc.oneof(channels(target), oddChannels(target));
  const message = objectOf({
    topic: field(channels(target), oddChannels(target)),
    event: field(fc.constantFrom("queue:add", "x"), oddString),
    payload: field(
      fc.constant({ a: 1 }),
      fc.dictionary(anyKey, anyJson, { maxKeys: 3 }).map((d) => d as Json),
    ),
    private: field(fc.boolean(), fc.constant("true")),
    id: field(uuid, oddString),
  }, ["private", "id"]);
  const batchBody = bodyOf(objectOf({
    messages: field(
      fc.array(validOf(message), { minLength: 1, maxLength: 3 }),
      fc.array(message, { minLength: 1, maxLength: 3 }),
      fc.constant([]),
    ),
  }));
  const path = fc.oneof(
    { weight: 3, arbitrary: fc.constant("/realtime/v1/api/broadcast") },
    {
      weight: 3,
      arbitrary: fc.tuple(
        topic,
        oddString,
        fc.constantFrom("", "?private=true", "?private=1", "?private=true&private=false"),
      )
        .map(([t, e, q]) =>
          `/realtime/v1/api/broadcast/${encodeUriLenient(t) || "x"}/events/${
            encodeUriLenient(e) || "e"
          }${q}`
        ),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        "/realtime/v1/api/broadcast/%E0%A4%A/events/x",
        "/realtime/v1/api/broadcast/a/events/%",
        "/realtime/v1/api/broadcast/",
        "/realtime/v1/api",
        "/realtime/v1/websocket",
        "/realtime/v1/",
      ),
    },
  );
  const restCase = fc.record({
    method: fc.oneof({ weight: 8, arbitrary: fc.constant("POST") }, {
      weight: 1,
      arbitrary: fc.constantFrom(...methods),
    }),
    path,
    body: batchBody,
    contentType: contentTypes,
    token: tokenArb(target),
    viaApikey: fc.boolean(),
  });
  return runProperty(
    "realtime REST broadcast",
    restCase,
    async (c, outcome) => {
      const token = await materialize(c.token, target);
      const headers: Record<string, string> = {};
      if (c.viaApikey && token.token) headers.apikey = token.token;
      else if (token.authorization) headers.authorization = token.authorization;
      if (c.contentType !== undefined) headers["content-type"] = c.contentType;
      const answer = await send(target, {
        method: c.method,
        path: c.path,
        headers,
        body: c.body.text,
      });
      outcome(String(answer.status));
      expect(answer.status < 500, "no input produces a 5xx", answer);
      checkCors(answer);
      const broadcastPath = /^\/realtime\/v1\/api\/broadcast(\/[^/]+\/events\/[^/]+)?$/.test(
        c.path.split("?")[0],
      );
      if (broadcastPath && c.method === "POST") {
        if (token.verdict === "invalid" || token.verdict === "missing") {
          expect(answer.status === 401, "a bad or missing token is 401", answer);
        } else {
          expect([202, 422].includes(answer.status), "202 or 422", answer);
          if (c.path === "/realtime/v1/api/broadcast" && c.body.valid) {
            expect(answer.status === 202, "a valid batch is accepted", answer);
          }
        }
      }
      if (answer.status >= 400 && answer.text !== "") {
        const body = JSON.parse(answer.text);
        expect(
          typeof body.message === "string" || typeof body.errors === "object" ||
            typeof body.error === "string",
          "Realtime's error shapes",
          answer,
        );
      }
    },
    options,
    target,
  );
}

// --- Realtime: raw WebSocket frames ------------------------------------------------------------------

type Vsn = "1.0.0" | "2.0.0";

/** One thing a client may put on the socket. */
type FrameCase =
  | { kind: "text"; text: string }
  | { kind: "binary"; bytes: Uint8Array }
  | {
    kind: "frame";
    joinRef: Json;
    ref: Json;
    topic: Json;
    event: Json;
    /** An object's fields, or any JSON. */
    payload: Json;
    /** Made into the payload's `access_token` when the frame is sent. */
    token?: TokenRecipe;
    /** A join, whose reply is waited for. */
    join?: boolean;
  };

function joinPayload(t: FuzzTarget): fc.Arbitrary<{ payload: Json; token?: TokenRecipe }> {
  const flag = field(fc.boolean(), fc.constantFrom("true", "false", 1));
  const config = objectOf({
    broadcast: field(objectOf({
      self: flag,
      ack: flag,
      replay: field(objectOf({
        since: field(fc.constant(0).map(() => Date.now() - 60_000), oddNumber),
        limit: field(fc.integer({ min: 1, max: 25 }), fc.integer({ min: -5, max: 30 }), oddNumber),
      }, ["limit"])),
    }, ["self", "ack", "replay"])),
    presence: field(
      objectOf({ key: field(fc.constantFrom("me", ...protoKeys), oddString), enabled: flag }, [
        "key",
        "enabled",
      ]),
    ),
    private: flag,
    postgres_changes: field(fc.constant([]), fc.constant([{ event: "*", schema: "public" }])),
  }, ["broadcast", "presence", "private", "postgres_changes"]);
  return fc.oneof(
    {
      weight: 8,
      arbitrary: fc.record({
        payload: config.map((c) => new Entries([["config", c]]) as Json),
        token: fc.option(tokenArb(t), { nil: undefined }),
      }, { requiredKeys: ["payload"] }),
    },
    // A member's private join asking for a replay, `since` anything.
    {
      weight: 2,
      arbitrary: fc.record({
        since: fc.oneof(fc.constant(0).map(() => Date.now() - 60_000), oddNumber, oddString),
        limit: fc.oneof(fc.integer({ min: -5, max: 30 }), oddNumber),
        who: fc.constantFrom<Who>("host", "member", "outsider"),
      }).map(({ since, limit, who }) => ({
        payload: new Entries([[
          "config",
          {
            private: true,
            broadcast: { replay: new Entries([["since", since], ["limit", limit]]) },
          },
        ]]) as Json,
        token: { kind: "user", who } as TokenRecipe,
      })),
    },
    { weight: 1, arbitrary: fc.record({ payload: anyJson }) },
  );
}

function frameArb(t: FuzzTarget): fc.Arbitrary<FrameCase> {
  // Few topics and refs, so that a run's frames often meet the channel an earlier one joined.
  const subTopic = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(`room:${t.room}`, `room:${t.room}:queue`, "lobby") },
    { weight: 4, arbitrary: channels(t) },
    { weight: 1, arbitrary: fc.constantFrom("fuzz-public", "", `room:${t.room}:nope`) },
    { weight: 1, arbitrary: oddString },
    { weight: 1, arbitrary: longString.map((s) => s.slice(0, 5000)) },
  );
  const topic = fc.oneof(
    { weight: 18, arbitrary: subTopic.map((s) => `realtime:${s}`) },
    { weight: 1, arbitrary: fc.constantFrom("phoenix", "realtime", "") },
    { weight: 1, arbitrary: anyJson },
  );
  const ref = fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom("1", "2", "3") },
    { weight: 1, arbitrary: fc.constantFrom<Json>(null, 7, 2 ** 64, "", "x".repeat(10_000)) },
    { weight: 1, arbitrary: anyJson },
  );
  const joinRef = fc.oneof(
    { weight: 3, arbitrary: fc.constant(null) },
    { weight: 6, arbitrary: ref },
  );
  const event = fc.oneof(
    {
      weight: 16,
      arbitrary: fc.constantFrom("broadcast", "presence", "phx_leave", "heartbeat", "phx_join"),
    },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        "phx_reply",
        "phx_close",
        "system",
        "postgres_changes",
        "PHX_JOIN",
      ),
    },
    { weight: 1, arbitrary: anyJson },
  );
  const channelPayload = fc.oneof(
    objectOf({
      type: field(fc.constant("broadcast")),
      event: field(fc.constantFrom("x", "queue:add"), oddString),
      payload: field(fc.constant({ a: 1 }), anyJson, bigJson),
    }),
    objectOf({
      type: field(fc.constant("presence")),
      event: field(fc.constantFrom("track", "untrack", "TRACK"), oddString),
      payload: field(fc.constant({ name: "x" }), anyJson, bigJson),
    }),
    anyJson,
  );
  const join = fc.tuple(ref, topic, joinPayload(t)).map(([r, tp, p]): FrameCase => ({
    kind: "frame",
    joinRef: r,
    ref: r,
    topic: tp,
    event: "phx_join",
    ...p,
    join: true,
  }));
  const other = fc.record({ joinRef, ref, topic, event, payload: channelPayload })
    .map((f): FrameCase => ({ kind: "frame", ...f }));
  const refresh = fc.record({ joinRef, ref, topic, token: tokenArb(t) })
    .map((f): FrameCase => ({
      kind: "frame",
      ...f,
      event: "access_token",
      payload: new Entries([]),
    }));
  const text = fc.oneof(
    fc.constantFrom(
      "",
      "{",
      "[]",
      "[1,2,3,4,5]",
      "null",
      '"phx_join"',
      "[null,null,null,null,null]",
    ),
    oddString,
    anyJson.map(render),
    deepNesting.map(render),
  ).map((text): FrameCase => ({ kind: "text", text }));
  // A user broadcast as realtime-js sends it on 2.0.0 (kind 3: lengths of join_ref, ref, topic,
  // event and metadata, the payload's encoding, then the fields and the payload), now and then
  // with a byte changed; or any bytes.
  const encoder = new TextEncoder();
  const fieldBytes = (value: Json) =>
    encoder.encode(typeof value === "string" ? value : "").slice(0, 255);
  const userBroadcast = fc.record({
    joinRef: fc.oneof(fc.constant(""), fc.constantFrom("1", "2", "3")),
    ref: fc.constantFrom("", "1", "9"),
    topic,
    event: fc.oneof(fc.constantFrom("x", "queue:add"), oddString),
    metadata: fc.constantFrom("", '{"persist":true}', "\ud800"),
    encoding: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1) }, {
      weight: 1,
      arbitrary: fc.nat({ max: 255 }),
    }),
    payload: fc.oneof(
      anyJson.map((v) => encoder.encode(render(v).toWellFormed())),
      fc.uint8Array({ maxLength: 64 }),
    ),
    corrupt: fc.option(fc.tuple(fc.nat(), fc.nat({ max: 255 })), { nil: undefined, freq: 5 }),
  }).map(({ joinRef, ref, topic, event, metadata, encoding, payload, corrupt }) => {
    const fields = [joinRef, ref, topic, event, metadata].map(fieldBytes);
    const bytes = new Uint8Array([
      3,
      ...fields.map((f) => f.length),
      encoding,
      ...fields.flatMap((f) => [...f]),
      ...payload,
    ]);
    if (corrupt) bytes[corrupt[0] % bytes.length] = corrupt[1];
    return bytes;
  });
  const binary = fc.oneof(
    { weight: 4, arbitrary: userBroadcast },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  ).map((bytes): FrameCase => ({ kind: "binary", bytes }));
  return fc.oneof(
    { weight: 8, arbitrary: join },
    { weight: 8, arbitrary: other },
    { weight: 2, arbitrary: refresh },
    { weight: 1, arbitrary: text },
    { weight: 3, arbitrary: binary },
  );
}

interface RawSocket {
  ws: WebSocket;
  texts: unknown[];
  /** What was wrong with the binary frames received. */
  malformed: string[];
  closed: Promise<CloseEvent>;
  isClosed: () => CloseEvent | undefined;
}

/** What is wrong with a server's binary frame, if anything: a user broadcast (kind 4) whose
 * header fields fit and are UTF-8, and whose payload, when marked JSON, is JSON. */
function malformedBinary(bytes: Uint8Array): string | undefined {
  if (bytes.length < 5 || bytes[0] !== 4) return `not a kind 4 frame: ${bytes.slice(0, 8)}`;
  const [, topicLength, eventLength, metaLength, encoding] = bytes;
  const payloadAt = 5 + topicLength + eventLength + metaLength;
  if (payloadAt > bytes.length || encoding > 1) return "a kind 4 frame's header does not fit";
  try {
    const utf8 = new TextDecoder("utf-8", { fatal: true });
    utf8.decode(bytes.subarray(5, payloadAt));
    if (metaLength > 0) {
      JSON.parse(utf8.decode(bytes.subarray(5 + topicLength + eventLength, payloadAt)));
    }
    if (encoding === 1) JSON.parse(utf8.decode(bytes.subarray(payloadAt)));
  } catch (error) {
    return `a kind 4 frame does not decode: ${error}`;
  }
}

/** A bare WebSocket: text frames parsed (a frame that is not JSON throws, which the target
 * records as an uncaught error), binary ones checked. */
async function openSocket(url: string, vsn: Vsn, apikey: string): Promise<RawSocket> {
  const ws = new WebSocket(
    `${url.replace(/^http/, "ws")}/realtime/v1/websocket?apikey=${apikey}&vsn=${vsn}`,
  );
  ws.binaryType = "arraybuffer";
  const texts: unknown[] = [];
  const malformed: string[] = [];
  ws.onmessage = ({ data }) => {
    if (typeof data === "string") texts.push(JSON.parse(data));
    else {
      const problem = malformedBinary(new Uint8Array(data));
      if (problem) malformed.push(problem);
    }
  };
  let closeEvent: CloseEvent | undefined;
  const closed = new Promise<CloseEvent>((resolve) =>
    ws.onclose = (event) => {
      closeEvent = event;
      resolve(event);
    }
  );
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("the WebSocket did not open"));
  });
  return { ws, texts, malformed, closed, isClosed: () => closeEvent };
}

const refOf = (vsn: Vsn, frame: unknown) =>
  vsn === "2.0.0" ? (frame as unknown[])[1] : (frame as { ref?: unknown }).ref;
const eventOf = (vsn: Vsn, frame: unknown) =>
  vsn === "2.0.0" ? (frame as unknown[])[3] : (frame as { event?: unknown }).event;
const payloadOf = (vsn: Vsn, frame: unknown) =>
  (vsn === "2.0.0" ? (frame as unknown[])[4] : (frame as { payload?: unknown }).payload) as
    | { status?: string; response?: unknown }
    | undefined;

/** Sends a heartbeat and waits for its reply or for the socket to close; the reply's index. */
async function heartbeat(socket: RawSocket, vsn: Vsn, n: number): Promise<number | CloseEvent> {
  const ref = `hb-${n}`;
  const frame = vsn === "2.0.0"
    ? JSON.stringify([null, ref, "phoenix", "heartbeat", {}])
    : JSON.stringify({ topic: "phoenix", event: "heartbeat", payload: {}, ref });
  if (socket.ws.readyState === WebSocket.OPEN) socket.ws.send(frame);
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const closed = socket.isClosed();
    if (closed) return closed;
    const index = socket.texts.findIndex((f) =>
      refOf(vsn, f) === ref && eventOf(vsn, f) === "phx_reply"
    );
    if (index >= 0) return index;
    await within(socket.closed, 5);
  }
  throw new Error(`the socket neither answered heartbeat ${ref} nor closed within 10 s`);
}

const realtimeFrame = (
  vsn: Vsn,
  f: { joinRef: Json; ref: Json; topic: Json; event: Json; payload: Json },
) =>
  vsn === "2.0.0" ? render([f.joinRef, f.ref, f.topic, f.event, f.payload]) : render(
    new Entries([
      ["join_ref", f.joinRef],
      ["ref", f.ref],
      ["topic", f.topic],
      ["event", f.event],
      ["payload", f.payload],
    ]),
  );

/** `promise`'s value, or undefined once `ms` have passed (the timer is cleared either way). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the stand-in can decode `data` as a client frame (local/realtime/protocol.ts): a
 * 1.0.0 object or a 2.0.0 array of five, each with a string topic and event, or on 2.0.0 a
 * binary user broadcast (kind 3) whose header fields fit and are UTF-8. */
function decodable(vsn: Vsn, data: string | Uint8Array): boolean {
  if (typeof data !== "string") {
    if (vsn !== "2.0.0" || data.length < 7 || data[0] !== 3 || data[6] > 1) return false;
    let offset = 7;
    for (const length of data.subarray(1, 6)) {
      if (offset + length > data.length) return false;
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(data.subarray(offset, offset += length));
      } catch {
        return false;
      }
    }
    return true;
  }
  let parsed: unknown;
  try {
    // What a WebSocket carries of the text: UTF-8, lone surrogates replaced.
    parsed = JSON.parse(data.toWellFormed());
  } catch {
    return false;
  }
  const [topic, event] = vsn === "2.0.0"
    ? (Array.isArray(parsed) && parsed.length === 5 ? [parsed[2], parsed[3]] : [])
    : (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)
      ? [(parsed as Record<string, unknown>).topic, (parsed as Record<string, unknown>).event]
      : []);
  return typeof topic === "string" && typeof event === "string";
}

/** Raw frames on the WebSocket, both protocol versions: none may break the socket or the
 * gateway, a join always gets its reply, and a join with a bad token is refused. */
export function fuzzRealtimeFrames(target: FuzzTarget, options: FuzzOptions): Promise<FuzzFigures> {
  const socketCase = fc.record({
    vsn: fc.constantFrom<Vsn>("1.0.0", "2.0.0"),
    apikey: fc.constantFrom<Who | "anon">(
      "anon",
      "anon",
      "member",
      "host",
      "outsider",
      "anonymousMember",
    ),
    frames: fc.array(frameArb(target), { minLength: 1, maxLength: 5 }),
  });
  let heartbeats = 0;
  return runProperty(
    "realtime frames",
    socketCase,
    async ({ vsn, apikey, frames }, outcome) => {
      const key = apikey === "anon" ? anonKey : target[apikey].token;
      // A member on the other protocol, joined (with presence) where the frames often go: what
      // reaches it must decode, and nothing may cost it its socket.
      const observerVsn: Vsn = vsn === "2.0.0" ? "1.0.0" : "2.0.0";
      const observer = await openSocket(target.url, observerVsn, target.member.token);
      const observed = [`room:${target.room}`, `room:${target.room}:queue`, "lobby"];
      for (const [i, topic] of observed.entries()) {
        const payload = {
          config: {
            private: topic !== "lobby",
            broadcast: { self: true },
            presence: { enabled: true },
          },
          access_token: target.member.token,
        };
        observer.ws.send(
          observerVsn === "2.0.0"
            ? JSON.stringify([`o${i}`, `o${i}`, `realtime:${topic}`, "phx_join", payload])
            : JSON.stringify({
              topic: `realtime:${topic}`,
              event: "phx_join",
              payload,
              ref: `o${i}`,
              join_ref: `o${i}`,
            }),
        );
      }
      await heartbeat(observer, observerVsn, ++heartbeats);
      const socket = await openSocket(target.url, vsn, key);
      try {
        for (const frame of frames) {
          if (socket.isClosed()) break;
          const seen = socket.texts.length;
          let join: { ref: string; invalid: boolean } | undefined;
          let data: string | Uint8Array;
          if (frame.kind === "text") data = frame.text;
          else if (frame.kind === "binary") data = frame.bytes;
          else {
            let payload = frame.payload;
            let invalid = false;
            if (frame.token) {
              const token = await materialize(frame.token, target);
              const fields = payload instanceof Entries ? payload.entries : [];
              payload = new Entries([...fields, ["access_token", token.token ?? null]]);
              invalid = token.verdict === "invalid" && token.token !== undefined &&
                !token.token.startsWith("sb_");
            }
            data = realtimeFrame(vsn, { ...frame, payload });
            if (
              frame.join && typeof frame.topic === "string" && frame.topic !== "phoenix" &&
              typeof frame.ref === "string"
            ) {
              join = { ref: frame.ref, invalid };
            }
          }
          socket.ws.send(data);
          if (!decodable(vsn, data)) {
            // Phoenix drops a socket whose frame it cannot decode: 1003, and nothing else.
            const closed = await within(socket.closed, 10_000);
            outcome(`closed ${closed?.code}`);
            if (closed?.code !== 1003) {
              throw new Error(
                `a frame that does not decode left the socket ${
                  closed ? `closed with ${closed.code}` : "open"
                }`,
              );
            }
            break;
          }
          const answered = await heartbeat(socket, vsn, ++heartbeats);
          if (typeof answered !== "number") {
            throw new Error(
              `a frame that decodes closed the socket (${answered.code} ${answered.reason})`,
            );
          }
          if (join) {
            const reply = socket.texts.slice(seen, answered).find((f) =>
              refOf(vsn, f) === join.ref && eventOf(vsn, f) === "phx_reply"
            );
            if (!reply) {
              throw new Error(
                `the join (ref ${join.ref}) got no reply before the next heartbeat's`,
              );
            }
            const status = payloadOf(vsn, reply)?.status;
            outcome(`join ${status}`);
            if (join.invalid && status !== "error") {
              throw new Error(
                `a join with a bad token was answered ${JSON.stringify(payloadOf(vsn, reply))}`,
              );
            }
          } else outcome(frame.kind === "frame" ? "frame" : frame.kind);
        }
        const observerAnswer = await heartbeat(observer, observerVsn, ++heartbeats);
        if (typeof observerAnswer !== "number") {
          throw new Error(`the observer's socket closed (${observerAnswer.code})`);
        }
        const malformed = [...socket.malformed, ...observer.malformed];
        if (malformed.length > 0) throw new Error(malformed.join("; "));
      } finally {
        for (const s of [socket, observer]) {
          if (s.ws.readyState === WebSocket.OPEN || s.ws.readyState === WebSocket.CONNECTING) {
            s.ws.close();
          }
          await s.closed;
        }
      }
    },
    options,
    target,
  );
}

/** WebSocket upgrades with odd keys, versions and handshakes: 101, 400, 401 or 403, never 5xx. */
export function fuzzRealtimeUpgrade(
  target: FuzzTarget,
  options: FuzzOptions,
): Promise<FuzzFigures> {
  const upgradeCase = fc.record({
    vsn: fc.option(fc.constantFrom("1.0.0", "2.0.0", "3.0.0", "", "1.0", "2.0.0 "), {
      nil: undefined,
    }),
    token: tokenArb(target),
    via: fc.constantFrom("query", "header", "both"),
    handshake: fc.constantFrom("full", "full", "no-key", "no-upgrade", "bad-version"),
  });
  return runProperty(
    "realtime upgrade",
    upgradeCase,
    async (c, outcome) => {
      const token = await materialize(c.token, target);
      const query = new URLSearchParams();
      if (c.vsn !== undefined) query.set("vsn", c.vsn);
      if (token.token !== undefined && c.via !== "header") query.set("apikey", token.token);
      const lines = [
        `GET /realtime/v1/websocket?${query} HTTP/1.1`,
        `Host: 127.0.0.1`,
        ...(c.handshake === "no-upgrade" ? [] : ["Upgrade: websocket", "Connection: Upgrade"]),
        ...(c.handshake === "no-key" ? [] : [`Sec-WebSocket-Key: ${btoa("whatssound-fuzz!")}`]),
        `Sec-WebSocket-Version: ${c.handshake === "bad-version" ? "8" : "13"}`,
        ...(token.token !== undefined && c.via !== "query"
          ? [`x-api-key: ${token.token.replace(/[\r\n]/g, "")}`]
          : []),
        "",
        "",
      ];
      const { port } = new URL(target.url);
      const connection = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
      let head = "";
      try {
        await connection.write(new TextEncoder().encode(lines.join("\r\n")));
        const buffer = new Uint8Array(4096);
        while (!head.includes("\r\n")) {
          const n = await connection.read(buffer);
          if (n === null) break;
          head += new TextDecoder().decode(buffer.subarray(0, n));
        }
      } finally {
        connection.close();
      }
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      outcome(String(status));
      const answer = { status, headers: new Headers(), text: head.slice(0, 300) };
      expect(status < 500, "no handshake produces a 5xx", answer);
      expect([101, 400, 401, 403, 426].includes(status), "101, 400, 401, 403 or 426", answer);
      if (status === 101) {
        expect(
          token.verdict !== "invalid" && token.verdict !== "missing",
          "a bad or missing key may not connect",
          answer,
        );
      }
    },
    options,
    target,
  );
}

// --- What goes in comes out ------------------------------------------------------------------------

/** `text` as JavaScript reads JSON: what a client can expect back (1e999 → null, -0 → 0). */
const asJs = (text: string): unknown => JSON.parse(JSON.stringify(JSON.parse(text)));

/**
 * What a client stores or sends comes back unchanged, keys like `__proto__` included: a
 * published payload (service_role, on a room's queue) from history, a presence join's user_info
 * as the member's info, a REST broadcast's payload at a subscriber of the topic.
 */
export function fuzzRoundTrips(target: FuzzTarget, options: FuzzOptions): Promise<FuzzFigures> {
  const object = fc.dictionary(anyKey, anyJson, { maxKeys: 4 }).map((d) => d as Json);
  const roundTrip = fc.record({
    path: fc.constantFrom("publish", "presence", "rest"),
    value: fc.oneof(
      object,
      fc.constantFrom<Json>(
        new Entries([["__proto__", { x: 1 }], ["a", 1]]),
        new Entries([["constructor", { prototype: { x: 1 } }]]),
        new Entries([["toString", 1], ["valueOf", null], ["hasOwnProperty", "x"]]),
        new Entries([["a", 1], ["a", 2]]),
      ),
    ),
  });
  return runProperty(
    "round trips",
    roundTrip,
    async ({ path, value }, outcome) => {
      const text = render(value);
      const sent = asJs(text);
      const service = { authorization: `Bearer ${serviceRoleKey}` };
      let got: unknown;
      if (path === "publish") {
        const channel = `room:${target.room}:queue`;
        const answer = await send(target, {
          method: "POST",
          path: "/functions/v1/publish",
          headers: service,
          body: `{"channel":${JSON.stringify(channel)},"event":"fuzz","payload":${text}}`,
        });
        outcome(`publish ${answer.status}`);
        if (answer.status === 400) return expect(!storableJson(sent), "a storable payload", answer);
        expect(answer.status === 202, "published", answer);
        const history = await send(target, {
          method: "GET",
          path: `/functions/v1/history?channel=${channel}&rewind=1`,
          headers: service,
        });
        got = JSON.parse(history.text).items?.[0]?.data;
      } else if (path === "presence") {
        const answer = await send(target, {
          method: "POST",
          path: "/functions/v1/presence",
          headers: { authorization: `Bearer ${target.member.token}` },
          body:
            `{"action":"join","room_id":"${target.room}","connection_id":"fuzz-${crypto.randomUUID()}","user_info":${text}}`,
        });
        outcome(`presence ${answer.status}`);
        if (answer.status === 400) {
          return expect(!storableJson(sent), "a storable user_info", answer);
        }
        if (answer.status === 413) return;
        expect(answer.status === 200, "joined", answer);
        got = JSON.parse(answer.text).me.info;
      } else {
        const topic = `fuzz-round-trip-${crypto.randomUUID()}`;
        const socket = await openSocket(target.url, "1.0.0", anonKey);
        try {
          socket.ws.send(JSON.stringify({
            topic: `realtime:${topic}`,
            event: "phx_join",
            payload: { config: {} },
            ref: "1",
            join_ref: "1",
          }));
          await heartbeat(socket, "1.0.0", 0);
          const answer = await send(target, {
            method: "POST",
            path: "/realtime/v1/api/broadcast",
            headers: { ...service, "content-type": "application/json" },
            body: `{"messages":[{"topic":${
              JSON.stringify(topic)
            },"event":"fuzz","payload":${text}}]}`,
          });
          outcome(`rest ${answer.status}`);
          expect(answer.status === 202, "broadcast", answer);
          await heartbeat(socket, "1.0.0", 1);
          const deadline = Date.now() + 5000;
          type Broadcast = { event?: string; payload?: { payload?: unknown } };
          let frame: Broadcast | undefined;
          while (!frame && Date.now() < deadline) {
            frame = (socket.texts as Broadcast[]).find((f) => f?.event === "broadcast");
            if (!frame) await within(socket.closed, 5);
          }
          got = frame?.payload?.payload;
        } finally {
          socket.ws.close();
          await socket.closed;
        }
      }
      if (!isDeepStrictEqual(got, sent)) {
        throw new Error(`${path}: sent ${printable(sent)}, got back ${printable(got)}`);
      }
    },
    options,
    target,
  );
}

// --- Afterwards ------------------------------------------------------------------------------------

/**
 * The fuzzed gateway still serves: health is 200; a member's chat-send is accepted and its
 * chat:batch reaches a supabase-js private channel subscribed through this gateway.
 */
export async function assertStillServes(target: FuzzTarget): Promise<void> {
  const { createUser, listenPrivate, poll, withDb } = await import("../local/test-helpers.ts");
  const health = await fetch(`${target.url}/functions/v1/health`, {
    headers: { authorization: `Bearer ${anonKey}` },
  });
  if (health.status !== 200) {
    throw new Error(`health answered ${health.status}: ${await health.text()}`);
  }
  await health.body?.cancel();
  // A fresh member: the fuzzed one may be past the chat rate limit.
  const sender = await withDb(async (sql) => {
    const user = await createUser(sql);
    await sql`insert into public.room_members (room_id, user_id, role)
              values (${target.room}, ${user.id}, 'listener')`;
    return user;
  });
  const listener = await listenPrivate<{ messages: { client_id: string }[] }>(
    target.member.token,
    `room:${target.room}:chat`,
    { event: "chat:batch", url: target.url },
  );
  const received = () => listener.received.flatMap(({ payload }) => payload.messages);
  try {
    const clientId = `after-fuzz-${crypto.randomUUID()}`;
    const sent = await fetch(`${target.url}/functions/v1/chat-send`, {
      method: "POST",
      headers: { authorization: `Bearer ${sender.token}`, "content-type": "application/json" },
      body: JSON.stringify({
        room_id: target.room,
        messages: [{ client_id: clientId, body: "still here" }],
      }),
    });
    if (sent.status !== 202) {
      throw new Error(`chat-send answered ${sent.status}: ${await sent.text()}`);
    }
    await sent.body?.cancel();
    const got = await poll(
      () => Promise.resolve(received()),
      (all) => all.some((m) => m.client_id === clientId),
      5000,
    );
    if (!got.some((m) => m.client_id === clientId)) {
      throw new Error("the member's message was not broadcast on room:{id}:chat");
    }
  } finally {
    await listener.close();
  }
  if (target.problems.length > 0) {
    throw new Error(`the gateway logged:\n${target.problems.join("\n")}`);
  }
}

/** Every property of this file, by name. */
export const properties: [string, (t: FuzzTarget, o: FuzzOptions) => Promise<FuzzFigures>][] = [
  ...endpoints.map((endpoint): [string, typeof fuzzGatewayPaths] => [
    endpoint.name,
    (t, o) => fuzzFunction(endpoint, t, o),
  ]),
  ["gateway paths", fuzzGatewayPaths],
  ["auth", fuzzAuth],
  ["realtime REST broadcast", fuzzRestBroadcast],
  ["realtime upgrade", fuzzRealtimeUpgrade],
  ["realtime frames", fuzzRealtimeFrames],
  ["round trips", fuzzRoundTrips],
];

/** What a whole run found: each property's figures, and every broken invariant (a property's
 * counterexample, or the gateway no longer serving), as in the other chaos scenarios. */
export interface FuzzResult {
  figures: Record<string, FuzzFigures>;
  violations: string[];
}

/**
 * Every property, `runs` cases each, against one target (a new one unless given), each to its
 * end even when another failed; then the still-serves check. `npm run chaos` calls this at full
 * size, `chaos/fuzz.test.ts` small.
 */
export async function fuzzAll(options: FuzzOptions, target?: FuzzTarget): Promise<FuzzResult> {
  if (!target) return await withFuzzTarget((t) => fuzzAll(options, t));
  const result: FuzzResult = { figures: {}, violations: [] };
  for (const [name, property] of properties) {
    try {
      result.figures[name] = await property(target, options);
    } catch (error) {
      result.violations.push(error instanceof Error ? error.message : String(error));
    }
  }
  try {
    await assertStillServes(target);
  } catch (error) {
    result.violations.push(`after fuzzing: ${error instanceof Error ? error.message : error}`);
  }
  return result;
}

if (import.meta.main) {
  // `deno run -A chaos/fuzz.ts [runs] [seed]`: on a throw-away stack of its own.
  const { withThrowawayStack } = await import("../local/throwaway.ts");
  const runs = Number(Deno.args[0] ?? 1000);
  const seed = Number(Deno.args[1] ?? defaultSeed);
  const { violations } = await withThrowawayStack(
    { api: 54351, db: 54352 },
    () => fuzzAll({ runs, seed }),
  );
  for (const violation of violations) console.log(`VIOLATION ${violation}`);
  Deno.exit(violations.length === 0 ? 0 : 1);
}
