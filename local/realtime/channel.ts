// One WebSocket client of the stand-in and the channels it has joined: the Phoenix channel life
// cycle as Supabase Realtime runs it (reference/realtime.md §2 and §4.4). Frames of one socket
// are handled in order, one at a time, as Realtime's socket and channel processes do.
import type { Claims } from "../../supabase/functions/_shared/auth.ts";
import { type Extension, type Grants, readGrants, writeGrants } from "./authorization.ts";
import type { PresenceDiff } from "./presence.ts";
import {
  type BroadcastPayload,
  decodeBinary,
  decodeText,
  encodeText,
  exceedsPayloadLimit,
  type Frame,
  ProtocolError,
  strictUtf8,
  type UserBroadcastPush,
  type Vsn,
} from "./protocol.ts";
import type { Hub, OutgoingBroadcast } from "./hub.ts";
import { TokenError, verifyToken } from "./tokens.ts";

const maxChannelsPerSocket = 100;
// Phoenix closes a socket that has sent nothing, heartbeats included, for this long.
const idleTimeoutMs = 60_000;
// 9999-12-31T23:59:59.999Z, the last moment Realtime's replay `since` may name.
const maxReplaySinceMs = 253_402_300_799_999;

type Json = Record<string, unknown>;
const objectOr = (value: unknown): Json =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? value as Json : {};
// Realtime accepts "true"/"false" strings where it expects booleans, and lets a field it cannot
// read take its default rather than failing the join.
const flagOr = (value: unknown, fallback: boolean): boolean =>
  typeof value === "boolean"
    ? value
    : value === "true"
    ? true
    : value === "false"
    ? false
    : fallback;
const stringOr = (value: unknown): string | undefined =>
  typeof value === "string" ? value : undefined;

/** The bytes of a JSON-encoded user payload as text, if they are JSON. */
function jsonText(bytes: Uint8Array): { json: string } | undefined {
  try {
    const json = strictUtf8.decode(bytes);
    JSON.parse(json);
    return { json };
  } catch {
    return undefined;
  }
}

/** A join refusal, sent back as `{status: "error", response: {reason}}`. */
class Refusal extends Error {}

export class Channel {
  grants: { read: Grants; write?: Grants } = { read: {} };
  /** What the join asked to replay (private channels only). */
  replay?: { since: number; limit: number };
  /** Ids replayed at join: the same rows arriving live are not sent again. */
  replayedIds = new Set<string>();
  #expiry?: ReturnType<typeof setTimeout>;

  constructor(
    readonly socket: Connection,
    readonly joinTopic: string,
    readonly joinRef: string | null,
    readonly topic: string,
    readonly isPrivate: boolean,
    readonly self: boolean,
    readonly ack: boolean,
    /** Whether the channel receives presence: asked for at join, or set by its first track. */
    public presenceEnabled: boolean,
    readonly presenceKey: string,
    public token: string,
    public claims: Claims,
  ) {}

  get readsAnything(): boolean {
    return this.grants.read.broadcast === true || this.grants.read.presence === true;
  }

  get receivesBroadcasts(): boolean {
    return !this.isPrivate || this.grants.read.broadcast === true;
  }

  get receivesPresence(): boolean {
    return this.presenceEnabled && (!this.isPrivate || this.grants.read.presence === true);
  }

  /** What the read check at join covers: presence only for a channel that receives it. */
  get readExtensions(): Extension[] {
    return this.presenceEnabled ? ["broadcast", "presence"] : ["broadcast"];
  }

  /** Closes the channel when its token expires: Realtime re-checks the token every
   * min(5 minutes, time to `exp`). */
  watchExpiry(): void {
    clearTimeout(this.#expiry);
    const exp = Number(this.claims.exp);
    const msLeft = exp * 1000 - Date.now();
    this.#expiry = setTimeout(() => {
      if (exp * 1000 > Date.now()) return this.watchExpiry();
      this.socket.enqueue(() => {
        // A refresh queued before this ran may have brought a newer token.
        const current = Number(this.claims.exp);
        if (current * 1000 > Date.now()) return;
        const ago = Math.floor(Date.now() / 1000) - current;
        this.socket.shutdownChannel(this, `Token has expired ${ago} seconds ago`);
      });
    }, Math.max(0, Math.min(msLeft, 300_000)));
  }

  stopWatching(): void {
    clearTimeout(this.#expiry);
  }

  /** A channel push (`system`, `presence_state`) carries the join_ref. */
  push(event: string, payload: unknown): void {
    this.socket.send({ joinRef: this.joinRef, ref: null, topic: this.joinTopic, event, payload });
  }

  /** `phx_close` uses the join_ref as both join_ref and ref. */
  pushClose(): void {
    this.socket.send({
      joinRef: this.joinRef,
      ref: this.joinRef,
      topic: this.joinTopic,
      event: "phx_close",
      payload: {},
    });
  }

  /** Fan-out messages go without refs, as Realtime's fastlane sends them. */
  pushPresenceDiff(diff: PresenceDiff): void {
    if (!this.receivesPresence) return;
    this.socket.send({
      joinRef: null,
      ref: null,
      topic: this.joinTopic,
      event: "presence_diff",
      payload: diff,
    });
  }

  deliver(broadcast: OutgoingBroadcast): void {
    if (!this.receivesBroadcasts) return;
    const id = broadcast.meta?.id;
    if (typeof id === "string" && this.replayedIds.has(id)) return;
    const data = broadcast.encoded(this.socket.vsn);
    if (data !== undefined) this.socket.sendRaw(data);
  }
}

export class Connection {
  readonly channels = new Map<string, Channel>();
  #queue: Promise<void> = Promise.resolve();
  #idle?: ReturnType<typeof setTimeout>;
  #closed = false;

  constructor(
    readonly hub: Hub,
    readonly ws: WebSocket,
    readonly vsn: Vsn,
    readonly apiKey: string,
    /** The `x-*` headers of the upgrade request, which RLS sees as `request.headers`. */
    readonly headers: Record<string, string>,
  ) {
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

  #reply(frame: Frame | UserBroadcastPush, status: "ok" | "error", response: unknown): void {
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
      if (frame.event === "heartbeat") this.#reply(frame, "ok", {});
      return;
    }
    if ("event" in frame && frame.event === "phx_join") return this.#join(frame);
    const channel = this.#joined(frame);
    if (!channel) return this.#reply(frame, "error", { reason: "unmatched topic" });
    if ("userEvent" in frame) return this.#broadcast(channel, frame);
    switch (frame.event) {
      case "phx_leave":
        this.#reply(frame, "ok", {});
        this.#remove(channel);
        channel.pushClose();
        return;
      case "access_token":
        return this.#refreshToken(channel, frame);
      case "broadcast":
        return this.#broadcast(channel, frame);
      case "presence":
        return this.#presence(channel, frame);
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
      this.#reply(frame, "ok", { postgres_changes: [] });
      channel.watchExpiry();
      if (channel.receivesPresence) channel.push("presence_state", this.hub.presenceState(channel));
      if (channel.replay) await this.#replay(channel, channel.replay);
    } catch (error) {
      if (error instanceof TokenError) this.#reply(frame, "error", { reason: error.reason });
      else if (error instanceof Refusal) this.#reply(frame, "error", { reason: error.message });
      else throw error;
    }
  }

  async #authorizeJoin(frame: Frame): Promise<Channel> {
    const topic = frame.topic.startsWith("realtime:")
      ? frame.topic.slice("realtime:".length)
      : undefined;
    if (topic === undefined) throw new Refusal("unmatched topic");
    if (topic === "") throw new Refusal("TopicNameRequired: You must provide a topic name");
    const payload = objectOr(frame.payload);
    const config = objectOr(payload.config);
    const broadcast = objectOr(config.broadcast);
    const presence = objectOr(config.presence);
    if (Array.isArray(config.postgres_changes) && config.postgres_changes.length > 0) {
      throw new Refusal(
        "PostgresChangesNotSupported: the local Realtime stand-in serves broadcast and presence only",
      );
    }
    const replay = broadcast.replay === undefined ? undefined : objectOr(broadcast.replay);
    if (replay && !flagOr(config.private, false)) {
      throw new Refusal("UnableToReplayMessages: Replay is only available on private channels");
    }
    // Realtime takes `since` as whole milliseconds that make a date (years up to 9999); anything
    // else was read as a timestamp Postgres cannot hold, and the replay failed after the join
    // had been answered.
    const replaySince = replay?.since ?? 0;
    if (!Number.isInteger(replaySince) || Math.abs(replaySince as number) > maxReplaySinceMs) {
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
    const offered = stringOr(payload.access_token) ?? stringOr(payload.user_token);
    const token = offered && !offered.startsWith("sb_") ? offered : this.apiKey;
    const channel = new Channel(
      this,
      frame.topic,
      frame.joinRef,
      topic,
      flagOr(config.private, false),
      flagOr(broadcast.self, false),
      flagOr(broadcast.ack, false),
      flagOr(presence.enabled, false),
      stringOr(presence.key) || crypto.randomUUID(),
      token,
      await verifyToken(token),
    );
    const unauthorized = () =>
      new Refusal(
        `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`,
      );
    if (channel.isPrivate) {
      // No row of realtime.messages can name such a topic (Postgres text holds no NUL), so no
      // policy can grant it; the probe would only fail.
      if (topic.includes("\u0000")) throw unauthorized();
      channel.grants.read = await this.#grants(channel, readGrants, channel.readExtensions);
      // Replay reads broadcasts: it needs that right, not just presence.
      if (!channel.readsAnything || (replay && !channel.grants.read.broadcast)) {
        throw unauthorized();
      }
    }
    if (replay) {
      const limit = typeof replay.limit === "number" ? replay.limit : 10;
      channel.replay = {
        since: replaySince as number,
        // Realtime clamps the limit to 1..25.
        limit: Math.min(25, Math.max(1, Math.trunc(limit))),
      };
    }
    return channel;
  }

  /** Sends the channel's recent private broadcasts, oldest first, marked `replayed`. */
  async #replay(channel: Channel, { since, limit }: { since: number; limit: number }) {
    for (const row of await this.hub.recentBroadcasts(channel.topic, since, limit)) {
      channel.replayedIds.add(row.id);
      channel.push("broadcast", {
        type: "broadcast",
        event: row.event,
        payload: row.payload,
        meta: { replayed: true, id: row.id },
      });
    }
  }

  async #grants(
    channel: Channel,
    check: typeof readGrants,
    extensions: Extension[],
  ): Promise<Grants> {
    try {
      return await check(
        this.hub.sql,
        { topic: channel.topic, claims: channel.claims, headers: this.headers },
        extensions,
      );
    } catch (error) {
      // A policy that raises counts as a refusal, as Realtime's RlsPolicyError does.
      console.error("realtime stand-in: authorization failed:", error);
      return {};
    }
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
    channel.grants = { read: await this.#grants(channel, readGrants, channel.readExtensions) };
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

  /** Write rights of a private channel, checked once and then cached, as Realtime does. */
  async #mayWrite(channel: Channel, extension: Extension): Promise<boolean> {
    if (!channel.isPrivate) return true;
    const write = channel.grants.write ??= {};
    // A channel joined without presence may still track: its presence right is checked then.
    if (write[extension] === undefined) {
      const extensions: Extension[] = channel.presenceEnabled
        ? ["broadcast", "presence"]
        : [extension];
      Object.assign(write, await this.#grants(channel, writeGrants, extensions));
    }
    return write[extension] === true;
  }

  async #broadcast(channel: Channel, frame: Frame | UserBroadcastPush): Promise<void> {
    const reply = (status: "ok" | "error", response: unknown) =>
      this.#reply(frame, status, response);
    let event: unknown;
    let payload: BroadcastPayload | undefined;
    if ("userEvent" in frame) {
      event = frame.userEvent;
      payload = frame.encoding === 1 ? jsonText(frame.payload) : { binary: frame.payload };
      // Text that is not JSON would break every 1.0.0 subscriber's parser: dropped.
      if (!payload) return;
    } else {
      const body = objectOr(frame.payload);
      event = body.event;
      payload = { json: JSON.stringify(body.payload ?? {}) };
    }
    // Realtime ignores a broadcast without an event name (it is only logged).
    if (typeof event !== "string") return;
    if (exceedsPayloadLimit(payload)) {
      if (channel.ack) reply("error", "payload_size_exceeded");
      return;
    }
    // Without write rights the message is dropped with no reply, even when an ack was asked for.
    if (!(await this.#mayWrite(channel, "broadcast"))) return;
    this.hub.broadcast(
      channel.topic,
      channel.isPrivate,
      { event, payload },
      channel.self ? undefined : channel,
    );
    if (channel.ack) reply("ok", {});
  }

  async #presence(channel: Channel, frame: Frame): Promise<void> {
    const message = objectOr(frame.payload);
    const event = typeof message.event === "string" ? message.event.toLowerCase() : undefined;
    if (event === "untrack") {
      this.hub.untrack(channel);
      return this.#reply(frame, "ok", {});
    }
    if (event !== "track") return this.#reply(frame, "error", {});
    const payload = message.payload ?? {};
    if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
      return this.#reply(frame, "error", { reason: "Presence track payload must be a map" });
    }
    if (exceedsPayloadLimit({ json: JSON.stringify(payload) })) {
      return this.shutdownChannel(channel, "Track message size exceeded");
    }
    // A channel joined without presence may still track; as Realtime does, its presence read
    // is checked then, and from then on it receives presence.
    const lateStart = !channel.presenceEnabled;
    if (lateStart && channel.isPrivate && channel.grants.read.presence === undefined) {
      Object.assign(channel.grants.read, await this.#grants(channel, readGrants, ["presence"]));
    }
    if (!(await this.#mayWrite(channel, "presence"))) return this.#reply(frame, "error", {});
    this.hub.track(channel, payload as Json);
    this.#reply(frame, "ok", {});
    if (lateStart) {
      channel.presenceEnabled = true;
      if (channel.receivesPresence) channel.push("presence_state", this.hub.presenceState(channel));
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
    this.hub.disconnected(this);
  }
}
