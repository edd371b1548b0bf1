// The local Realtime stand-in: what Supabase Realtime does for this project, on one process, for
// development and CI only (production uses Supabase Realtime). The gateway hands it
// /realtime/v1/*: the WebSocket endpoint and the REST broadcast endpoints (rest.ts). It delivers the rows
// realtime.send commits (read from the WAL), relays client broadcasts and keeps presence, and
// authorizes private channels with Realtime's own RLS probes.
import postgres from "npm:postgres@3.4.9";
import { Channel, Connection } from "./channel.ts";
import { PresenceTopic } from "./presence.ts";
import { encodeUserBroadcast, jsonEncoding, supportedVsns, type Vsn } from "./protocol.ts";
import { type BroadcastRow, type Replication, streamBroadcasts } from "./replication.ts";
import { isRestBroadcast, realtimeError, restBroadcast } from "./rest.ts";
import { TokenError, verifyToken } from "./tokens.ts";

export type BroadcastPayload = { json: string } | { binary: Uint8Array };

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
      return "json" in this.payload
        ? encodeUserBroadcast(
          this.joinTopic,
          this.event,
          this.meta,
          jsonEncoding,
          new TextEncoder().encode(this.payload.json),
        )
        : encodeUserBroadcast(this.joinTopic, this.event, this.meta, 0, this.payload.binary);
    }
    // 1.0.0 cannot carry binary payloads; Realtime does not deliver them to such sockets.
    if (!("json" in this.payload)) return undefined;
    // The payload is spliced in as the JSON text it arrived as, never parsed again.
    const meta = this.meta ? `,"meta":${JSON.stringify(this.meta)}` : "";
    return `{"topic":${
      JSON.stringify(this.joinTopic)
    },"event":"broadcast","payload":{"type":"broadcast","event":${
      JSON.stringify(this.event)
    },"payload":${this.payload.json}${meta}},"ref":null}`;
  }
}

/** The headers RLS sees as `request.headers`: on a socket, the `x-*` ones of the upgrade
 * (with `x-forwarded-proto: https` unless given, as the gateway adds for functions). */
function xHeaders(req: Request): Record<string, string> {
  return {
    "x-forwarded-proto": "https",
    ...Object.fromEntries([...req.headers].filter(([name]) => name.startsWith("x-"))),
  };
}

export class Hub {
  /** Realtime's default tenant limit, `max_payload_size_in_kb` = 3000. */
  readonly maxPayloadBytes = 3_000_000;
  #subscribers = new Map<string, Set<Channel>>();
  #presence = new Map<string, PresenceTopic>();
  #sockets = new Set<Connection>();
  #replication?: Replication;

  private constructor(readonly sql: postgres.Sql) {}

  /** Connects to the project database and starts streaming what realtime.send commits. */
  static async start(dbUrl: string): Promise<Hub> {
    const hub = new Hub(postgres(dbUrl, { max: 4, prepare: false, onnotice: () => {} }));
    hub.#replication = await streamBroadcasts(dbUrl, (row) => hub.#deliverRow(row));
    return hub;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.close(1001, "server shutting down");
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
      const message = error.message.startsWith("Token has expired")
        ? "Token has expired"
        : error.message;
      return Response.json({ error: message }, { status: 401 });
    }
    // Read before the upgrade, which closes the request.
    const headers = xHeaders(req);
    const { socket, response } = Deno.upgradeWebSocket(req);
    this.#sockets.add(new Connection(this, socket, vsn, apiKey, headers));
    return response;
  }

  disconnected(socket: Connection): void {
    this.#sockets.delete(socket);
  }

  subscribe(channel: Channel): void {
    const key = `${channel.isPrivate}:${channel.topic}`;
    let subscribers = this.#subscribers.get(key);
    if (!subscribers) this.#subscribers.set(key, subscribers = new Set());
    subscribers.add(channel);
  }

  unsubscribe(channel: Channel): void {
    this.untrack(channel);
    const key = `${channel.isPrivate}:${channel.topic}`;
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
    const subscribers = this.#subscribers.get(`${isPrivate}:${topic}`);
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

  #presenceOf(channel: Channel): PresenceTopic {
    const key = `${channel.isPrivate}:${channel.topic}`;
    let presence = this.#presence.get(key);
    if (!presence) this.#presence.set(key, presence = new PresenceTopic());
    return presence;
  }

  presenceState(channel: Channel) {
    return this.#presenceOf(channel).state();
  }

  track(channel: Channel, payload: Record<string, unknown>): void {
    const diff = this.#presenceOf(channel).track(channel, channel.presenceKey, payload);
    if (diff) this.#publishDiff(channel, diff);
  }

  untrack(channel: Channel): void {
    const key = `${channel.isPrivate}:${channel.topic}`;
    const presence = this.#presence.get(key);
    const diff = presence?.untrack(channel);
    if (diff) this.#publishDiff(channel, diff);
    if (presence?.isEmpty) this.#presence.delete(key);
  }

  #publishDiff(channel: Channel, diff: Parameters<Channel["pushPresenceDiff"]>[0]): void {
    const subscribers = this.#subscribers.get(`${channel.isPrivate}:${channel.topic}`) ?? [];
    for (const subscriber of subscribers) subscriber.pushPresenceDiff(diff);
  }
}
