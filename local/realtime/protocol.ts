// The Phoenix channel wire format as Supabase Realtime speaks it (reference/realtime.md §4.3):
// vsn 1.0.0 sends JSON objects; vsn 2.0.0 sends JSON arrays `[join_ref, ref, topic, event,
// payload]` plus binary frames for user broadcasts (kind 3 from the client, kind 4 to it).

export type Vsn = "1.0.0" | "2.0.0";
export const supportedVsns: readonly Vsn[] = ["1.0.0", "2.0.0"];

export interface Frame {
  joinRef: string | null;
  ref: string | null;
  topic: string;
  event: string;
  payload: unknown;
}

/** A client broadcast whose user payload stays as the bytes that came in (kind 3). */
export interface UserBroadcastPush {
  joinRef: string | null;
  ref: string | null;
  topic: string;
  userEvent: string;
  /** 1 = JSON text, 0 = raw bytes (an ArrayBuffer on the client). */
  encoding: 0 | 1;
  payload: Uint8Array;
}

export class ProtocolError extends Error {}

/** A user broadcast's payload: JSON text, or raw bytes (binary payloads). */
export type BroadcastPayload = { json: string } | { binary: Uint8Array };

/** Realtime's default tenant limit, `max_payload_size_in_kb` = 3000, for broadcasts and
 * presence tracks alike. */
export const maxPayloadBytes = 3_000_000;

export function exceedsPayloadLimit(payload: BroadcastPayload): boolean {
  const size = "json" in payload ? encoder.encode(payload.json).length : payload.binary.length;
  return size > maxPayloadBytes;
}

const kinds = { userBroadcastPush: 3, userBroadcast: 4 } as const;
export const jsonEncoding = 1;
const encoder = new TextEncoder();
/** Decodes UTF-8, throwing on invalid bytes. */
export const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

// Phoenix echoes refs back as they came; here they are strings, and a ref that is not one (a
// number, or any JSON a client put there) becomes its JSON text. String() would call a
// client-chosen `toString`, which throws when it is not a function.
const nullableString = (value: unknown) =>
  value === null || value === undefined
    ? null
    : typeof value === "string"
    ? value
    : JSON.stringify(value);

/** Decodes one text frame of either version. */
export function decodeText(vsn: Vsn, text: string): Frame {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new ProtocolError("The frame is not JSON.");
  }
  if (vsn === "2.0.0") {
    if (!Array.isArray(parsed) || parsed.length !== 5) {
      throw new ProtocolError("A 2.0.0 frame is [join_ref, ref, topic, event, payload].");
    }
    const [joinRef, ref, topic, event, payload] = parsed;
    return checked({
      joinRef: nullableString(joinRef),
      ref: nullableString(ref),
      topic,
      event,
      payload,
    });
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new ProtocolError("A 1.0.0 frame is an object {topic, event, payload, ref, join_ref}.");
  }
  const { join_ref, ref, topic, event, payload } = parsed as Record<string, unknown>;
  return checked({
    joinRef: nullableString(join_ref),
    ref: nullableString(ref),
    topic,
    event,
    payload,
  });
}

function checked(
  frame: Omit<Frame, "topic" | "event"> & { topic: unknown; event: unknown },
): Frame {
  if (typeof frame.topic !== "string" || typeof frame.event !== "string") {
    throw new ProtocolError("A frame needs a string topic and event.");
  }
  return frame as Frame;
}

/** Encodes a server frame as text. The 1.0.0 serializer leaves join_ref out, as Phoenix's does. */
export function encodeText(vsn: Vsn, frame: Frame): string {
  if (vsn === "2.0.0") {
    return JSON.stringify([frame.joinRef, frame.ref, frame.topic, frame.event, frame.payload]);
  }
  return JSON.stringify({
    topic: frame.topic,
    event: frame.event,
    payload: frame.payload,
    ref: frame.ref,
  });
}

/** Decodes a binary client frame; only kind 3 (a user broadcast push) is defined. */
export function decodeBinary(bytes: Uint8Array): UserBroadcastPush {
  if (bytes.length < 7 || bytes[0] !== kinds.userBroadcastPush) {
    throw new ProtocolError(
      "The only binary frame a client may send is a user broadcast (kind 3).",
    );
  }
  const [, joinRefLength, refLength, topicLength, eventLength, metadataLength, encoding] = bytes;
  if (encoding !== 0 && encoding !== 1) throw new ProtocolError("Unknown payload encoding.");
  let offset = 7;
  const field = (length: number) => {
    if (offset + length > bytes.length) throw new ProtocolError("The frame is truncated.");
    try {
      return strictUtf8.decode(bytes.subarray(offset, offset += length));
    } catch {
      throw new ProtocolError("A header field is not UTF-8.");
    }
  };
  const joinRef = field(joinRefLength);
  const ref = field(refLength);
  const topic = field(topicLength);
  const userEvent = field(eventLength);
  field(metadataLength); // Only `persist` may travel here; broadcasts are never persisted locally.
  return {
    joinRef: joinRef || null,
    ref: ref || null,
    topic,
    userEvent,
    encoding,
    payload: bytes.slice(offset),
  };
}

/** The kind 4 frame a 2.0.0 subscriber receives for a user broadcast; undefined when a header
 * field (topic, event, metadata) is longer than the format's 255 bytes. */
export function encodeUserBroadcast(
  topic: string,
  userEvent: string,
  meta: Record<string, unknown> | undefined,
  encoding: 0 | 1,
  payload: Uint8Array,
): Uint8Array | undefined {
  const header = [topic, userEvent, meta ? JSON.stringify(meta) : ""].map((s) => encoder.encode(s));
  if (header.some((part) => part.length > 255)) return undefined;
  const [topicBytes, eventBytes, metaBytes] = header;
  const frame = new Uint8Array(
    5 + topicBytes.length + eventBytes.length + metaBytes.length + payload.length,
  );
  frame.set([
    kinds.userBroadcast,
    topicBytes.length,
    eventBytes.length,
    metaBytes.length,
    encoding,
  ]);
  let offset = 5;
  for (const part of [topicBytes, eventBytes, metaBytes, payload]) {
    frame.set(part, offset);
    offset += part.length;
  }
  return frame;
}

/** A frame payload, or a field of one, as an object: anything else reads as `{}`, as Realtime
 * reads a field it cannot parse as absent. */
export const objectOr = (value: unknown): Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? value as Record<string, unknown>
    : {};

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
      const [encoding, bytes] = "json" in this.payload
        ? [jsonEncoding, encoder.encode(this.payload.json)] as const
        : [0, this.payload.binary] as const;
      const binary = encodeUserBroadcast(this.joinTopic, this.event, this.meta, encoding, bytes);
      // Header fields too long for a binary frame: the text frame, which 2.0.0 also reads.
      if (binary || !("json" in this.payload)) return binary;
      return `[null,null,${JSON.stringify(this.joinTopic)},"broadcast",${this.#innerJson()}]`;
    }
    // 1.0.0 cannot carry binary payloads; Realtime does not deliver them to such sockets.
    if (!("json" in this.payload)) return undefined;
    return `{"topic":${
      JSON.stringify(this.joinTopic)
    },"event":"broadcast","payload":${this.#innerJson()},"ref":null}`;
  }

  /** `{type, event, payload, meta?}`, with the payload spliced in as the JSON text it arrived
   * as, never parsed again. */
  #innerJson(): string {
    const meta = this.meta ? `,"meta":${JSON.stringify(this.meta)}` : "";
    const json = (this.payload as { json: string }).json;
    return `{"type":"broadcast","event":${JSON.stringify(this.event)},"payload":${json}${meta}}`;
  }
}
