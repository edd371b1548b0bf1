// Who is in the room (CLIENT.md guarantee 8). Members are users, not tabs: the backend counts
// connections per user and broadcasts `presence:member_added` / `presence:member_removed` on
// `room:{id}` only for a user's first and last connection, each with the room's presence
// version. `members` is the newest snapshot plus the events after it: an event is applied only
// when its version is the snapshot's + 1, + 2, …; a version skipped means an event was missed,
// and the snapshot is read again. This tab is one connection (a random connection_id per
// join), kept alive by a heartbeat every 20 s and joined again after a 404 (it expired), a
// reconnect or the page coming back; it leaves on `leave()` and on page hide.

import type { ServerClock } from "./clock.ts";
import { Emitter } from "./events.ts";
import { type FunctionsHttp, RoomsError } from "./http.ts";
import { backoffMs } from "./retry.ts";
import type { TimerHandle, Timers } from "./timers.ts";
import type { Member, PresenceMembers, PresenceSnapshot } from "./types.ts";

export interface PresenceEvents extends Record<string, unknown[]> {
  member_added: [Member, PresenceMembers];
  member_removed: [{ user_id: string; total: number }, PresenceMembers];
  /** A snapshot was applied. */
  sync: [PresenceMembers];
  error: [RoomsError];
}

interface AddedEvent {
  user_id: string;
  info?: Record<string, unknown>;
  is_host?: boolean;
  total: number;
  version: number;
}
interface RemovedEvent {
  user_id: string;
  total: number;
  version: number;
}
type PresenceEvent =
  | { kind: "member_added"; payload: AddedEvent }
  | { kind: "member_removed"; payload: RemovedEvent };

export interface RoomPresenceOptions {
  roomId: string;
  http: FunctionsHttp;
  clock: ServerClock;
  timers: Timers;
  /** Whether this tab joins presence (false: it only watches). */
  enabled: boolean;
  info?: Record<string, unknown>;
  heartbeatMs?: number;
  backoff?: readonly number[];
}

interface JoinAnswer {
  member_added: boolean;
  me: Member;
  presence: PresenceSnapshot;
}

/** One connection per join: 32 random hex characters. */
function newConnectionId(): string {
  return crypto.randomUUID().replace(/-/g, "");
}

export class RoomPresence extends Emitter<PresenceEvents> {
  /** One tab or device: made per join, never stored (a duplicated tab must not share it). */
  readonly connectionId = newConnectionId();
  readonly #options: RoomPresenceOptions;
  #members: PresenceMembers | null = null;
  #me: Member | null = null;
  #early: PresenceEvent[] = [];
  #joined = false;
  #hidden = false;
  #stopped = false;
  #heartbeatTimer: TimerHandle | undefined;
  #heartbeats = 0;
  #joining: Promise<void> | null = null;
  #refreshing: Promise<void> | null = null;
  #failures = 0;

  constructor(options: RoomPresenceOptions) {
    super();
    this.#options = options;
  }

  /** Who is here: `{type, version, count, me, list, …}`; null before the first snapshot. */
  get members(): PresenceMembers | null {
    return this.#members;
  }

  /** This tab's member entry once joined. */
  get me(): Member | null {
    return this.#me;
  }

  /** A `presence:*` broadcast from `room:{id}`. */
  receive(event: string, payload: unknown): void {
    const kind = event === "presence:member_added"
      ? "member_added"
      : event === "presence:member_removed"
      ? "member_removed"
      : null;
    const version = (payload as { version?: unknown })?.version;
    if (!kind || typeof version !== "number") return;
    const presenceEvent = { kind, payload } as PresenceEvent;
    if (!this.#members) {
      this.#early.push(presenceEvent);
      return;
    }
    this.#apply(presenceEvent);
  }

  /** A snapshot (room-context, join, GET presence): applied when not older than what is held. */
  loadSnapshot(snapshot: PresenceSnapshot | null | undefined): void {
    if (!snapshot || typeof snapshot.version !== "number") return;
    if (this.#members && snapshot.version < this.#members.version) return;
    this.#members = snapshot.type === "summary"
      ? {
        type: "summary",
        version: snapshot.version,
        count: snapshot.total,
        me: this.#me,
        list: [...snapshot.sample],
        hosts: [...snapshot.hosts],
        recentlyActive: snapshot.recently_active,
      }
      : {
        type: "detailed",
        version: snapshot.version,
        count: snapshot.total,
        me: this.#me,
        list: [...snapshot.members],
        hosts: snapshot.members.filter((m) => m.is_host),
        recentlyActive: null,
      };
    this.emit("sync", this.#members);
    const early = this.#early;
    this.#early = [];
    for (const event of early.sort((a, b) => a.payload.version - b.payload.version)) {
      this.#apply(event);
    }
  }

  /** Joins presence (if enabled) and starts the heartbeat. */
  async start(): Promise<void> {
    if (!this.#options.enabled) return;
    await this.join();
  }

  /**
   * Joins (again): after a 404 heartbeat, a reconnect, the page coming back. The answer's
   * snapshot is applied. Transient failures are retried in the background.
   */
  join(): Promise<void> {
    if (!this.#options.enabled || this.#stopped || this.#hidden) return Promise.resolve();
    this.#joining ??= this.#join().finally(() => {
      this.#joining = null;
    });
    return this.#joining;
  }

  /** Reads the snapshot again (a missed event). */
  refresh(): Promise<void> {
    this.#refreshing ??= (async () => {
      try {
        const { data } = await this.#options.http.call<PresenceSnapshot>("presence", {
          query: { room_id: this.#options.roomId },
        });
        this.loadSnapshot(data);
      } catch (error) {
        if (error instanceof RoomsError && !error.retryable) this.emit("error", error);
      } finally {
        this.#refreshing = null;
      }
    })();
    return this.#refreshing;
  }

  /** A heartbeat now (page woke, network back): a 404 means it expired, so it joins again. */
  async heartbeat(): Promise<void> {
    if (!this.#joined || this.#stopped || this.#hidden) return;
    this.#options.timers.clearTimeout(this.#heartbeatTimer);
    try {
      const answer = await this.#options.http.call<{ expires_at: string; server_time: number }>(
        "presence",
        {
          body: {
            action: "heartbeat",
            room_id: this.#options.roomId,
            connection_id: this.connectionId,
          },
        },
      );
      this.#options.clock.addSample({
        sentAt: answer.sentAt,
        serverTime: answer.data.server_time,
        receivedAt: answer.receivedAt,
      });
      this.#heartbeats++;
    } catch (error) {
      if (error instanceof RoomsError && error.status === 404) {
        this.#joined = false;
        await this.join();
        return;
      }
      if (error instanceof RoomsError && !error.retryable) this.emit("error", error);
    }
    this.#scheduleHeartbeat();
  }

  /** The page is hidden (pagehide): leave with a request that outlives the page. */
  hide(): void {
    if (!this.#options.enabled || this.#hidden) return;
    this.#hidden = true;
    this.#options.timers.clearTimeout(this.#heartbeatTimer);
    if (this.#joined) this.#sendLeave(true).catch(() => {});
    this.#joined = false;
  }

  /** The page is shown again (pageshow): join again. */
  show(): Promise<void> {
    if (!this.#hidden) return Promise.resolve();
    this.#hidden = false;
    return this.join();
  }

  /** Leaves presence for good. */
  async leave(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#options.timers.clearTimeout(this.#heartbeatTimer);
    await this.#joining?.catch(() => {});
    if (this.#joined && !this.#hidden) await this.#sendLeave(true).catch(() => {});
    this.#joined = false;
  }

  async #join(): Promise<void> {
    const { http, roomId, info = {} } = this.#options;
    this.#options.timers.clearTimeout(this.#heartbeatTimer);
    try {
      const { data } = await http.call<JoinAnswer>("presence", {
        body: {
          action: "join",
          room_id: roomId,
          connection_id: this.connectionId,
          user_info: info,
        },
      });
      if (this.#stopped) return;
      this.#joined = true;
      this.#failures = 0;
      this.#me = data.me;
      this.loadSnapshot(data.presence);
      if (this.#members) this.#members = { ...this.#members, me: this.#me };
      // The first heartbeats come quickly: they are the clock's first samples.
      this.#heartbeats = 0;
      this.#scheduleHeartbeat();
    } catch (error) {
      if (this.#stopped) return;
      if (error instanceof RoomsError && !error.retryable) {
        this.emit("error", error);
        throw error;
      }
      // Try again later; the heartbeat timer does it.
      const delay = (error instanceof RoomsError && error.retryAfterMs) ||
        backoffMs(this.#failures++, this.#options.backoff);
      this.#heartbeatTimer = this.#options.timers.setTimeout(
        () => this.join().catch(() => {}),
        delay,
      );
    }
  }

  #scheduleHeartbeat(): void {
    if (this.#stopped || this.#hidden) return;
    const every = this.#options.heartbeatMs ?? 20_000;
    const delay = this.#heartbeats < 2 ? Math.min(every, 1000) : every;
    this.#options.timers.clearTimeout(this.#heartbeatTimer);
    this.#heartbeatTimer = this.#options.timers.setTimeout(() => {
      this.heartbeat().catch(() => {});
    }, delay);
  }

  #sendLeave(keepalive: boolean): Promise<unknown> {
    return this.#options.http.call("presence", {
      body: { action: "leave", room_id: this.#options.roomId, connection_id: this.connectionId },
      keepalive,
    });
  }

  #apply(event: PresenceEvent): void {
    const members = this.#members!;
    const { version } = event.payload;
    if (version <= members.version) return;
    if (version > members.version + 1) {
      // An event went missing: the snapshot says what is true now.
      this.refresh().catch(() => {});
      return;
    }
    const total = event.payload.total;
    if (event.kind === "member_added") {
      const { user_id, info = {}, is_host = false } = event.payload;
      const member: Member = {
        user_id,
        info,
        is_host,
        connections: 1,
        last_active: new Date(this.#options.clock.now()).toISOString(),
      };
      const others = members.list.filter((m) => m.user_id !== user_id);
      const list = members.type === "detailed"
        ? [...others, member]
        : [member, ...others].slice(0, 10);
      const hosts = is_host
        ? [...members.hosts.filter((m) => m.user_id !== user_id), member]
        : members.hosts;
      this.#members = { ...members, version, count: total, list, hosts };
      this.emit("member_added", member, this.#members);
    } else {
      const { user_id } = event.payload;
      this.#members = {
        ...members,
        version,
        count: total,
        list: members.list.filter((m) => m.user_id !== user_id),
        hosts: members.hosts.filter((m) => m.user_id !== user_id),
      };
      this.emit("member_removed", { user_id, total }, this.#members);
    }
  }
}
