// Helpers for the tests of the Realtime stand-in through the test stack's gateway: channels of
// the real supabase-js client and what they receive, rows committed with realtime.send, bare
// sockets speaking either wire protocol, and WebSocket upgrades sent by hand.
import assert from "node:assert/strict";
import type { RealtimeChannel, SupabaseClient } from "npm:@supabase/supabase-js@2.119.1";
// realtime-js's own wire decoder (the one supabase-js runs), for reading raw 2.0.0 frames.
import serializer from "npm:@supabase/realtime-js@2.119.1/dist/main/lib/serializer.js";
import {
  anonKey,
  apiUrl,
  closeRealtime,
  createCast,
  createRoom,
  fixtureDb,
  poll,
  realtimeClientFor,
  subscribe,
  withDb,
} from "../test-helpers.ts";

/** A JWT secret that is not the project's: tokens signed with it are forged. */
export const otherSecret = "another-secret-that-is-at-least-32-characters-long";
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** createCast's users, and `count` rooms hosted by `host` with its members. */
export async function castWithRooms(count: number) {
  const setup = fixtureDb();
  try {
    const cast = await createCast(setup);
    const rooms: string[] = [];
    for (let i = 0; i < count; i++) rooms.push(await createRoom(setup, cast.host, cast.members));
    return { ...cast, rooms };
  } finally {
    await setup.end();
  }
}

/** A broadcast as supabase-js hands it to `.on("broadcast", ...)`. */
export interface Received {
  type: string;
  event: string;
  // deno-lint-ignore no-explicit-any -- tests read whatever payload came
  payload: any;
  meta?: { id: string };
}

/** Collects what `channel` receives of broadcast `event` ("*": every event). */
export function received(channel: RealtimeChannel, event = "*"): Received[] {
  const got: Received[] = [];
  channel.on("broadcast", { event }, (message) => got.push(message as Received));
  return got;
}

/** Waits until `done(list)` holds and fails with the list when it does not within `timeoutMs`. */
export async function until<T>(
  what: string,
  list: T[],
  done: (list: T[]) => boolean,
  timeoutMs = 3000,
) {
  await poll(() => Promise.resolve(list), done, timeoutMs);
  assert.ok(done(list), `${what}; got ${JSON.stringify(list)}`);
}

/** Waits until `check()` holds and fails with `what` when it does not within `timeoutMs`. */
export async function waitFor(what: string, check: () => boolean, timeoutMs = 3000) {
  await poll(() => Promise.resolve(check()), (done) => done, timeoutMs);
  assert.ok(check(), what);
}

export const events = (list: Received[]) => list.map((m) => m.event);

/** A channel of `client`, subscribed; fails unless the server accepted the join. */
export async function joined(
  client: SupabaseClient,
  topic: string,
  config: Record<string, unknown> = { private: true },
  bind: (channel: RealtimeChannel) => void = () => {},
): Promise<RealtimeChannel> {
  const channel = client.channel(topic, { config });
  bind(channel);
  const { status, error } = await subscribe(channel);
  assert.equal(status, "SUBSCRIBED", `join ${topic}: ${error?.message}`);
  return channel;
}

/** Joins `topic` as `token` and returns the refusal the client reports. */
export async function refusal(token: string, topic: string, isPrivate = true): Promise<string> {
  const client = realtimeClientFor(token);
  try {
    const { status, error } = await subscribe(
      client.channel(topic, { config: { private: isPrivate } }),
    );
    assert.equal(status, "CHANNEL_ERROR", `join ${topic} should be refused`);
    return error!.message;
  } finally {
    await closeRealtime(client);
  }
}

/** realtime.send as the backend calls it, committed at once. */
export function send(topic: string, event: string, payload: unknown, isPrivate = true) {
  return withDb((sql) =>
    sql`select realtime.send(${sql.json(payload as never)}, ${event}, ${topic}, ${isPrivate})`
  );
}

/** Sends a WebSocket upgrade request by hand and reads the HTTP answer (status, JSON body). */
export async function upgrade(query: string): Promise<{ status: number; body: unknown }> {
  const { hostname, port } = new URL(apiUrl);
  const connection = await Deno.connect({ hostname, port: Number(port) });
  try {
    const request = [
      `GET /realtime/v1/websocket${query} HTTP/1.1`,
      `Host: ${hostname}:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      "Sec-WebSocket-Version: 13",
      `Sec-WebSocket-Key: ${btoa("whatssound-test!")}`,
      "",
      "",
    ].join("\r\n");
    await connection.write(new TextEncoder().encode(request));
    const decoder = new TextDecoder();
    const buffer = new Uint8Array(4096);
    let text = "";
    for (;;) {
      const n = await connection.read(buffer);
      if (n === null) break;
      text += decoder.decode(buffer.subarray(0, n), { stream: true });
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) continue;
      const head = text.slice(0, end);
      if (/^HTTP\/1\.1 101/.test(head)) break;
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (new TextEncoder().encode(text.slice(end + 4)).length >= length) break;
    }
    const [head, body] = [text.slice(0, text.indexOf("\r\n\r\n")), text.split("\r\n\r\n")[1]];
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
    return { status, body: status === 101 || !body ? undefined : JSON.parse(body) };
  } finally {
    connection.close();
  }
}

const realtimeJs = new serializer.default();

/** A client broadcast as realtime-js puts it on a 2.0.0 socket: a binary kind 3 frame. */
export function broadcastPush(
  joinRef: string,
  ref: string,
  topic: string,
  event: string,
  payload: unknown,
) {
  let frame: Uint8Array | undefined;
  realtimeJs.encode(
    {
      join_ref: joinRef,
      ref,
      topic,
      event: "broadcast",
      payload: { type: "broadcast", event, payload },
    },
    (encoded: string | ArrayBuffer) => frame = new Uint8Array(encoded as ArrayBuffer),
  );
  return frame!;
}

/** A bare WebSocket speaking `vsn`: text frames as parsed JSON, binary ones as realtime-js
 * decodes them. */
export async function rawSocket(vsn: "1.0.0" | "2.0.0") {
  const url = `${apiUrl.replace(/^http/, "ws")}/realtime/v1/websocket?apikey=${anonKey}&vsn=${vsn}`;
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const frames: unknown[] = [];
  ws.onmessage = ({ data }) =>
    typeof data === "string" ? frames.push(JSON.parse(data)) : realtimeJs.decode(
      data,
      (frame: unknown) => frames.push(frame),
    );
  const closed = new Promise<CloseEvent>((resolve) => ws.onclose = resolve);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  return {
    frames,
    closed,
    send: (frame: unknown) =>
      ws.send(
        typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame),
      ),
    close: async () => {
      ws.close();
      await closed;
    },
  };
}
