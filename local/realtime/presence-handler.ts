// A client's presence push on a joined channel, as Realtime's presence_handler.ex takes it:
// `track` with a map payload, or `untrack`. Private channels need the write right; a channel
// joined without presence may still track, and receives presence from then on.
import { readGrants } from "./authorization.ts";
import type { Channel } from "./channel.ts";
import { exceedsPayloadLimit, type Frame, objectOr } from "./protocol.ts";

export async function handlePresence(channel: Channel, frame: Frame): Promise<void> {
  const { hub } = channel.socket;
  const reply = (status: "ok" | "error", response: unknown) =>
    channel.socket.reply(frame, status, response);
  const message = objectOr(frame.payload);
  const event = typeof message.event === "string" ? message.event.toLowerCase() : undefined;
  if (event === "untrack") {
    hub.untrack(channel);
    return reply("ok", {});
  }
  if (event !== "track") return reply("error", {});
  const payload = message.payload ?? {};
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) {
    return reply("error", { reason: "Presence track payload must be a map" });
  }
  if (exceedsPayloadLimit({ json: JSON.stringify(payload) })) {
    return channel.socket.shutdownChannel(channel, "Track message size exceeded");
  }
  // A channel joined without presence may still track; as Realtime does, its presence read
  // is checked then, and from then on it receives presence.
  const lateStart = !channel.presenceEnabled;
  if (lateStart && channel.isPrivate && channel.grants.read.presence === undefined) {
    Object.assign(channel.grants.read, await channel.grantsFor(readGrants, ["presence"]));
  }
  if (!(await channel.mayWrite("presence"))) return reply("error", {});
  hub.track(channel, payload as Record<string, unknown>);
  reply("ok", {});
  if (lateStart) {
    channel.presenceEnabled = true;
    if (channel.receivesPresence) channel.push("presence_state", hub.presenceState(channel));
  }
}
