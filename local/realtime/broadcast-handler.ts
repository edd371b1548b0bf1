// A client's broadcast on a joined channel, as Realtime's broadcast_handler.ex takes it: the
// `broadcast` event of a text frame, or a binary user broadcast (kind 3) whose payload stays as
// the bytes that came in. Private channels need the write right; `self` and `ack` are the join's.
import type { Channel } from "./channel.ts";
import {
  type BroadcastPayload,
  exceedsPayloadLimit,
  type Frame,
  objectOr,
  strictUtf8,
  type UserBroadcastPush,
} from "./protocol.ts";

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

export async function handleBroadcast(
  channel: Channel,
  frame: Frame | UserBroadcastPush,
): Promise<void> {
  const reply = (status: "ok" | "error", response: unknown) =>
    channel.socket.reply(frame, status, response);
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
  if (!(await channel.mayWrite("broadcast"))) return;
  channel.socket.hub.broadcast({
    topic: channel.topic,
    isPrivate: channel.isPrivate,
    event,
    payload,
    except: channel.self ? undefined : channel,
  });
  if (channel.ack) reply("ok", {});
}
