// WhatsSound rooms on @supabase/supabase-js: late join without a gap, continuity across
// reconnects and sleeping tabs, an outbox that loses nothing, the room's clock and a player kept
// in sync, presence that counts users. The contract is CLIENT.md.
//
//   const rooms = createRoomsClient({ supabase });
//   const room = await rooms.join(roomId, { presence: { info: { name: "Lucía" } } });
//   room.chat.on("messages", (added, { source }) => render(added));
//   room.chat.send("hola");
//   const detach = room.playback.attach(mediaElementPlayer(audio, { srcOf }));

export { createRoomsClient, RoomsClient, type RoomsClientOptions } from "./client.ts";
export { type JoinOptions, Room, type RoomEvents } from "./room.ts";
export { type ChatEvents, type MessagesSource, RoomChat } from "./chat.ts";
export {
  type Accepted,
  type OutboxStorage,
  type PendingMessage,
  type PendingStatus,
  type StoredMessage,
  webStorageOutbox,
} from "./outbox.ts";
export { type PlaybackEvents, type PlaybackSource, RoomPlayback } from "./playback.ts";
export { type ClockSample, ServerClock } from "./clock.ts";
export {
  type Correction,
  decideDrift,
  defaultDriftPolicy,
  type DriftDecision,
  type DriftPolicy,
  PlayerSync,
} from "./drift.ts";
export { type PresenceEvents, RoomPresence } from "./presence.ts";
export { type QueueEvents, RoomQueue } from "./queue.ts";
export { type HostEvents, PlaybackHost, type Published } from "./host.ts";
export {
  type MediaElementLike,
  mediaElementPlayer,
  type MediaElementPlayerOptions,
} from "./media.ts";
export { RoomsError } from "./http.ts";
export type { PageEventSource, WakeReason } from "./lifecycle.ts";
export type { Timers } from "./timers.ts";
export type {
  ChannelMessage,
  Member,
  Message,
  PlaybackState,
  PlayedSong,
  Player,
  PresenceMembers,
  PresenceSnapshot,
  RoomContext,
  RoomInfo,
  RoomState,
  Song,
} from "./types.ts";
