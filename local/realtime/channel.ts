// One channel joined on a socket of the stand-in: what the join configured, the rights its token
// has, its token's expiry, and the frames it sends. The Phoenix channel life cycle around it
// (join, leave, token refresh) is connection.ts's; broadcasts and presence are
// broadcast-handler.ts's and presence-handler.ts's.
import type postgres from "npm:postgres@3.4.9";
import type { Claims } from "../../supabase/functions/_shared/auth.ts";
import { type Extension, type Grants, readGrants, writeGrants } from "./authorization.ts";
import type { Hub } from "./hub.ts";
import type { JoinConfig } from "./join-payload.ts";
import type { PresenceDiff } from "./presence.ts";
import type { Frame, OutgoingBroadcast, UserBroadcastPush, Vsn } from "./protocol.ts";

/** What a channel needs of the socket it was joined on (connection.ts). */
export interface ChannelSocket {
  readonly vsn: Vsn;
  readonly hub: Hub;
  /** The stand-in's database connection, as Realtime's (for the RLS probes and replay). */
  readonly sql: postgres.Sql;
  /** The `x-*` headers of the upgrade request, which RLS sees as `request.headers`. */
  readonly headers: Record<string, string>;
  send(frame: Frame): void;
  sendRaw(data: string | Uint8Array): void;
  /** Answers `frame` with a `phx_reply`. */
  reply(frame: Frame | UserBroadcastPush, status: "ok" | "error", response: unknown): void;
  /** Runs `work` after everything queued before it on this socket. */
  enqueue(work: () => void | Promise<void>): void;
  /** Ends a channel from the server side: a `system` error, then `phx_close`. */
  shutdownChannel(channel: Channel, message: string): void;
}

export interface ChannelOptions {
  /** The topic as the client joined it, `realtime:<topic>`. */
  joinTopic: string;
  joinRef: string | null;
  /** The sub-topic: the join topic without `realtime:`. */
  topic: string;
  config: Pick<JoinConfig, "isPrivate" | "self" | "ack" | "presenceEnabled" | "presenceKey">;
  /** What the join asked to replay (private channels only). */
  replay?: { since: number; limit: number };
  token: string;
  claims: Claims;
}

export class Channel {
  readonly joinTopic: string;
  readonly joinRef: string | null;
  readonly topic: string;
  readonly isPrivate: boolean;
  readonly self: boolean;
  readonly ack: boolean;
  /** Whether the channel receives presence: asked for at join, or set by its first track. */
  presenceEnabled: boolean;
  readonly presenceKey: string;
  readonly replay?: { since: number; limit: number };
  token: string;
  claims: Claims;
  grants: { read: Grants; write?: Grants } = { read: {} };
  /** Ids replayed at join: the same rows arriving live are not sent again. */
  replayedIds = new Set<string>();
  #expiry?: ReturnType<typeof setTimeout>;

  constructor(readonly socket: ChannelSocket, options: ChannelOptions) {
    this.joinTopic = options.joinTopic;
    this.joinRef = options.joinRef;
    this.topic = options.topic;
    this.isPrivate = options.config.isPrivate;
    this.self = options.config.self;
    this.ack = options.config.ack;
    this.presenceEnabled = options.config.presenceEnabled;
    this.presenceKey = options.config.presenceKey;
    this.replay = options.replay;
    this.token = options.token;
    this.claims = options.claims;
  }

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

  /** Runs the read or write check for `extensions` as this channel's caller. */
  async grantsFor(check: typeof readGrants, extensions: Extension[]): Promise<Grants> {
    try {
      return await check(
        this.socket.sql,
        { topic: this.topic, claims: this.claims, headers: this.socket.headers },
        extensions,
      );
    } catch (error) {
      // A policy that raises counts as a refusal, as Realtime's RlsPolicyError does.
      console.error("realtime stand-in: authorization failed:", error);
      return {};
    }
  }

  /** Write rights of a private channel, checked once and then cached, as Realtime does. */
  async mayWrite(extension: Extension): Promise<boolean> {
    if (!this.isPrivate) return true;
    const write = this.grants.write ??= {};
    // A channel joined without presence may still track: its presence right is checked then.
    if (write[extension] === undefined) {
      const extensions: Extension[] = this.presenceEnabled
        ? ["broadcast", "presence"]
        : [extension];
      Object.assign(write, await this.grantsFor(writeGrants, extensions));
    }
    return write[extension] === true;
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
