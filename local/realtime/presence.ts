// Channel presence as Phoenix.Presence keeps it for Realtime: per channel topic, each presence
// key holds one meta per tracking channel, tagged with a `phx_ref`; changes go out as
// `presence_diff` {joins, leaves}, the whole map as `presence_state`.

export type Meta = Record<string, unknown> & { phx_ref: string; phx_ref_prev?: string };
export type PresenceMap = Record<string, { metas: Meta[] }>;
export interface PresenceDiff {
  joins: PresenceMap;
  leaves: PresenceMap;
}

/** Whoever tracks: one entry per channel (a channel tracks at most one key at a time). */
export type Tracker = object;

interface Entry {
  key: string;
  meta: Meta;
  payload: string;
}

// Keys are the clients' own (`toString`, `__proto__`, ...): maps without a prototype.
const presenceMap = (): PresenceMap => Object.create(null);

function newRef(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  return "F" + btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
}

export class PresenceTopic {
  #entries = new Map<Tracker, Entry>();

  get isEmpty(): boolean {
    return this.#entries.size === 0;
  }

  state(): PresenceMap {
    const state = presenceMap();
    for (const { key, meta } of this.#entries.values()) {
      (state[key] ??= { metas: [] }).metas.push(meta);
    }
    return state;
  }

  /** Tracks or updates `tracker` under `key`; undefined when nothing changed. */
  track(tracker: Tracker, key: string, payload: Record<string, unknown>): PresenceDiff | undefined {
    const previous = this.#entries.get(tracker);
    const serialized = JSON.stringify(payload);
    if (previous && previous.key === key && previous.payload === serialized) return;
    const meta: Meta = { ...payload, phx_ref: newRef() };
    const diff: PresenceDiff = { joins: presenceMap(), leaves: presenceMap() };
    if (previous) {
      if (previous.key === key) meta.phx_ref_prev = previous.meta.phx_ref;
      diff.leaves[previous.key] = { metas: [previous.meta] };
    }
    diff.joins[key] = { metas: [meta] };
    this.#entries.set(tracker, { key, meta, payload: serialized });
    return diff;
  }

  /** Removes what `tracker` tracks; undefined when it tracked nothing. */
  untrack(tracker: Tracker): PresenceDiff | undefined {
    const previous = this.#entries.get(tracker);
    if (!previous) return;
    this.#entries.delete(tracker);
    const leaves = presenceMap();
    leaves[previous.key] = { metas: [previous.meta] };
    return { joins: presenceMap(), leaves };
  }
}
