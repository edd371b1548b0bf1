// The chaos scenarios of issue 15 ("nothing is lost under crashes, restarts and bad input"), one
// copy each: `npm run chaos` (chaos/run.ts) runs them at full size on a stack of its own and
// prints their figures; the chaos/*.test.ts files run them small inside `npm test` and assert
// that they found no violation. A scenario never asserts a timing, only the invariants (and
// the contract's own bound: what a dead process accepted goes out within 60 s).
//   R1  many senders, duplicates and abandoned requests: every acknowledged message stored
//       once, nothing else stored, each in exactly one chat:batch (in realtime.messages and at
//       a real supabase-js subscriber), seq 1..N per room, no 5xx
//   R2  a gateway process killed with SIGKILL while chat it accepted waits for its flush: the
//       pg_cron sweeper sends it
//   R3  Postgres restarted under load: only 503 with Retry-After meanwhile, then everything
//       acknowledged stored and broadcast once
import assert from "node:assert/strict";
import postgres from "npm:postgres@3.4.9";
import { userToken } from "../local/keys.ts";
import { type Cluster, startCluster, stopCluster } from "../local/postgres.ts";
import { throwawayClusterOfEnv } from "../local/throwaway.ts";
import {
  acknowledged,
  type ChatMessage,
  type CrowdPlan,
  type Exchange,
  type Ledger,
  mergeLedger,
  newLedger,
  type PacedSender,
  postChat,
  recordOutcome,
  recordSend,
  sendPaced,
  sleep,
  violation,
} from "./senders.ts";

/** Where a scenario runs: the gateway, the database, (R3) the cluster it may restart, and the
 * gateway's request log (local/throwaway.ts writes one line per request). */
export interface ChaosStack {
  apiUrl: string;
  dbUrl: string;
  cluster?: Cluster;
  gatewayLog?: string;
}

/**
 * What the gateway logged from now on: `read()` counts its 5xx answers by request line, those
 * no client saw included (a request its client abandoned is still answered, to nobody).
 */
async function gatewayLogFrom(path: string | undefined) {
  const from = path ? (await Deno.stat(path).catch(() => ({ size: 0 }))).size : 0;
  return {
    async read(): Promise<Record<string, number>> {
      const serverErrors: Record<string, number> = {};
      // No log at all: the gateway has served nothing.
      const file = path ? await Deno.open(path).catch(() => undefined) : undefined;
      if (!file) return serverErrors;
      try {
        await file.seek(from, Deno.SeekMode.Start);
        const text = await new Response(file.readable).text();
        for (const line of text.split("\n")) {
          const match = /^\S+ (\S+) (\S+?)(?:\?\S*)? (5\d\d) [\d.]+ms$/.exec(line);
          if (match) {
            const key = `${match[1]} ${match[2]} ${match[3]}`;
            serverErrors[key] = (serverErrors[key] ?? 0) + 1;
          }
        }
      } finally {
        try {
          file.close();
        } catch {
          // Closed with its stream already.
        }
      }
      return serverErrors;
    },
  };
}

export interface ScenarioResult {
  figures: Record<string, unknown>;
  /** Every broken invariant, as a sentence (at most a few per kind); empty when all held. */
  violations: string[];
}

/** Every request is answered (202, or 503 when the database cannot be reached) within this:
 * the functions' pool gives up connecting after 5 s and a statement after 8 s. */
const requestBoundMs = 10_000;

/** What a function instance that dies leaves to the pg_cron sweeper goes out within 60 s
 * (API.md §4); the sweeper runs each minute, and may take a few seconds to start and finish. */
const sweeperBoundMs = 65_000;

const here = new URL(".", import.meta.url).pathname;
const seconds = (ms: number) => Math.round(ms / 100) / 10;

function connect(dbUrl: string): postgres.Sql {
  return postgres(dbUrl, { max: 2, onnotice: () => {} });
}

interface Person {
  id: string;
  token: string;
}

/**
 * `people` users with real tokens and `rooms` public rooms hosted by the first, every other user
 * a listener of every room.
 */
async function seedRooms(
  sql: postgres.Sql,
  { people, rooms, name }: { people: number; rooms: number; name: string },
): Promise<{ people: Person[]; rooms: string[] }> {
  const ids = Array.from({ length: people }, () => crypto.randomUUID());
  await sql`insert into auth.users (id, email, is_anonymous)
            select id, id || '@chaos.test', false from unnest(${ids}::uuid[]) as u (id)`;
  const made = await sql`
    insert into public.rooms (name, host_id, visibility)
    select ${name} || ' ' || n, ${ids[0]}, 'public' from generate_series(1, ${rooms}) as n
    returning id`;
  const roomIds = made.map((r) => r.id as string);
  await sql`insert into public.room_members (room_id, user_id, role)
            select r, u, 'listener' from unnest(${roomIds}::uuid[]) as r,
                                         unnest(${ids.slice(1)}::uuid[]) as u`;
  const tokens = await Promise.all(ids.map((id) => userToken(id, { expiresIn: 3 * 3600 })));
  return { people: ids.map((id, i) => ({ id, token: tokens[i] })), rooms: roomIds };
}

/**
 * Waits until none of the rooms' messages waits to go out (seq null), at most `boundMs`, looking
 * every `everyMs`. Returns how many still wait (0 when all went out) and the time waited.
 */
async function waitUntilSent(sql: postgres.Sql, rooms: string[], boundMs: number, everyMs = 100) {
  const started = Date.now();
  for (;;) {
    const [{ waiting }] = await sql`
      select count(*)::int as waiting from public.messages
      where room_id = any(${rooms}::uuid[]) and seq is null`;
    if (waiting === 0 || Date.now() - started > boundMs) {
      return { waiting: waiting as number, waitedMs: Date.now() - started };
    }
    await sleep(everyMs);
  }
}

/** A stored message, as the checks read it. */
interface Stored {
  room_id: string;
  client_id: string;
  id: number;
  seq: number | null;
  body: string;
}

/**
 * Holds the rooms' stored messages and their broadcasts against what the senders were told:
 *   - stored = exactly the acknowledged messages, with the acknowledged id, room and body, and
 *     nothing that was never sent;
 *   - per room, seq is exactly 1..N;
 *   - realtime.messages on `room:{id}:chat` holds only chat:batch events (private), each with at
 *     most 200 messages in consecutive seq, and every stored message is in exactly one of them,
 *     with its seq.
 * Returns the stored messages (by room, in seq order) and figures.
 */
async function checkChat(
  sql: postgres.Sql,
  rooms: string[],
  ledger: Ledger,
  violations: string[],
) {
  const complain = limited(violations);
  const stored = await sql<Stored[]>`
    select room_id, client_id, id::int as id, seq::int as seq, body from public.messages
    where room_id = any(${rooms}::uuid[])`;
  const storedIds = new Map<number, Stored>();
  const storedClientIds = new Set<string>();
  for (const m of stored) {
    storedIds.set(m.id, m);
    storedClientIds.add(m.client_id);
    const sent = ledger.messages.get(m.client_id);
    if (!sent) complain("stored but never sent", `${m.client_id} (id ${m.id})`);
    else if (sent.room !== m.room_id || sent.body !== m.body) {
      complain("stored in another room or with another body", m.client_id);
    } else if (sent.id === undefined) complain("stored but never acknowledged", m.client_id);
    else if (sent.id !== m.id) {
      complain("stored with another id than acknowledged", `${m.client_id}: ${m.id}/${sent.id}`);
    }
  }
  const acked = acknowledged(ledger);
  for (const [clientId, m] of acked) {
    if (!storedClientIds.has(clientId)) complain("acknowledged but not stored", clientId);
    else if (!rooms.includes(m.room)) complain("acknowledged in a room not checked", clientId);
  }

  const byRoom = new Map<string, Stored[]>(rooms.map((room) => [room, []]));
  for (const m of stored) byRoom.get(m.room_id)!.push(m);
  for (const [room, messages] of byRoom) {
    messages.sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity));
    const holes = messages.filter((m, i) => m.seq !== i + 1);
    if (holes.length > 0) {
      complain(
        "seq is not 1..N in a room",
        `${room}: ${messages.length} messages, first misfit ${JSON.stringify(holes[0])}`,
      );
    }
  }

  const topics = rooms.map((room) => `room:${room}:chat`);
  const broadcasts = await sql<
    { topic: string; event: string; private: boolean; ids: number[]; seqs: number[] }[]
  >`
    select rm.topic, rm.event, rm.private,
           coalesce(array_agg((e.item ->> 'id')::int order by e.n)
                      filter (where e.item is not null), '{}') as ids,
           coalesce(array_agg((e.item ->> 'seq')::int order by e.n)
                      filter (where e.item is not null), '{}') as seqs
    from realtime.messages rm
    left join lateral jsonb_array_elements(case when jsonb_typeof(rm.payload -> 'messages') = 'array'
                                           then rm.payload -> 'messages' end)
              with ordinality as e (item, n) on true
    where rm.topic = any(${topics}::text[])
    group by rm.id, rm.inserted_at, rm.topic, rm.event, rm.private`;
  const timesBroadcast = new Map<number, number>();
  let largest = 0;
  for (const b of broadcasts) {
    if (b.event !== "chat:batch" || !b.private) {
      complain("another broadcast than a private chat:batch on a chat topic", b.event);
      continue;
    }
    largest = Math.max(largest, b.ids.length);
    if (b.ids.length === 0 || b.ids.length > 200) {
      complain("a chat:batch with 0 or more than 200 messages", `${b.ids.length}`);
    }
    b.seqs.forEach((seq, i) => {
      if (i > 0 && seq !== b.seqs[i - 1] + 1) complain("a batch's seq not consecutive", b.topic);
    });
    b.ids.forEach((id, i) => {
      timesBroadcast.set(id, (timesBroadcast.get(id) ?? 0) + 1);
      const m = storedIds.get(id);
      if (!m) complain("a broadcast message that is not stored", `id ${id}`);
      else if (`room:${m.room_id}:chat` !== b.topic || m.seq !== b.seqs[i]) {
        complain("a broadcast message with another room or seq than stored", `id ${id}`);
      }
    });
  }
  for (const m of stored) {
    const times = timesBroadcast.get(m.id) ?? 0;
    if (times !== 1) complain(`stored messages broadcast ${times} times, not once`, m.client_id);
  }
  return {
    byRoom,
    figures: {
      stored: stored.length,
      chat_batches: broadcasts.length,
      messages_per_batch: broadcasts.length
        ? Math.round((stored.length / broadcasts.length) * 10) / 10
        : null,
      largest_batch: largest,
    },
  };
}

/**
 * Adds violations to `violations`, at most 3 examples per kind, then a count:
 * "acknowledged but not stored: x, y, z (and 41 more)".
 */
function limited(violations: string[]) {
  const kinds = new Map<string, { examples: string[]; count: number; index: number }>();
  return (kind: string, example: string) => {
    let entry = kinds.get(kind);
    if (!entry) {
      entry = { examples: [], count: 0, index: violations.length };
      kinds.set(kind, entry);
      violations.push("");
    }
    entry.count++;
    if (entry.examples.length < 3) entry.examples.push(example);
    const more = entry.count - entry.examples.length;
    violations[entry.index] = `${kind}: ${entry.examples.join(", ")}${
      more > 0 ? ` (and ${more} more)` : ""
    }`;
  };
}

/** The ledger's own findings (wrong answers, 5xx, hangs) as violations, the same sentence
 * once with its count. */
function ledgerViolations(ledger: Ledger, violations: string[]): void {
  const counts = new Map<string, number>();
  for (const sentence of ledger.violations) counts.set(sentence, (counts.get(sentence) ?? 0) + 1);
  for (const [sentence, n] of counts) violations.push(n > 1 ? `${sentence} (×${n})` : sentence);
  const more = ledger.violationCount - ledger.violations.length;
  if (more > 0) violations.push(`(and ${more} more of the above)`);
}

/** local/test-helpers.ts, imported when first needed: it reads the stack's environment when it
 * loads, which `npm run chaos` sets only once its stack is up (chaos/fuzz.ts needs it then). */
const testing = () => import("../local/test-helpers.ts");

/**
 * A real supabase-js subscriber per room on its private `room:{id}:chat`, signed in as a
 * member, recording the messages of every chat:batch it receives, in the order received.
 */
class ChatSubscribers {
  private constructor(
    readonly listeners: Map<string, Awaited<ReturnType<typeof listenToChat>>>,
  ) {}

  static async start(apiUrl: string, rooms: string[], token: string): Promise<ChatSubscribers> {
    const listening = await Promise.allSettled(
      rooms.map(async (room) => [room, await listenToChat(apiUrl, room, token)] as const),
    );
    const subscribers = new ChatSubscribers(
      new Map(listening.flatMap((l) => l.status === "fulfilled" ? [l.value] : [])),
    );
    const refused = listening.find((l) => l.status === "rejected");
    if (refused) {
      await subscribers.close();
      throw (refused as PromiseRejectedResult).reason;
    }
    return subscribers;
  }

  /** The messages `room`'s subscriber received, batch after batch. */
  received(room: string): { id: number; seq: number }[] {
    return this.listeners.get(room)!.received.flatMap(({ payload }) => payload.messages);
  }

  /**
   * Waits (at most `boundMs`) until each room's subscriber holds as many messages as are stored,
   * then checks it received each stored message exactly once, in seq order 1..N.
   */
  async check(byRoom: Map<string, Stored[]>, violations: string[], boundMs: number) {
    const complain = limited(violations);
    const deadline = Date.now() + boundMs;
    const behind = () =>
      [...byRoom].some(([room, stored]) => this.received(room).length < stored.length);
    while (behind() && Date.now() < deadline) await sleep(100);
    let received = 0;
    for (const [room, stored] of byRoom) {
      const got = this.received(room);
      received += got.length;
      const misfit = got.findIndex((m, i) => m.seq !== i + 1 || stored[i]?.id !== m.id);
      if (got.length !== stored.length || misfit >= 0) {
        complain(
          "a subscriber did not receive each stored message once, in seq order",
          `${room}: ${got.length} received, ${stored.length} stored, first misfit at ${misfit}`,
        );
      }
    }
    return received;
  }

  async close(): Promise<void> {
    await Promise.all([...this.listeners.values()].map((listener) => listener.close()));
  }
}

/** A member's subscriber of `room`'s chat through the gateway at `apiUrl`. */
async function listenToChat(apiUrl: string, room: string, token: string) {
  const { listenPrivate } = await testing();
  return listenPrivate<{ messages: { id: number; seq: number }[] }>(token, `room:${room}:chat`, {
    event: "chat:batch",
    url: apiUrl,
  });
}

/** R1's load in a Worker of its own (chaos/r1-worker.ts). */
function sendCrowdInWorker(plan: CrowdPlan): Promise<Ledger> {
  const worker = new Worker(new URL("./r1-worker.ts", import.meta.url).href, { type: "module" });
  return new Promise<Ledger>((resolve, reject) => {
    worker.onmessage = (event) => resolve(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      reject(event.error ?? new Error(event.message));
    };
    worker.postMessage(plan);
  }).finally(() => worker.terminate());
}

/**
 * A scenario's frame: a connection of its own, `seed`'s users and rooms on it (seedRooms), and
 * the list `run` adds the broken invariants to; `run` returns the figures. The connection is
 * closed afterwards, whatever happened.
 */
async function withSeededRooms(
  stack: ChaosStack,
  seed: Parameters<typeof seedRooms>[1],
  run: (
    scenario: Awaited<ReturnType<typeof seedRooms>> & { sql: postgres.Sql; violations: string[] },
  ) => Promise<Record<string, unknown>>,
): Promise<ScenarioResult> {
  const violations: string[] = [];
  const sql = connect(stack.dbUrl);
  try {
    const figures = await run({ ...await seedRooms(sql, seed), sql, violations });
    return { figures, violations };
  } finally {
    await sql.end();
  }
}

export interface R1Size {
  /** New messages in all (each sent until acknowledged; resends come on top). */
  messages: number;
  senders: number;
  /** Rooms, the first of them hot (half of the requests). */
  rooms: number;
  seed: number;
  /** The senders give up what is not acknowledged by then. */
  boundS: number;
}

/**
 * R1: `senders` users send `messages` chat messages at once, as fast as answers come, over
 * `rooms` rooms with one hot room; 1..10 messages a request; 10 % of the acknowledged messages
 * sent again later with the same client_id; 2 % of the requests abandoned mid-flight
 * (AbortController) and sent again within a second.
 */
export function r1Duplicates(stack: ChaosStack, size: R1Size): Promise<ScenarioResult> {
  const seed = { people: size.senders + 1, rooms: size.rooms, name: "R1" };
  return withSeededRooms(stack, seed, async ({ sql, people, rooms, violations }) => {
    const [host, ...senders] = people;
    const subscribers = await ChatSubscribers.start(stack.apiUrl, rooms, host.token);
    try {
      const run = crypto.randomUUID().slice(0, 8);
      const gatewayLog = await gatewayLogFrom(stack.gatewayLog);
      const ledger = await sendCrowdInWorker({
        apiUrl: stack.apiUrl,
        senders: senders.map((sender, i) => ({
          token: sender.token,
          rooms,
          messages: Math.floor(size.messages / size.senders) +
            (i < size.messages % size.senders ? 1 : 0),
          prefix: `r1-${run}-${i}`,
          seed: size.seed * 1000 + i,
        })),
        hotShare: 0.5,
        maxPerRequest: 10,
        resendShare: 0.1,
        abandonShare: 0.02,
        boundMs: requestBoundMs,
        giveUpAt: Date.now() + size.boundS * 1000,
      });
      ledgerViolations(ledger, violations);
      const drained = await waitUntilSent(sql, rooms, sweeperBoundMs);
      if (drained.waiting > 0) {
        violations.push(`${drained.waiting} stored messages had not gone out after 65 s`);
      }
      const [{ last_batch_at }] = await sql`
          select max(broadcast_at) as last_batch_at from public.messages
          where room_id = any(${rooms}::uuid[])`;
      const checked = await checkChat(sql, rooms, ledger, violations);
      const received = await subscribers.check(checked.byRoom, violations, 20_000);
      const acked = acknowledged(ledger).length;
      const sendingMs = ledger.lastAckAt - ledger.firstRequestAt;
      return {
        senders: size.senders,
        rooms: size.rooms,
        requests: ledger.requests,
        messages_acknowledged: acked,
        sending_s: seconds(sendingMs),
        messages_per_s: Math.round(acked / (sendingMs / 1000)),
        requests_per_s: Math.round(ledger.requests / (sendingMs / 1000)),
        resent_after_acknowledgement: ledger.resendsAfterAck,
        answered_duplicate_true: ledger.duplicateAnswers,
        of_which_resends_of_acknowledged: ledger.duplicateAnswersAfterAck,
        of_which_retries_of_abandoned: ledger.duplicateAnswers - ledger.duplicateAnswersAfterAck,
        abandoned_mid_flight: ledger.statuses["abandoned"] ?? 0,
        statuses: ledger.statuses,
        answered_5xx: Object.entries(ledger.statuses)
          .filter(([status]) => status.startsWith("5"))
          .reduce((n, [, count]) => n + count, 0),
        gateway_log_5xx: await gatewayLog.read(),
        ...checked.figures,
        received_by_subscribers: received,
        last_batch_since_first_request_s: last_batch_at
          ? seconds(last_batch_at.getTime() - ledger.firstRequestAt)
          : null,
        // 0 when it left before the client had read the last 202 (the flush does not wait).
        last_batch_after_last_new_ack_ms: last_batch_at
          ? Math.max(0, last_batch_at.getTime() - ledger.lastNewAckAt)
          : null,
      };
    } finally {
      await subscribers.close();
    }
  });
}

/** chaos/gateway-process.ts, running: its URL, and SIGKILL. */
class GatewayProcess {
  private constructor(
    readonly url: string,
    readonly child: Deno.ChildProcess,
    readonly drained: Promise<void>,
  ) {}

  static async start(dbUrl: string, port: number): Promise<GatewayProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", `${here}gateway-process.ts`, dbUrl, String(port)],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    const timeout = setTimeout(() => child.kill("SIGKILL"), 30_000);
    try {
      while (!/^ready (\S+)$/m.test(text)) {
        const { value, done } = await lines.read();
        if (done) throw new Error(`the gateway process ended before it served: ${text}`);
        text += value;
      }
    } finally {
      clearTimeout(timeout);
    }
    // Its stdout is read to the end, so that it never blocks on a full pipe.
    const drained = (async () => {
      while (!(await lines.read()).done) { /* nothing else is expected */ }
    })();
    return new GatewayProcess(/^ready (\S+)$/m.exec(text)![1], child, drained);
  }

  async kill(): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // It has ended already.
    }
    await this.child.status;
    await this.drained;
  }
}

export interface R2Size {
  rooms: number;
  /** Messages per request: one request per room before the kill, and one the same some
   * moments earlier (its batch is the one the kill follows). */
  messagesPerRoom: number;
  /** The gateway process's port (0: any free one). */
  port: number;
}

/**
 * R2: chat sent through a gateway in a process of its own, which is killed with SIGKILL right
 * after its 202s, while its flush timers wait: each room had a batch just before (the same
 * request, which also readies the process's code for it), so its next may leave only 100 ms
 * later. What it accepted must all go out within 60 s, each message in exactly one chat:batch:
 * pg_cron's sweeper (private.flush_due_windows) takes over.
 */
export function r2GatewayKill(stack: ChaosStack, size: R2Size): Promise<ScenarioResult> {
  const seed = { people: size.rooms + 1, rooms: size.rooms, name: "R2" };
  return withSeededRooms(stack, seed, async ({ sql, people, rooms, violations }) => {
    const gateway = await GatewayProcess.start(stack.dbUrl, size.port);
    try {
      const ledger = newLedger();
      const run = crypto.randomUUID().slice(0, 8);
      let made = 0;
      const send = async (room: number, count: number) => {
        const messages: ChatMessage[] = Array.from({ length: count }, () => {
          const client_id = `r2-${run}-${made++}`;
          return { client_id, body: `${client_id}: sent just before the crash` };
        });
        recordSend(ledger, rooms[room], messages);
        const outcome = await postChat(gateway.url, people[room + 1].token, rooms[room], messages, {
          boundMs: requestBoundMs,
        });
        recordOutcome(ledger, messages, outcome, 0);
        if (outcome.kind !== "accepted") violation(ledger, `a request was not accepted`);
      };
      // A first request per room, sent at once (the room's first batch); then one more right
      // after that batch, which waits for the room's next interval.
      await Promise.all(rooms.map((_, room) => send(room, size.messagesPerRoom)));
      const first = await waitUntilSent(sql, rooms, 5_000, 2);
      if (first.waiting > 0) violations.push("the rooms' first messages did not go out at once");
      await Promise.all(rooms.map((_, room) => send(room, size.messagesPerRoom)));
      const killedAt = Date.now();
      await gateway.kill();
      const [{ batched }] = await sql`
          select max(broadcast_at) as batched from public.messages
          where room_id = any(${rooms}::uuid[]) and seq is not null`;
      const [{ pending }] = await sql`
          select count(*)::int as pending from public.messages
          where room_id = any(${rooms}::uuid[]) and seq is null`;
      if (pending === 0) {
        violations.push(
          "no accepted message was waiting at the kill: the scenario tested nothing (too slow a machine?)",
        );
      }
      // The dead process's last statements have ended by now: what waits is the sweeper's.
      await sleep(1000);
      const [{ left }] = await sql`
          select count(*)::int as left from public.messages
          where room_id = any(${rooms}::uuid[]) and seq is null`;
      const drained = await waitUntilSent(sql, rooms, sweeperBoundMs);
      const [{ last }] = await sql`
          select max(broadcast_at) as last from public.messages
          where room_id = any(${rooms}::uuid[])`;
      const killToLastMs = last.getTime() - killedAt;
      if (drained.waiting > 0 || killToLastMs > sweeperBoundMs) {
        violations.push(
          `${drained.waiting} message(s) still waiting; the last went out ${killToLastMs} ms after the kill (bound 60 s, plus 5 s for the sweeper)`,
        );
      }
      ledgerViolations(ledger, violations);
      const checked = await checkChat(sql, rooms, ledger, violations);
      return {
        rooms: size.rooms,
        messages_accepted: acknowledged(ledger).length,
        // From the rooms' last batch before the kill to the kill: their next batch was due
        // 100 ms after that batch.
        kill_after_last_batch_ms: killedAt - batched.getTime(),
        pending_at_kill: pending,
        left_to_sweeper: left,
        kill_to_last_pending_out_s: seconds(killToLastMs),
        ...checked.figures,
      };
    } finally {
      await gateway.kill();
    }
  });
}

export interface R3Size {
  senders: number;
  rooms: number;
  /** Sending before the database stops, how long it stays down, and sending after it is back. */
  beforeMs: number;
  outageMs: number;
  afterMs: number;
}

/**
 * R3: `senders` users keep sending (one request at a time, paced, resending what got 503 or no
 * answer with the same client_ids after Retry-After, as the client library does) while Postgres
 * is stopped and started again (pg_ctl stop -m fast, as health's db-outage test does). A probe
 * sends one message every 100 ms and retries every 100 ms regardless of Retry-After, to see
 * when the service is back. Meanwhile only 202, 503 with Retry-After and 429 may come back;
 * afterwards every acknowledged message is stored and broadcast exactly once.
 */
export async function r3DbRestart(
  stack: ChaosStack & { cluster: Cluster },
  size: R3Size,
): Promise<ScenarioResult> {
  const violations: string[] = [];
  const setup = connect(stack.dbUrl);
  let people: Person[], rooms: string[];
  try {
    ({ people, rooms } = await seedRooms(setup, {
      people: size.senders + 2,
      rooms: size.rooms,
      name: "R3",
    }));
  } finally {
    await setup.end();
  }
  const run = crypto.randomUUID().slice(0, 8);
  const senders: PacedSender[] = people.slice(1).map((person, i) => ({
    token: person.token,
    room: rooms[i % rooms.length],
    prefix: `r3-${run}-${i}`,
    seed: i + 1,
    // 2 messages a request on average every 150 ms or so: below the 20/s rate limit.
    paceMs: 150,
    maxPerRequest: 3,
    ...(i === size.senders ? { paceMs: 100, maxPerRequest: 1, retryEveryMs: 100 } : {}),
  }));
  const probe = senders.length - 1;
  const stop: { requested: boolean; giveUpAt?: number } = { requested: false };
  const gatewayLog = await gatewayLogFrom(stack.gatewayLog);
  const exchanges: Exchange[][] = senders.map(() => []);
  const sending = senders.map((sender, i) =>
    sendPaced(stack.apiUrl, sender, stop, { boundMs: requestBoundMs, exchanges: exchanges[i] })
  );
  let stoppingAt = 0, stoppedAt = 0, startedAt = 0;
  try {
    try {
      await sleep(size.beforeMs);
      stoppingAt = Date.now();
      await stopCluster(stack.cluster);
      stoppedAt = Date.now();
      await sleep(size.outageMs);
    } finally {
      // However the outage went, the database comes back for what follows.
      await startCluster(stack.cluster);
      startedAt = Date.now();
    }
    await sleep(size.afterMs);
  } finally {
    stop.requested = true;
    stop.giveUpAt = Date.now() + 60_000;
  }
  const ledger = newLedger();
  for (const one of await Promise.all(sending)) mergeLedger(ledger, one);
  ledgerViolations(ledger, violations);
  if (ledger.unavailable === 0) violations.push("no request met the outage: it tested nothing");
  if (ledger.unavailableWithoutRetryAfter > 0) {
    violations.push(`${ledger.unavailableWithoutRetryAfter} answers 503 without Retry-After`);
  }

  const all = exchanges.flat();
  const probed = exchanges[probe];
  const status = (e: Exchange) => e.outcome.kind === "status" ? e.outcome.status : e.outcome.kind;
  const firstFailure = probed.find((e) => e.outcome.kind !== "accepted");
  const firstAckAfterRestart = Math.min(
    ...all.filter((e) => e.outcome.kind === "accepted" && e.answeredAt >= startedAt)
      .map((e) => e.answeredAt),
  );
  const slowest = (list: Exchange[]) => Math.max(0, ...list.map((e) => e.answeredAt - e.sentAt));
  const sql = connect(stack.dbUrl);
  try {
    const drained = await waitUntilSent(sql, rooms, sweeperBoundMs);
    if (drained.waiting > 0) {
      violations.push(`${drained.waiting} stored messages had not gone out after 65 s`);
    }
    const checked = await checkChat(sql, rooms, ledger, violations);
    return {
      violations,
      figures: {
        senders: size.senders,
        rooms: size.rooms,
        requests: ledger.requests,
        messages_acknowledged: acknowledged(ledger).length,
        statuses: ledger.statuses,
        answers_503: ledger.unavailable,
        other_5xx: ledger.otherServerErrors,
        gateway_log_5xx: await gatewayLog.read(),
        slowest_answer_ms: {
          before: slowest(all.filter((e) => e.sentAt < stoppingAt)),
          while_down: slowest(all.filter((e) => e.sentAt >= stoppingAt && e.sentAt < startedAt)),
          after: slowest(all.filter((e) => e.sentAt >= startedAt)),
        },
        database_stop_s: seconds(stoppedAt - stoppingAt),
        database_down_s: seconds(startedAt - stoppingAt),
        probe_first_failure_after_stop_ms: firstFailure ? firstFailure.sentAt - stoppingAt : null,
        probe_first_failure_status: firstFailure ? status(firstFailure) : null,
        // From the database accepting connections again to the first 202.
        recovery_ms: Number.isFinite(firstAckAfterRestart)
          ? firstAckAfterRestart - startedAt
          : null,
        resent_answered_duplicate_true: ledger.duplicateAnswers,
        all_acknowledged_after_restart_s: seconds(ledger.lastAckAt - startedAt),
        ...checked.figures,
      },
    };
  } finally {
    await sql.end();
  }
}

/**
 * Runs `scenario` small on the test stack `npm test` made (local/run-tests.ts passes it in the
 * environment), prints its figures, fails the test on any broken invariant, and returns the
 * figures for what the test checks besides.
 */
export async function runOnTestStack<Size>(
  scenario: (stack: ChaosStack & { cluster: Cluster }, size: Size) => Promise<ScenarioResult>,
  size: Size,
): Promise<Record<string, unknown>> {
  const { figures, violations } = await scenario({
    apiUrl: Deno.env.get("SUPABASE_URL")!,
    dbUrl: Deno.env.get("SUPABASE_DB_URL")!,
    gatewayLog: `${Deno.env.get("TEST_CLUSTER_DIR")}/gateway.log`,
    cluster: throwawayClusterOfEnv(),
  }, size);
  console.log(JSON.stringify(figures));
  assert.deepEqual(violations, []);
  return figures;
}
