// One client process of bench/realtime-fanout.ts: COUNT subscribers, users FIRST..FIRST+COUNT-1
// (ids as bench/lib/seed.ts's id(0, n)), each its own supabase-js client (one WebSocket
// each, the default vsn 2.0.0) with its own user token, on the private channel room:ROOM:chat.
// It talks to the bench in lines:
//   stdout {"type":"loaded"}      the clients exist, each with its token set
//   stdin  join                   all subscribe at once
//   stdout {"type":"ready", ...}  each is SUBSCRIBED, or JOIN_TIMEOUT_S has passed
//   stdin  stop
//   stdout {"type":"samples"...}  per joined subscriber, every chat:batch received as its
//                                 sequence number and the wall-clock receipt time
//                                 (performance.timeOrigin + performance.now(), comparable
//                                 across the processes of one machine)
// Anything else goes to stderr.
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.1";
import { id } from "../lib/seed.ts";
import { lines } from "../../local/stream-lines.ts";
import { userToken } from "../../local/keys.ts";

const apiUrl = Deno.env.get("SUPABASE_URL")!;
const anonKey = Deno.env.get("SUPABASE_ANON_KEY")!;
const room = Deno.env.get("ROOM")!;
const first = Number(Deno.env.get("FIRST"));
const count = Number(Deno.env.get("COUNT"));
const joinDeadlineMs = Number(Deno.env.get("JOIN_TIMEOUT_S")) * 1000;
const topic = `room:${room}:chat`;

const now = () => performance.timeOrigin + performance.now();
const emit = (line: Record<string, unknown>) => console.log(JSON.stringify(line));

interface Subscriber {
  client: SupabaseClient;
  /** [sequence number, receipt time] of each chat:batch, flat. */
  received: number[];
  joinMs?: number;
  /** Join refusals and time-outs before SUBSCRIBED, and the first of them. */
  errors: number;
  error?: string;
}

const subscribers: Subscriber[] = [];
for (let i = 0; i < count; i++) {
  const token = await userToken(id(0, first + i));
  const client = createClient(apiUrl, anonKey, {
    accessToken: () => Promise.resolve(token),
    auth: { persistSession: false, autoRefreshToken: false },
  });
  // With the accessToken option alone, supabase-js hands the token to Realtime asynchronously:
  // a channel subscribed before that joins with the anon key and is refused once (then
  // rejoins). Every subscriber's first join here carries its own token.
  await client.realtime.setAuth(token);
  subscribers.push({ client, received: [], errors: 0 });
}
emit({ type: "loaded" });

const input = lines(Deno.stdin.readable);
const next = async () => (await input.next()).value?.trim();
if ((await next()) !== "join") Deno.exit(1);

const joinStarted = now();
// realtime-js rejoins a refused or timed-out channel by itself: wait for SUBSCRIBED, counting
// the refusals, until the deadline.
await Promise.all(subscribers.map((subscriber) =>
  new Promise<void>((resolve) => {
    const started = now();
    const deadline = setTimeout(resolve, joinDeadlineMs - (started - joinStarted));
    subscriber.client
      .channel(topic, { config: { private: true } })
      .on("broadcast", { event: "chat:batch" }, ({ payload }) => {
        const at = now();
        // client_id b<seq>-<i>: the publisher's sequence number rides in the real payload.
        subscriber.received.push(parseInt(payload.messages[0].client_id.slice(1), 10), at);
      })
      .subscribe((status, error) => {
        if (subscriber.joinMs !== undefined) return; // after the join: counted as missing
        if (status === "SUBSCRIBED") {
          subscriber.joinMs = now() - started;
          clearTimeout(deadline);
          resolve();
        } else {
          subscriber.errors++;
          subscriber.error ??= `${status}${error ? `: ${error.message}` : ""}`;
        }
      });
  })
));
const joined = subscribers.filter((s) => s.joinMs !== undefined);
emit({
  type: "ready",
  joined: joined.length,
  failed: subscribers.length - joined.length,
  join_errors: subscribers.reduce((sum, s) => sum + s.errors, 0),
  first_error: subscribers.find((s) => s.error)?.error ?? null,
  join_started: joinStarted,
  join_ended: now(),
  join_ms: joined.map((s) => s.joinMs),
});

if ((await next()) !== "stop") Deno.exit(1);
// Only the subscribers that had joined by the deadline are expected to receive.
emit({ type: "samples", received: joined.map((s) => s.received) });
// Leave politely, but never hold up the bench for it.
await Promise.race([
  Promise.all(subscribers.map((s) => s.client.removeAllChannels())),
  new Promise((resolve) => setTimeout(resolve, 5000)),
]);
Deno.exit(0);
