// Helpers for the client's end-to-end tests against the test stack (`npm test` sets the
// environment): tabs, each a signed-in user's supabase-js client (its session token given as a
// function, which tests can change) with a RoomsClient on it, a fetch the tests can break and a
// page whose events the tests fire; chat written and read in the database; and waiting.
import assert from "node:assert/strict";
import type { SupabaseClient } from "npm:@supabase/supabase-js@2.119.1";
import { userToken } from "../../local/keys.ts";
import {
  closeRealtime,
  realtimeClientFor,
  type TestUser,
  withDb,
} from "../../local/test-helpers.ts";
import { createRoomsClient, type RoomsClient, type RoomsClientOptions } from "../mod.ts";
import type { Message } from "../types.ts";

export interface RecordedCall {
  name: string;
  at: number;
  status: number | null;
  keepalive: boolean;
  // deno-lint-ignore no-explicit-any -- whatever the test wants to look at
  request: any;
  // deno-lint-ignore no-explicit-any -- the parsed answer, when there was one
  response: any;
}

/** A fetch that records function calls and lets a test fail them. */
export function controllableFetch() {
  const calls: RecordedCall[] = [];
  const control = {
    calls,
    /** Throws like a browser without network (for every call, or those `only` picks). */
    offline: false as boolean | ((name: string) => boolean),
    /** Called before a call goes out: return "lose" to send it and then throw, "fail" to throw without sending. */
    intercept: null as null | ((name: string, body: unknown) => "lose" | "fail" | void),
    /** Holds an answer back this many ms after the server gave it (a slow way back). */
    slowAnswer: null as null | ((name: string) => number),
    fetch: (async (input: string | URL | Request, init: RequestInit = {}) => {
      const url = new URL(String(input));
      const name = url.pathname.replace(/^.*\/functions\/v1\//, "");
      const request = typeof init.body === "string"
        ? JSON.parse(init.body)
        : Object.fromEntries(url.searchParams);
      const record: RecordedCall = {
        name,
        at: Date.now(),
        status: null,
        keepalive: Boolean(init.keepalive),
        request,
        response: null,
      };
      calls.push(record);
      const offline = typeof control.offline === "function"
        ? control.offline(name)
        : control.offline;
      const action = control.intercept?.(name, request);
      if (offline || action === "fail") throw new TypeError("Failed to fetch (test: offline)");
      const response = await fetch(input, init);
      record.status = response.status;
      const text = await response.text();
      try {
        record.response = JSON.parse(text);
      } catch {
        record.response = text;
      }
      const holdMs = control.slowAnswer?.(name) ?? 0;
      if (holdMs > 0) await new Promise((resolve) => setTimeout(resolve, holdMs));
      if (action === "lose") throw new TypeError("connection reset (test: the answer was lost)");
      return new Response(text, { status: response.status, headers: response.headers });
    }) as typeof fetch,
  };
  return control;
}

export interface Tab {
  supabase: SupabaseClient;
  rooms: RoomsClient;
  /** Fires page events: pagehide, pageshow, online, offline. */
  window: EventTarget;
  net: ReturnType<typeof controllableFetch>;
  /** The session's token, as supabase-js asks for it. */
  token: string;
  close(): Promise<void>;
}

/** One browser tab of `user`: its own supabase-js client and RoomsClient. */
function tabFor(user: TestUser, options: Partial<RoomsClientOptions> = {}): Tab {
  const net = controllableFetch();
  const window = new EventTarget();
  const tab: Tab = {
    token: user.token,
    net,
    window,
    supabase: undefined as unknown as SupabaseClient,
    rooms: undefined as unknown as RoomsClient,
    async close() {
      await tab.rooms.close();
      await closeRealtime(tab.supabase);
    },
  };
  tab.supabase = realtimeClientFor(() => tab.token);
  tab.rooms = createRoomsClient({
    supabase: tab.supabase,
    fetch: net.fetch,
    page: { window, document: null },
    ...options,
  });
  return tab;
}

/**
 * Runs `test` with one tab per user (a [user, options] pair: a tab with RoomsClient options of
 * its own), in that order, and closes every tab afterwards, whatever happened.
 */
export async function withTabs(
  users: (TestUser | [TestUser, Partial<RoomsClientOptions>])[],
  test: (tabs: Tab[]) => Promise<void>,
): Promise<void> {
  const tabs = users.map((user) => Array.isArray(user) ? tabFor(...user) : tabFor(user));
  try {
    await test(tabs);
  } finally {
    for (const tab of tabs) await tab.close();
  }
}

/** A user token that expires in `seconds`. */
export function shortToken(user: TestUser, seconds: number): Promise<string> {
  return userToken(user.id, { expiresIn: seconds });
}

/** Waits until `check()` holds; fails with `what` (and `detail()`) after `timeoutMs`. */
export async function until(
  what: string,
  check: () => boolean,
  timeoutMs = 5000,
  detail: () => unknown = () => "",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) {
      assert.fail(`${what} (after ${timeoutMs} ms) ${JSON.stringify(detail())}`);
    }
    await sleep(20);
  }
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Inserts `count` messages of `user` that have already gone out (seq 1..count). */
export function seedChat(room: string, user: TestUser, count: number): Promise<void> {
  return withDb(async (sql) => {
    await sql`insert into public.messages (room_id, user_id, client_id, body, seq, broadcast_at)
              select ${room}, ${user.id}, 'seed-' || n, 'seeded message ' || n, n, now()
              from generate_series(1, ${count}) as n`;
  });
}

/** The room's messages that went out, by seq. */
export function storedChat(
  room: string,
): Promise<Pick<Message, "id" | "seq" | "client_id" | "user_id">[]> {
  return withDb(async (sql) => {
    const rows = await sql`select id, seq, client_id, user_id from public.messages
                           where room_id = ${room} and seq is not null order by seq`;
    return rows.map((r) => ({
      id: Number(r.id),
      seq: Number(r.seq),
      client_id: r.client_id,
      user_id: r.user_id,
    }));
  });
}

/** Asserts `messages` is exactly seq `from`..`to`, once each, ascending. */
export function assertContiguous(
  messages: { seq: number }[],
  from: number,
  to: number,
  what: string,
): void {
  const seqs = messages.map((m) => m.seq);
  const expected = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  const missing = expected.filter((s) => !seqs.includes(s));
  const duplicated = seqs.filter((s, i) => seqs.indexOf(s) !== i);
  assert.deepEqual(
    { missing, duplicated, inOrder: seqs.every((s, i) => i === 0 || s > seqs[i - 1]) },
    { missing: [], duplicated: [], inOrder: true },
    `${what}: seqs ${seqs[0]}..${seqs.at(-1)} (${seqs.length})`,
  );
  assert.deepEqual(seqs, expected, what);
}
