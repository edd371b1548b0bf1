// One WebSocket client of the stand-in and the channels it has joined: the Phoenix channel life
// cycle as Supabase Realtime runs it (reference/realtime.md §2 and §4.4). Frames of one socket
// are handled in order, one at a time, as Realtime's socket and channel processes do; each goes
// to the heartbeat, the join, leave and token refresh here, or the broadcast and presence
// handlers.
import type postgres from "npm:postgres@3.4.9";
import { readGrants } from "./authorization.ts";
import { handleBroadcast } from "./broadcast-handler.ts";
import { Channel, type ChannelSocket } from "./channel.ts";
import type { Hub } from "./hub.ts";
import { parseJoinPayload } from "./join-payload.ts";
import { handlePresence } from "./presence-handler.ts";
import {
  decodeBinary,
  decodeText,
  encodeText,
  type Frame,
  objectOr,
  ProtocolError,
  type UserBroadcastPush,
  type Vsn,
} from "./protocol.ts";
import { replayBroadcasts } from "./replay.ts";
import { TokenError, verifyToken } from "./tokens.ts";

const maxChannelsPerSocket = 100;
// Phoenix closes a socket that has sent nothing, heartbeats included, for this long.
const idleTimeoutMs = 60_000;

/** A join refusal, sent back as `{status: "error", response: {reason}}`. */
class Refusal extends Error {}

export interface ConnectionOptions {
  hub: Hub;
  sql: postgres.Sql;
  ws: WebSocket;
  vsn: Vsn;
  /** The token the socket connected with. */
  apiKey: string;
  /** The `x-*` headers of the upgrade request, which RLS sees as `request.headers`. */
  headers: Record<string, string>;
  /** Called once when the socket has closed and its channels are gone. */
  onClosed: (connection: Connection) => void;
}

export class Connection implements ChannelSocket {
  readonly channels = new Map<string, Channel>();
  readonly hub: Hub;
  readonly sql: postgres.Sql;
  readonly ws: WebSocket;
  readonly vsn: Vsn;
  readonly apiKey: string;
  readonly headers: Record<string, string>;
  readonly #onClosed: (connection: Connection) => void;
  #queue: Promise<void> = Promise.resolve();
  #idle?: ReturnType<typeof setTimeout>;
  #closed = false;

  constructor({ hub, sql, ws, vsn, apiKey, headers, onClosed }: ConnectionOptions) {
    this.hub = hub;
    this.sql = sql;
    this.ws = ws;
    this.vsn = vsn;
    this.apiKey = apiKey;
    this.headers = headers;
    this.#onClosed = onClosed;
    ws.binaryType = "arraybuffer";
    ws.onmessage = (event) => {
      this.#resetIdle();
      this.enqueue(() => this.#receive(event.data));
    };
    ws.onclose = () => this.enqueue(() => this.#closeAll());
    ws.onerror = () => {};
    this.#resetIdle();
  }

  /** Runs `work` after everything queued before it on this socket. */
  enqueue(work: () => void | Promise<void>): void {
    this.#queue = this.#queue.then(work).catch((error) => {
      console.error("realtime stand-in:", error);
    });
  }

  send(frame: Frame): void {
    this.sendRaw(encodeText(this.vsn, frame));
  }

  sendRaw(data: string | Uint8Array): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }

  close(code = 1000, reason = ""): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(code, reason);
    }
    this.enqueue(() => this.#closeAll());
  }

  #resetIdle(): void {
    clearTimeout(this.#idle);
    this.#idle = setTimeout(() => this.close(1000, "heartbeat timeout"), idleTimeoutMs);
  }

  reply(frame: Frame | UserBroadcastPush, status: "ok" | "error", response: unknown): void {
    this.send({
      joinRef: frame.joinRef,
      ref: frame.ref,
      topic: frame.topic,
      event: "phx_reply",
      payload: { status, response },
    });
  }

  #receive(data: string | ArrayBuffer): void | Promise<void> {
    if (this.#closed) return;
    let frame: Frame | UserBroadcastPush;
    try {
      if (typeof data === "string") frame = decodeText(this.vsn, data);
      else if (this.vsn === "2.0.0") frame = decodeBinary(new Uint8Array(data));
      else throw new ProtocolError("A 1.0.0 socket sends text frames only.");
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // Phoenix drops a socket that cannot be decoded.
      this.close(1003, error.message);
      return;
    }
    if ("event" in frame && frame.topic === "phoenix") {
      if (frame.event === "heartbeat") this.reply(frame, "ok", {});
      return;
    }
    if ("event" in frame && frame.event === "phx_join") return this.#join(frame);
    const channel = this.#joined(frame);
    if (!channel) return this.reply(frame, "error", { reason: "unmatched topic" });
    if ("userEvent" in frame) return handleBroadcast(channel, frame);
    switch (frame.event) {
      case "phx_leave":
        this.reply(frame, "ok", {});
        this.#remove(channel);
        channel.pushClose();
        return;
      case "access_token":
        return this.#refreshToken(channel, frame);
      case "broadcast":
        return handleBroadcast(channel, frame);
      case "presence":
        return handlePresence(channel, frame);
      default:
        // Realtime only logs other events; the client's push times out.
    }
  }

  /** The channel a frame is for: joined on its topic, by the same join when it names one. */
  #joined(frame: Frame | UserBroadcastPush): Channel | undefined {
    const channel = this.channels.get(frame.topic);
    return channel && (frame.joinRef === null || frame.joinRef === channel.joinRef)
      ? channel
      : undefined;
  }

  async #join(frame: Frame): Promise<void> {
    try {
      const channel = await this.#authorizeJoin(frame);
      this.channels.set(channel.joinTopic, channel);
      this.hub.subscribe(channel);
      this.reply(frame, "ok", { postgres_changes: [] });
      channel.watchExpiry();
      if (channel.receivesPresence) channel.push("presence_state", this.hub.presenceState(channel));
      if (channel.replay) await replayBroadcasts(channel, channel.replay);
    } catch (error) {
      if (error instanceof TokenError) this.reply(frame, "error", { reason: error.reason });
      else if (error instanceof Refusal) this.reply(frame, "error", { reason: error.message });
      else throw error;
    }
  }

  async #authorizeJoin(frame: Frame): Promise<Channel> {
    const topic = frame.topic.startsWith("realtime:")
      ? frame.topic.slice("realtime:".length)
      : undefined;
    if (topic === undefined) throw new Refusal("unmatched topic");
    if (topic === "") throw new Refusal("TopicNameRequired: You must provide a topic name");
    const config = parseJoinPayload(frame.payload);
    if (config.postgresChanges.length > 0) {
      throw new Refusal(
        "PostgresChangesNotSupported: the local Realtime stand-in serves broadcast and presence only",
      );
    }
    const { replay } = config;
    if (replay && !config.isPrivate) {
      throw new Refusal("UnableToReplayMessages: Replay is only available on private channels");
    }
    if (replay === "invalid") {
      throw new Refusal("UnableToReplayMessages: Replay params are not valid");
    }
    const previous = this.channels.get(frame.topic);
    if (previous) {
      // Phoenix replaces a channel joined again on the same socket.
      this.#remove(previous);
      previous.pushClose();
    } else if (this.channels.size >= maxChannelsPerSocket) {
      throw new Refusal("ChannelRateLimitReached: Too many channels");
    }
    // The join's own token, else the socket's API key (new `sb_` keys are not JWTs).
    const offered = config.token;
    const token = offered && !offered.startsWith("sb_") ? offered : this.apiKey;
    const channel = new Channel(this, {
      joinTopic: frame.topic,
      joinRef: frame.joinRef,
      topic,
      config,
      replay,
      token,
      claims: await verifyToken(token),
    });
    const unauthorized = () =>
      new Refusal(
        `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`,
      );
    if (channel.isPrivate) {
      // No row of realtime.messages can name such a topic (Postgres text holds no NUL), so no
      // policy can grant it; the probe would only fail.
      if (topic.includes("\u0000")) throw unauthorized();
      channel.grants.read = await channel.grantsFor(readGrants, channel.readExtensions);
      // Replay reads broadcasts: it needs that right, not just presence.
      if (!channel.readsAnything || (replay && !channel.grants.read.broadcast)) {
        throw unauthorized();
      }
    }
    return channel;
  }

  async #refreshToken(channel: Channel, frame: Frame): Promise<void> {
    const token = objectOr(frame.payload).access_token;
    if (typeof token !== "string" || token === channel.token || token.startsWith("sb_")) return;
    try {
      channel.claims = await verifyToken(token);
    } catch (error) {
      if (!(error instanceof TokenError)) throw error;
      return this.shutdownChannel(channel, error.message);
    }
    channel.token = token;
    channel.watchExpiry();
    if (!channel.isPrivate) return;
    const before = channel.grants.read;
    // New rights: read now, write again at the next broadcast or track.
    channel.grants = { read: await channel.grantsFor(readGrants, channel.readExtensions) };
    if (!channel.readsAnything) {
      this.shutdownChannel(
        channel,
        `You do not have permissions to read from this Channel topic: ${channel.topic}`,
      );
    } else if (
      (before.broadcast && !channel.grants.read.broadcast) ||
      (before.presence && !channel.grants.read.presence)
    ) {
      this.shutdownChannel(
        channel,
        `You no longer have permission to read from this Channel topic: ${channel.topic}`,
      );
    }
  }

  /** Ends a channel from the server side: a `system` error, then `phx_close`. */
  shutdownChannel(channel: Channel, message: string): void {
    if (this.channels.get(channel.joinTopic) !== channel) return;
    channel.push("system", {
      extension: "system",
      status: "error",
      message,
      channel: channel.topic,
    });
    this.#remove(channel);
    channel.pushClose();
  }

  #remove(channel: Channel): void {
    channel.stopWatching();
    this.channels.delete(channel.joinTopic);
    this.hub.unsubscribe(channel);
  }

  #closeAll(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idle);
    for (const channel of [...this.channels.values()]) this.#remove(channel);
    this.#onClosed(this);
  }
}
