// The shapes of API.md as the client hands them to apps, and the room's own types.

/** The room's connection state (CLIENT.md). */
export type RoomState = "joining" | "live" | "catching_up" | "offline" | "left";

/** A chat message that has gone out (API.md Message). */
export interface Message {
  id: number;
  seq: number;
  room_id: string;
  user_id: string;
  client_id: string;
  body: string;
  created_at: string;
}

/** The host's player state (API.md PlaybackState). */
export interface PlaybackState {
  room_id: string;
  song_id: string | null;
  position_ms: number;
  is_playing: boolean;
  seq: number;
  updated_at: string;
  /** The server's clock, epoch ms, when this copy was written. */
  server_time: number;
}

/** A user present in the room (API.md Member): users, not tabs. */
export interface Member {
  user_id: string;
  info: Record<string, unknown>;
  is_host: boolean;
  connections: number;
  last_active: string;
}

/** A presence snapshot as the backend sends it (API.md Presence). */
export type PresenceSnapshot =
  | { type: "detailed"; version: number; total: number; members: Member[] }
  | {
    type: "summary";
    version: number;
    total: number;
    sample: Member[];
    hosts: Member[];
    recently_active: number;
  };

/**
 * Who is here, as `room.presence.members` holds it: the snapshot plus the versioned events
 * after it. `count` is users, not tabs. `list` is everyone when `type` is "detailed"; above 100
 * users it is the summary's sample, and `hosts` / `recentlyActive` come from the summary.
 */
export interface PresenceMembers {
  type: "detailed" | "summary";
  version: number;
  count: number;
  me: Member | null;
  list: Member[];
  hosts: Member[];
  recentlyActive: number | null;
}

/** A persisted channel message (history items, room-context's queue). */
export interface ChannelMessage<T = Record<string, unknown>> {
  id: number | string;
  event: string;
  data: T;
  timestamp: number;
}

export interface RoomInfo {
  id: string;
  name: string;
  host_id: string;
  visibility: "public" | "private";
}

export interface Song {
  id: string;
  title: string;
  artist: string;
  duration_ms: number;
}

export interface PlayedSong {
  id: number;
  played_at: string;
  song: Song;
}

/** GET room-context (API.md §4). */
export interface RoomContext {
  room: RoomInfo;
  chat: Message[];
  history: PlayedSong[];
  playback: PlaybackState | null;
  presence: PresenceSnapshot;
  queue: ChannelMessage | null;
  server_time: number;
}

/**
 * What `room.playback.attach` keeps in sync. `setRate` enables rate nudges; `load` is called
 * when the room's song changes (before the seek), for players that load songs themselves.
 */
export interface Player {
  positionMs(): number;
  seek(ms: number): void;
  play(): void;
  pause(): void;
  setRate?(rate: number): void;
  load?(songId: string | null): void | Promise<void>;
}
