// The phx_join payload (reference/realtime.md §4.4), read once by a schema into the typed
// JoinConfig the join works with, as Realtime reads it with payloads/{join,config,broadcast,
// presence}.ex. Unlike Realtime, which refuses a payload it cannot parse, the stand-in has always
// let a field it cannot read take its default; the schema keeps that.
import { z } from "npm:zod@4.6.7";
import { objectOr } from "./protocol.ts";

// 9999-12-31T23:59:59.999Z, the last moment Realtime's replay `since` may name.
const maxReplaySinceMs = 253_402_300_799_999;

/** An object whose fields each fall back to their default; a value that is not an object reads
 * as `{}`, so the whole of it takes its defaults. */
const lenientObject = <Shape extends z.ZodRawShape>(shape: Shape) =>
  z.preprocess(objectOr, z.object(shape));
// Realtime accepts "true"/"false" strings where it expects booleans.
const flag = z.union([
  z.boolean(),
  z.enum(["true", "false"]).transform((text) => text === "true"),
]).catch(false);
const optionalString = z.string().optional().catch(undefined);

const replayRequest = z.union([
  lenientObject({
    // Realtime takes `since` as whole milliseconds that make a date (years up to 9999); anything
    // else was read as a timestamp Postgres cannot hold, and the replay failed after the join had
    // been answered. Missing, it is 0.
    since: z.int().min(-maxReplaySinceMs).max(maxReplaySinceMs).nullish()
      .transform((since) => since ?? 0),
    // Any number (JSON's 1e400 reads as Infinity, which z.number() refuses), clamped to 1..25 as
    // Realtime clamps it; 10 by default.
    limit: z.custom<number>((limit) => typeof limit === "number")
      .transform((limit) => Math.min(25, Math.max(1, Math.trunc(limit))))
      .catch(10),
  }),
  // A `since` that is no such date: the join is refused.
  z.unknown().transform(() => "invalid" as const),
]);

const joinPayload = lenientObject({
  config: lenientObject({
    private: flag,
    broadcast: lenientObject({
      self: flag,
      ack: flag,
      // Present (whatever its value) means a replay is asked for.
      replay: replayRequest.optional(),
    }),
    presence: lenientObject({ enabled: flag, key: z.string().catch("") }),
    postgres_changes: z.array(z.unknown()).catch([]),
  }),
  access_token: optionalString,
  user_token: optionalString,
}).transform(({ config, access_token, user_token }) => ({
  isPrivate: config.private,
  /** Whether the sender receives its own broadcasts. */
  self: config.broadcast.self,
  /** Whether a broadcast push is answered. */
  ack: config.broadcast.ack,
  /** The private broadcasts to send at join; "invalid" when `since` is no date (a refusal). */
  replay: config.broadcast.replay,
  presenceEnabled: config.presence.enabled,
  /** An empty or missing key becomes a server-made one, as in Realtime. */
  presenceKey: config.presence.key || crypto.randomUUID(),
  /** Asked for, they are refused: the stand-in serves broadcast and presence only. */
  postgresChanges: config.postgres_changes,
  /** The join's own token, if it brings one. */
  token: access_token ?? user_token,
}));

export type JoinConfig = z.output<typeof joinPayload>;

/** Reads a phx_join payload; it never fails (see above). */
export function parseJoinPayload(payload: unknown): JoinConfig {
  return joinPayload.parse(payload);
}
