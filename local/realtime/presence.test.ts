// Unit tests of channel presence as Phoenix.Presence keeps it for Realtime (presence.ts): metas
// with a phx_ref per tracking channel, diffs of joins and leaves, keys named by the clients.
import assert from "node:assert/strict";
import { PresenceTopic } from "./presence.ts";

// Presence maps have no prototype (keys are the clients' own); compare them as the wire sees them.
const wire = (value: unknown) => JSON.parse(JSON.stringify(value));

Deno.test("PresenceTopic: a track joins with a phx_ref; the same payload again changes nothing", () => {
  const presence = new PresenceTopic();
  const tab = {};
  assert.equal(presence.isEmpty, true);
  const diff = presence.track(tab, "user-1", { name: "Ana" });
  assert.ok(diff);
  assert.deepEqual(wire(diff.leaves), {});
  const [meta] = diff.joins["user-1"].metas;
  assert.equal(meta.name, "Ana");
  assert.match(meta.phx_ref, /^F[A-Za-z0-9_-]{12}$/);
  assert.equal("phx_ref_prev" in meta, false);
  assert.deepEqual(wire(presence.state()), { "user-1": { metas: [meta] } });
  assert.equal(presence.isEmpty, false);
  assert.equal(presence.track(tab, "user-1", { name: "Ana" }), undefined);
});

Deno.test("PresenceTopic: an update leaves the old meta and joins a new one pointing back to it", () => {
  const presence = new PresenceTopic();
  const tab = {};
  const first = presence.track(tab, "user-1", { status: "idle" })!.joins["user-1"].metas[0];
  const update = presence.track(tab, "user-1", { status: "playing" })!;
  assert.deepEqual(wire(update.leaves), { "user-1": { metas: [first] } });
  const [second] = update.joins["user-1"].metas;
  assert.equal(second.status, "playing");
  assert.equal(second.phx_ref_prev, first.phx_ref);
  assert.notEqual(second.phx_ref, first.phx_ref);
  assert.deepEqual(wire(presence.state()), { "user-1": { metas: [second] } });
});

Deno.test("PresenceTopic: one key, two trackers (two tabs) hold two metas; untrack removes one", () => {
  const presence = new PresenceTopic();
  const [tab1, tab2, other] = [{}, {}, {}];
  const a = presence.track(tab1, "user-1", { tab: 1 })!.joins["user-1"].metas[0];
  const b = presence.track(tab2, "user-1", { tab: 2 })!.joins["user-1"].metas[0];
  const c = presence.track(other, "user-2", { tab: 1 })!.joins["user-2"].metas[0];
  assert.deepEqual(wire(presence.state()), {
    "user-1": { metas: [a, b] },
    "user-2": { metas: [c] },
  });
  assert.notEqual(a.phx_ref, b.phx_ref);

  assert.deepEqual(wire(presence.untrack(tab1)), {
    joins: {},
    leaves: { "user-1": { metas: [a] } },
  });
  assert.deepEqual(wire(presence.state()), { "user-1": { metas: [b] }, "user-2": { metas: [c] } });
  assert.equal(presence.untrack(tab1), undefined, "nothing left to untrack");
  assert.equal(presence.untrack({}), undefined, "never tracked");
  presence.untrack(tab2);
  presence.untrack(other);
  assert.deepEqual(wire(presence.state()), {});
  assert.equal(presence.isEmpty, true);
});

Deno.test("PresenceTopic: tracking under another key leaves the old key", () => {
  const presence = new PresenceTopic();
  const tab = {};
  const old = presence.track(tab, "key-a", { n: 1 })!.joins["key-a"].metas[0];
  const moved = presence.track(tab, "key-b", { n: 1 })!;
  assert.deepEqual(wire(moved.leaves), { "key-a": { metas: [old] } });
  assert.equal("phx_ref_prev" in moved.joins["key-b"].metas[0], false);
  assert.deepEqual(Object.keys(presence.state()), ["key-b"]);
});

Deno.test("PresenceTopic: keys named like Object.prototype members are plain keys", () => {
  const presence = new PresenceTopic();
  for (const key of ["toString", "__proto__", "constructor", "hasOwnProperty"]) {
    presence.track({}, key, { key });
  }
  assert.deepEqual(
    Object.keys(wire(presence.state())).sort(),
    ["__proto__", "constructor", "hasOwnProperty", "toString"],
  );
});
