// The local Realtime stand-in: what Supabase Realtime does for this project, on one process, for
// development and CI only (production uses Supabase Realtime). The gateway hands it
// /realtime/v1/*: the WebSocket endpoint and the REST broadcast endpoints (rest.ts). It delivers
// the rows realtime.send commits (read from the WAL), relays client broadcasts and keeps
// presence, and authorizes private channels with Realtime's own RLS probes.
import postgres from "npm:postgres@3.4.9";
import { headersForRls } from "./authorization.ts";
import { Channel, Connection } from "./channel.ts";
import { PresenceTopic } from "./presence.ts";
import {
  type BroadcastPayload,
  encodeUserBroadcast,
  jsonEncoding,
  supportedVsns,
  type Vsn,
} from "./protocol.ts";
import { startJanitor } from "./janitor.ts";
import { type BroadcastRow, type Replication, streamBroadcasts } from "./replication.ts";
import { isRestBroadcast, realtimeError, restBroadcast } from "./rest.ts";
import { TokenError, verifyToken } from "./tokens.ts";

/** One broadcast on its way to a topic's subscribers, encoded at most once per protocol. */
export class OutgoingBroadcast {
  #encoded = new Map<Vsn, string | Uint8Array | undefined>();

  constructor(
    readonly joinTopic: string,
    readonly event: string,
    readonly payload: BroadcastPayload,
    readonly meta?: Record<string, unknown>,
  ) {}

  /** The frame for a socket of `vsn`; undefined when that protocol cannot carry it. */
  encoded(vsn: Vsn): string | Uint8Array | undefined {
    if (!this.#encoded.has(vsn)) this.#encoded.set(vsn, this.#encode(vsn));
    return this.#encoded.get(vsn);
  }

  #encode(vsn: Vsn): string | Uint8Array | undefined {
    if (vsn === "2.0.0") {
      const [encoding, bytes] = "json" in this.payload
        ? [jsonEncoding, new TextEncoder().encode(this.payload.json)] as const
        : [0, this.payload.binary] as const;
      const binary = encodeUserBroadcast(this.joinTopic, this.event, this.meta, encoding, bytes);
      // Header fields too long for a binary frame: the text frame, which 2.0.0 also reads.
      if (binary || !("json" in this.payload)) return binary;
      return `[null,null,${JSON.stringify(this.joinTopic)},"broadcast",${this.#innerJson()}]`;
    }
    // 1.0.0 cannot carry binary payloads; Realtime does not deliver them to such sockets.
    if (!("json" in this.payload)) return undefined;
    return `{"topic":${
      JSON.stringify(this.joinTopic)
    },"event":"broadcast","payload":${this.#innerJson()},"ref":null}`;
  }

  /** `{type, event, payload, meta?}`, with the payload spliced in as the JSON text it arrived
   * as, never parsed again. */
  #innerJson(): string {
    const meta = this.meta ? `,"meta":${JSON.stringify(this.meta)}` : "";
    const json = (this.payload as { json: string }).json;
    return `{"type":"broadcast","event":${JSON.stringify(this.event)},"payload":${json}${meta}}`;
  }
}

/** Subscribers and presence are kept per topic, private and public apart, as Realtime keys
 * them (`<tenant>:<topic>` and `<tenant>-private:<topic>`). */
const topicKey = (topic: string, isPrivate: boolean) =>
  `${isPrivate ? "private" : "public"}:${topic}`;
const keyOf = (channel: Channel) => topicKey(channel.topic, channel.isPrivate);

export class Hub {
  #subscribers = new Map<string, Set<Channel>>();
  #presence = new Map<string, PresenceTopic>();
  #sockets = new Set<Connection>();
  #replication?: Replication;
  #janitor?: { stop(): void };

  private constructor(readonly sql: postgres.Sql) {}

  /** Connects to the project database as Realtime does (as the superuser supabase_admin:
   * `adminUrl`), keeps the partitions of realtime.messages and starts streaming what
   * realtime.send commits. */
  static async start(adminUrl: string): Promise<Hub> {
    const hub = new Hub(postgres(adminUrl, { max: 4, prepare: false, onnotice: () => {} }));
    hub.#janitor = await startJanitor(hub.sql);
    hub.#replication = await streamBroadcasts(adminUrl, (row) => hub.#deliverRow(row));
    return hub;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.close(1001, "server shutting down");
    this.#janitor?.stop();
    this.#replication?.close();
    await this.sql.end({ timeout: 1 });
  }

  /** Serves /realtime/v1/*. */
  handle(req: Request): Promise<Response> {
    const { pathname } = new URL(req.url);
    if (pathname === "/realtime/v1/websocket") return this.#connect(req);
    if (isRestBroadcast(pathname)) return restBroadcast(this, req);
    return Promise.resolve(realtimeError(404, `Nothing is served at ${pathname}.`));
  }

  async #connect(req: Request): Promise<Response> {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return realtimeError(400, "This endpoint takes WebSocket connections.");
    }
    const params = new URL(req.url).searchParams;
    const vsn = (params.get("vsn") ?? "1.0.0") as Vsn;
    // Phoenix refuses a serializer version it does not know before anything else.
    if (!supportedVsns.includes(vsn)) return new Response(null, { status: 403 });
    const apiKey = req.headers.get("x-api-key") ?? params.get("apikey");
    if (!apiKey) return Response.json({ error: "API key is missing" }, { status: 401 });
    try {
      await verifyToken(apiKey);
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      // At connect Realtime does not say how long ago.
      const message = error.expired ? "Token has expired" : error.message;
      return Response.json({ error: message }, { status: 401 });
    }
    // On a socket RLS sees the `x-*` headers of the upgrade; read them before it closes the request.
    const headers = headersForRls(req, (name) => name.startsWith("x-"));
    let upgraded: ReturnType<typeof Deno.upgradeWebSocket>;
    try {
      upgraded = Deno.upgradeWebSocket(req);
    } catch (error) {
      // An `Upgrade: websocket` request without the rest of the handshake.
      return realtimeError(
        400,
        error instanceof Error ? error.message : "Bad WebSocket handshake.",
      );
    }
    this.#sockets.add(new Connection(this, upgraded.socket, vsn, apiKey, headers));
    return upgraded.response;
  }

  disconnected(socket: Connection): void {
    this.#sockets.delete(socket);
  }

  subscribe(channel: Channel): void {
    const key = keyOf(channel);
    let subscribers = this.#subscribers.get(key);
    if (!subscribers) this.#subscribers.set(key, subscribers = new Set());
    subscribers.add(channel);
  }

  unsubscribe(channel: Channel): void {
    this.untrack(channel);
    const key = keyOf(channel);
    const subscribers = this.#subscribers.get(key);
    subscribers?.delete(channel);
    if (subscribers?.size === 0) this.#subscribers.delete(key);
  }

  /** Sends to every subscriber of (topic, private) allowed to read, `except` the sender. */
  broadcast(
    topic: string,
    isPrivate: boolean,
    message: { event: string; payload: BroadcastPayload; meta?: Record<string, unknown> },
    except?: Channel,
  ): void {
    const subscribers = this.#subscribers.get(topicKey(topic, isPrivate));
    if (!subscribers) return;
    const outgoing = new OutgoingBroadcast(
      `realtime:${topic}`,
      message.event,
      message.payload,
      message.meta,
    );
    for (const channel of subscribers) if (channel !== except) channel.deliver(outgoing);
  }

  #deliverRow(row: BroadcastRow): void {
    this.broadcast(row.topic, row.private, {
      event: row.event,
      payload: row.payload,
      meta: { id: row.id },
    });
  }

  /** The newest `limit` private broadcasts on `topic` since `sinceMs`, oldest first, as
   * Realtime replays them from realtime.messages. */
  async recentBroadcasts(topic: string, sinceMs: number, limit: number) {
    const rows = await this.sql<{ id: string; event: string; payload: unknown }[]>`
      select id, event, payload from realtime.messages
      where topic = ${topic} and private is true and extension = 'broadcast'
        and event is not null and payload is not null
        and inserted_at >= to_timestamp(${sinceMs / 1000}) at time zone 'utc'
      order by inserted_at desc
      limit ${limit}`;
    return rows.reverse();
  }

  presenceState(channel: Channel) {
    return this.#presence.get(keyOf(channel))?.state() ?? {};
  }

  track(channel: Channel, payload: Record<string, unknown>): void {
    const key = keyOf(channel);
    let presence = this.#presence.get(key);
    if (!presence) this.#presence.set(key, presence = new PresenceTopic());
    const diff = presence.track(channel, channel.presenceKey, payload);
    if (diff) this.#publishDiff(channel, diff);
  }

  untrack(channel: Channel): void {
    const key = keyOf(channel);
    const presence = this.#presence.get(key);
    const diff = presence?.untrack(channel);
    if (diff) this.#publishDiff(channel, diff);
    if (presence?.isEmpty) this.#presence.delete(key);
  }

  #publishDiff(channel: Channel, diff: Parameters<Channel["pushPresenceDiff"]>[0]): void {
    const subscribers = this.#subscribers.get(keyOf(channel)) ?? [];
    for (const subscriber of subscribers) subscriber.pushPresenceDiff(diff);
  }
}
