// The sending side of the chaos scenarios: chat-send calls as the client library's outbox makes
// them (client/outbox.ts) — a request that got no answer, a 429, a 503 or a network error is
// sent again with the same client_ids, after Retry-After when the server gave one — and a
// ledger of what happened to every request and every message, which the scenarios later hold
// against the database and the broadcasts (chaos/scenarios.ts).
//
// The ledger also checks each answer as it comes: a client_id must always come back with the
// same id, and `duplicate: true` only for what was stored before (an earlier acknowledgement,
// or an earlier request whose fate the client cannot know: abandoned, unanswered, 5xx).
// It is plain data (maps, arrays, numbers) so that a Worker can hand it over (chaos/r1-worker.ts).
// Senders draw their choices from a seeded random source: the same scenario makes the same ones.
import { seededRandom } from "../local/seeded-random.ts";

export interface ChatMessage {
  client_id: string;
  body: string;
}

interface Accepted {
  client_id: string;
  id: number;
  created_at: string;
  duplicate: boolean;
}

/** What one request came to. `status` is the HTTP status; the other kinds had none. */
export type Outcome =
  | { kind: "accepted"; accepted: Accepted[] }
  | { kind: "status"; status: number; code?: string; retryAfterMs?: number }
  | { kind: "network"; error: string }
  | { kind: "abandoned" }
  | { kind: "no answer"; boundMs: number };

/** A message the ledger has seen: its room, its body, and what the server said about it. */
interface MessageRecord {
  room: string;
  body: string;
  /** The id of its first acknowledgement. */
  id?: number;
  /** Requests that carried it whose fate the client cannot know (it may be stored). */
  unknownAttempts: number;
  /** Acknowledgements received (the first included). */
  acks: number;
}

export interface Ledger {
  requests: number;
  /** HTTP status, or "abandoned" / "network error" / "no answer", to count. */
  statuses: Record<string, number>;
  messages: Map<string, MessageRecord>;
  /** Answers `duplicate: true`, and those of them for a message acknowledged before. */
  duplicateAnswers: number;
  duplicateAnswersAfterAck: number;
  /** Resends of acknowledged messages (each must be answered `duplicate: true`). */
  resendsAfterAck: number;
  /** 503 answers, and those without a Retry-After header. */
  unavailable: number;
  unavailableWithoutRetryAfter: number;
  /** 5xx answers other than 503: never allowed. */
  otherServerErrors: number;
  /** Wall clock (epoch ms) of the first request, of the last acknowledgement, and of the last
   * acknowledgement of a message not acknowledged before. */
  firstRequestAt: number;
  lastAckAt: number;
  lastNewAckAt: number;
  /** At most maxViolations sentences, and how many there were in all. */
  violations: string[];
  violationCount: number;
}

const maxViolations = 20;

export function newLedger(): Ledger {
  return {
    requests: 0,
    statuses: {},
    messages: new Map(),
    duplicateAnswers: 0,
    duplicateAnswersAfterAck: 0,
    resendsAfterAck: 0,
    unavailable: 0,
    unavailableWithoutRetryAfter: 0,
    otherServerErrors: 0,
    firstRequestAt: 0,
    lastAckAt: 0,
    lastNewAckAt: 0,
    violations: [],
    violationCount: 0,
  };
}

export function violation(ledger: Ledger, sentence: string): void {
  ledger.violationCount++;
  if (ledger.violations.length < maxViolations) ledger.violations.push(sentence);
}

/** Adds `other`'s counts and messages to `ledger` (ledgers of separate senders). */
export function mergeLedger(ledger: Ledger, other: Ledger): void {
  const counters = [
    "requests",
    "duplicateAnswers",
    "duplicateAnswersAfterAck",
    "resendsAfterAck",
    "unavailable",
    "unavailableWithoutRetryAfter",
    "otherServerErrors",
  ] as const;
  for (const key of counters) ledger[key] += other[key];
  for (const [status, n] of Object.entries(other.statuses)) {
    ledger.statuses[status] = (ledger.statuses[status] ?? 0) + n;
  }
  for (const [clientId, record] of other.messages) {
    if (ledger.messages.has(clientId)) violation(ledger, `${clientId} was sent by two senders`);
    ledger.messages.set(clientId, record);
  }
  for (const sentence of other.violations) violation(ledger, sentence);
  ledger.violationCount += other.violationCount - other.violations.length;
  if (other.firstRequestAt) {
    ledger.firstRequestAt = Math.min(ledger.firstRequestAt || Infinity, other.firstRequestAt);
  }
  ledger.lastAckAt = Math.max(ledger.lastAckAt, other.lastAckAt);
  ledger.lastNewAckAt = Math.max(ledger.lastNewAckAt, other.lastNewAckAt);
}

/** Messages acknowledged (202) at least once. */
export function acknowledged(ledger: Ledger): [string, MessageRecord & { id: number }][] {
  return [...ledger.messages].filter(([, m]) => m.id !== undefined) as [
    string,
    MessageRecord & { id: number },
  ][];
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One POST /functions/v1/chat-send. `abandonAfterMs`: the client gives up on it then (an
 * AbortController, as a closed tab or a navigation would); `boundMs`: longer than that without
 * an answer is a hang, and the request is given up as well.
 */
export async function postChat(
  apiUrl: string,
  token: string,
  room: string,
  messages: ChatMessage[],
  { abandonAfterMs, boundMs }: { abandonAfterMs?: number; boundMs: number },
): Promise<Outcome> {
  const controller = new AbortController();
  let why: "abandoned" | "no answer" | undefined;
  const giveUp = (reason: "abandoned" | "no answer", ms: number) =>
    setTimeout(() => {
      why ??= reason;
      controller.abort();
    }, ms);
  const timers = [giveUp("no answer", boundMs)];
  if (abandonAfterMs !== undefined) timers.push(giveUp("abandoned", abandonAfterMs));
  try {
    const response = await fetch(`${apiUrl}/functions/v1/chat-send`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ room_id: room, messages }),
      signal: controller.signal,
    });
    const text = await response.text();
    // deno-lint-ignore no-explicit-any -- whatever JSON came back, checked below
    let body: any;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (response.status === 202 && Array.isArray(body?.accepted)) {
      return { kind: "accepted", accepted: body.accepted };
    }
    const retryAfter = response.headers.get("retry-after");
    return {
      kind: "status",
      status: response.status,
      code: body?.error?.code,
      retryAfterMs: retryAfter !== null && /^\d+$/.test(retryAfter.trim())
        ? Number(retryAfter) * 1000
        : undefined,
    };
  } catch (error) {
    if (why === "no answer") return { kind: why, boundMs };
    if (why) return { kind: why };
    return { kind: "network", error: String(error) };
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }
}

/**
 * Records a request before it leaves: its messages join the ledger (a resend of an acknowledged
 * message is counted as such).
 */
export function recordSend(ledger: Ledger, room: string, messages: ChatMessage[]): void {
  ledger.requests++;
  ledger.firstRequestAt ||= Date.now();
  for (const { client_id, body } of messages) {
    const known = ledger.messages.get(client_id);
    if (!known) {
      ledger.messages.set(client_id, { room, body, unknownAttempts: 0, acks: 0 });
    } else if (known.room !== room || known.body !== body) {
      violation(ledger, `the scenario reused ${client_id} for another room or body`);
    } else if (known.id !== undefined) {
      ledger.resendsAfterAck++;
    }
  }
}

/**
 * Records what a request came to and checks the answer. Returns what the sender does next:
 * "done", or "retry" after `delayMs` (the outbox's rule: Retry-After, else `backoffMs`).
 */
export function recordOutcome(
  ledger: Ledger,
  messages: ChatMessage[],
  outcome: Outcome,
  backoffMs: number,
): { next: "done" } | { next: "retry"; delayMs: number } {
  const label = outcome.kind === "accepted"
    ? "202"
    : outcome.kind === "status"
    ? String(outcome.status)
    : outcome.kind === "network"
    ? "network error"
    : outcome.kind;
  ledger.statuses[label] = (ledger.statuses[label] ?? 0) + 1;
  const unknownFate = () => {
    for (const m of messages) ledger.messages.get(m.client_id)!.unknownAttempts++;
  };

  if (outcome.kind === "accepted") {
    checkAccepted(ledger, messages, outcome.accepted);
    ledger.lastAckAt = Math.max(ledger.lastAckAt, Date.now());
    return { next: "done" };
  }
  if (outcome.kind === "abandoned") {
    unknownFate();
    return { next: "retry", delayMs: backoffMs };
  }
  if (outcome.kind === "no answer" || outcome.kind === "network") {
    violation(
      ledger,
      outcome.kind === "network"
        ? `a request failed without an HTTP answer: ${outcome.error}`
        : `a request got no answer within ${outcome.boundMs / 1000} s`,
    );
    unknownFate();
    return { next: "retry", delayMs: backoffMs };
  }
  const { status, code, retryAfterMs } = outcome;
  if (status === 503) {
    ledger.unavailable++;
    if (retryAfterMs === undefined || retryAfterMs <= 0) ledger.unavailableWithoutRetryAfter++;
    if (code !== "unavailable") violation(ledger, `a 503 with the code ${code}`);
    unknownFate();
    return { next: "retry", delayMs: retryAfterMs ?? backoffMs };
  }
  if (status >= 500) {
    ledger.otherServerErrors++;
    violation(ledger, `an answer ${status} ${code ?? ""}`.trim());
    unknownFate();
    return { next: "retry", delayMs: backoffMs };
  }
  if (status === 429 || status === 408) {
    // Refused before anything was stored (the rate limit is taken before the insert).
    return { next: "retry", delayMs: retryAfterMs ?? backoffMs };
  }
  violation(ledger, `a well-formed request was refused: ${status} ${code ?? ""}`.trim());
  return { next: "done" };
}

function checkAccepted(ledger: Ledger, messages: ChatMessage[], accepted: Accepted[]): void {
  if (accepted.length !== messages.length) {
    violation(ledger, `${messages.length} messages sent, ${accepted.length} accepted`);
  }
  const mentioned = new Set<string>();
  messages.forEach((message, i) => {
    const answer = accepted[i];
    const record = ledger.messages.get(message.client_id)!;
    if (!answer || answer.client_id !== message.client_id) {
      violation(ledger, `the answer for ${message.client_id} is missing or out of order`);
      return;
    }
    const firstMention = !mentioned.has(message.client_id);
    mentioned.add(message.client_id);
    const storedBefore = record.id !== undefined;
    if (answer.duplicate) {
      ledger.duplicateAnswers++;
      if (storedBefore) ledger.duplicateAnswersAfterAck++;
      else if (firstMention && record.unknownAttempts === 0) {
        violation(
          ledger,
          `${message.client_id} answered duplicate: true the first time it was sent`,
        );
      }
    } else if (storedBefore || !firstMention) {
      violation(ledger, `${message.client_id} answered duplicate: false after it was stored`);
    }
    if (storedBefore && answer.id !== record.id) {
      violation(ledger, `${message.client_id} came back as id ${answer.id}, earlier ${record.id}`);
    }
    if (!storedBefore) ledger.lastNewAckAt = Date.now();
    record.id ??= answer.id;
    record.acks++;
  });
}

/** One of R1's senders: a user sending `messages` new messages over `rooms` as fast as it can. */
export interface CrowdSender {
  token: string;
  /** rooms[0] is the hot room, which gets `hotShare` of the requests; the rest share the rest. */
  rooms: string[];
  messages: number;
  /** Starts its client_ids; unique per sender and run. */
  prefix: string;
  seed: number;
}

export interface CrowdPlan {
  apiUrl: string;
  senders: CrowdSender[];
  hotShare: number;
  maxPerRequest: number;
  /** The share of acknowledged messages sent once more later, with the same client_id. */
  resendShare: number;
  /** The share of requests the client abandons mid-flight (and sends again later). */
  abandonShare: number;
  /** No answer within this is a hang. */
  boundMs: number;
  /** Epoch ms after which a sender gives up what it has not got acknowledged (a violation). */
  giveUpAt: number;
}

/** R1's load: every sender at once, each a closed loop. Resolves with the merged ledger. */
export async function sendCrowd(plan: CrowdPlan): Promise<Ledger> {
  const ledgers = await Promise.all(plan.senders.map((sender) => sendAs(plan, sender)));
  const ledger = newLedger();
  for (const one of ledgers) mergeLedger(ledger, one);
  return ledger;
}

/**
 * One sender: each request carries 1..maxPerRequest messages for one room — new ones, and some
 * that were acknowledged before and are sent again — in a shuffled order. A request it abandons,
 * or that fails, waits for its retry while the sender goes on with new messages, as an outbox
 * that keeps a failed request aside would; what is left is sent at the end.
 */
async function sendAs(plan: CrowdPlan, sender: CrowdSender): Promise<Ledger> {
  const ledger = newLedger();
  const rand = seededRandom(sender.seed);
  const pick = <T>(list: T[]) => list[Math.floor(rand() * list.length)];
  const resends = new Map<string, ChatMessage[]>(sender.rooms.map((room) => [room, []]));
  const retries: { dueAt: number; room: string; messages: ChatMessage[] }[] = [];
  const resendsWaiting = () => [...resends.values()].some((pool) => pool.length > 0);
  let made = 0;
  for (;;) {
    if (Date.now() > plan.giveUpAt) {
      const left = sender.messages - made + retries.length;
      violation(ledger, `${sender.prefix} gave up with ${left} message(s) or requests left`);
      return ledger;
    }
    let room: string, messages: ChatMessage[];
    const due = retries.findIndex((r) => r.dueAt <= Date.now());
    if (due >= 0) {
      ({ room, messages } = retries.splice(due, 1)[0]);
    } else if (made < sender.messages || resendsWaiting()) {
      const fresh = made < sender.messages;
      room = fresh
        ? (rand() < plan.hotShare ? sender.rooms[0] : pick(sender.rooms.slice(1)))
        : [...resends].find(([, pool]) => pool.length > 0)![0];
      const size = 1 + Math.floor(rand() * plan.maxPerRequest);
      const pool = resends.get(room)!;
      // While new messages remain, resends ride along with them; at the end they go alone.
      const again = pool.splice(0, fresh ? Math.floor(rand() * Math.min(pool.length, size)) : size);
      messages = [...again];
      while (messages.length < size && made < sender.messages) {
        const client_id = `${sender.prefix}-${made}`;
        messages.push({ client_id, body: `${client_id}: what a track, who is this? ${made}` });
        made++;
      }
      messages.sort(() => rand() - 0.5);
    } else if (retries.length > 0) {
      await sleep(Math.max(0, Math.min(...retries.map((r) => r.dueAt)) - Date.now()));
      continue;
    } else {
      return ledger;
    }
    const abandonAfterMs = rand() < plan.abandonShare ? rand() * 15 : undefined;
    recordSend(ledger, room, messages);
    const outcome = await postChat(plan.apiUrl, sender.token, room, messages, {
      abandonAfterMs,
      boundMs: plan.boundMs,
    });
    // An abandoned request goes again within a second, as a client's outbox would send it.
    const backoffMs = outcome.kind === "abandoned" ? 100 + rand() * 900 : 1000;
    const result = recordOutcome(ledger, messages, outcome, backoffMs);
    if (result.next === "retry") {
      retries.push({ dueAt: Date.now() + result.delayMs, room, messages });
    } else if (outcome.kind === "accepted") {
      for (const message of messages) {
        const record = ledger.messages.get(message.client_id)!;
        if (record.acks === 1 && rand() < plan.resendShare) resends.get(room)!.push(message);
      }
    }
  }
}

/** One request's fate with its times (epoch ms), for scenarios that read the timeline. */
export interface Exchange {
  sentAt: number;
  answeredAt: number;
  outcome: Outcome;
}

/** One of R3's senders: a user sending to one room at a steady pace, one request at a time. */
export interface PacedSender {
  token: string;
  room: string;
  prefix: string;
  seed: number;
  paceMs: number;
  maxPerRequest: number;
  /** A fixed delay before each retry instead of the server's Retry-After (a probe that
   * measures when the service is back). */
  retryEveryMs?: number;
}

/**
 * Sends at `paceMs` intervals until `stop.requested`; a request that fails is retried, as the
 * outbox does, until it is acknowledged — after `stop.giveUpAt` (epoch ms) it is given up as a
 * violation. Every request's fate goes to `exchanges`.
 */
export async function sendPaced(
  apiUrl: string,
  sender: PacedSender,
  stop: { requested: boolean; giveUpAt?: number },
  { boundMs, exchanges }: { boundMs: number; exchanges: Exchange[] },
): Promise<Ledger> {
  const ledger = newLedger();
  const rand = seededRandom(sender.seed);
  for (let made = 0; !stop.requested;) {
    const messages: ChatMessage[] = [];
    for (let n = 1 + Math.floor(rand() * sender.maxPerRequest); n > 0; n--, made++) {
      const client_id = `${sender.prefix}-${made}`;
      messages.push({ client_id, body: `${client_id}: still here? ${made}` });
    }
    for (;;) {
      recordSend(ledger, sender.room, messages);
      const sentAt = Date.now();
      const outcome = await postChat(apiUrl, sender.token, sender.room, messages, { boundMs });
      exchanges.push({ sentAt, answeredAt: Date.now(), outcome });
      const result = recordOutcome(ledger, messages, outcome, 1000);
      if (result.next === "done") break;
      const delayMs = sender.retryEveryMs ?? result.delayMs;
      if (stop.giveUpAt !== undefined && Date.now() + delayMs > stop.giveUpAt) {
        violation(ledger, `${messages.length} message(s) of ${sender.prefix} never acknowledged`);
        return ledger;
      }
      await sleep(delayMs);
    }
    await sleep(sender.paceMs);
  }
  return ledger;
}
