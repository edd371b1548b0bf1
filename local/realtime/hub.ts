// The registry of the Realtime stand-in: who subscribes to each topic and who is present there.
// Broadcasts fan out from here to the subscribers allowed to read them, and presence changes to
// the channels that receive presence. It knows subscribers only by the Subscriber interface, so
// nothing here depends on the sockets and channels above it.
import { type PresenceDiff, PresenceTopic } from "./presence.ts";
import { type BroadcastPayload, OutgoingBroadcast } from "./protocol.ts";

/** A joined channel as the registry sees it (channel.ts implements it). */
export interface Subscriber {
  readonly topic: string;
  readonly isPrivate: boolean;
  readonly presenceKey: string;
  /** Sends `broadcast` if the channel may read broadcasts. */
  deliver(broadcast: OutgoingBroadcast): void;
  /** Sends `diff` if the channel receives presence. */
  pushPresenceDiff(diff: PresenceDiff): void;
}

/** A broadcast to every subscriber of (topic, private) allowed to read, `except` the sender. */
export interface Broadcast {
  topic: string;
  isPrivate: boolean;
  event: string;
  payload: BroadcastPayload;
  meta?: Record<string, unknown>;
  except?: Subscriber;
}

/** Subscribers and presence are kept per topic, private and public apart, as Realtime keys
 * them (`<tenant>:<topic>` and `<tenant>-private:<topic>`). */
const topicKey = (topic: string, isPrivate: boolean) =>
  `${isPrivate ? "private" : "public"}:${topic}`;
const keyOf = (subscriber: Subscriber) => topicKey(subscriber.topic, subscriber.isPrivate);

export class Hub {
  #subscribers = new Map<string, Set<Subscriber>>();
  #presence = new Map<string, PresenceTopic>();

  subscribe(channel: Subscriber): void {
    const key = keyOf(channel);
    let subscribers = this.#subscribers.get(key);
    if (!subscribers) this.#subscribers.set(key, subscribers = new Set());
    subscribers.add(channel);
  }

  unsubscribe(channel: Subscriber): void {
    this.untrack(channel);
    const key = keyOf(channel);
    const subscribers = this.#subscribers.get(key);
    subscribers?.delete(channel);
    if (subscribers?.size === 0) this.#subscribers.delete(key);
  }

  broadcast({ topic, isPrivate, event, payload, meta, except }: Broadcast): void {
    const subscribers = this.#subscribers.get(topicKey(topic, isPrivate));
    if (!subscribers) return;
    const outgoing = new OutgoingBroadcast(`realtime:${topic}`, event, payload, meta);
    for (const channel of subscribers) if (channel !== except) channel.deliver(outgoing);
  }

  presenceState(channel: Subscriber) {
    return this.#presence.get(keyOf(channel))?.state() ?? {};
  }

  track(channel: Subscriber, payload: Record<string, unknown>): void {
    const key = keyOf(channel);
    let presence = this.#presence.get(key);
    if (!presence) this.#presence.set(key, presence = new PresenceTopic());
    const diff = presence.track(channel, channel.presenceKey, payload);
    if (diff) this.#publishDiff(channel, diff);
  }

  untrack(channel: Subscriber): void {
    const key = keyOf(channel);
    const presence = this.#presence.get(key);
    const diff = presence?.untrack(channel);
    if (diff) this.#publishDiff(channel, diff);
    if (presence?.isEmpty) this.#presence.delete(key);
  }

  #publishDiff(channel: Subscriber, diff: PresenceDiff): void {
    const subscribers = this.#subscribers.get(keyOf(channel)) ?? [];
    for (const subscriber of subscribers) subscriber.pushPresenceDiff(diff);
  }
}
