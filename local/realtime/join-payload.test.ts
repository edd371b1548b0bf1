// Unit tests of the phx_join payload schema (join-payload.ts): what realtime-js sends reads as
// it means, and a field the stand-in cannot read takes its default instead of failing the join.
import assert from "node:assert/strict";
import { parseJoinPayload } from "./join-payload.ts";

const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

Deno.test("join payload: realtime-js's subscribe() payload reads as it means", () => {
  const config = parseJoinPayload({
    config: {
      broadcast: { ack: true, self: false },
      presence: { key: "user-1", enabled: true },
      postgres_changes: [],
      private: true,
    },
    access_token: "jwt",
    version: "realtime-js/2.119.1",
  });
  assert.deepEqual(config, {
    isPrivate: true,
    self: false,
    ack: true,
    replay: undefined,
    presenceEnabled: true,
    presenceKey: "user-1",
    postgresChanges: [],
    token: "jwt",
  });
});

Deno.test("join payload: nothing readable gives the defaults and a presence key of the server's", () => {
  for (const payload of [undefined, null, 7, "config", [], {}, { config: [] }, { config: null }]) {
    const { presenceKey, ...rest } = parseJoinPayload(payload);
    assert.deepEqual(rest, {
      isPrivate: false,
      self: false,
      ack: false,
      replay: undefined,
      presenceEnabled: false,
      postgresChanges: [],
      token: undefined,
    }, JSON.stringify(payload));
    assert.match(presenceKey, uuidPattern);
  }
  const keys = [{ key: "" }, { key: 5 }, {}].map((presence) =>
    parseJoinPayload({ config: { presence } }).presenceKey
  );
  assert.equal(new Set(keys).size, 3, "each join its own key");
});

Deno.test("join payload: flags take true/false and their strings; anything else is false", () => {
  const flags = (value: unknown) => {
    const config = parseJoinPayload({
      config: {
        private: value,
        broadcast: { self: value, ack: value },
        presence: { enabled: value },
      },
    });
    return [config.isPrivate, config.self, config.ack, config.presenceEnabled];
  };
  assert.deepEqual(flags(true), [true, true, true, true]);
  assert.deepEqual(flags("true"), [true, true, true, true]);
  for (const value of [false, "false", 1, "yes", "TRUE", null, {}]) {
    assert.deepEqual(flags(value), [false, false, false, false], JSON.stringify(value));
  }
});

Deno.test("join payload: access_token wins over user_token; a token that is not a string is absent", () => {
  assert.equal(parseJoinPayload({ access_token: "a", user_token: "u" }).token, "a");
  assert.equal(parseJoinPayload({ user_token: "u" }).token, "u");
  assert.equal(parseJoinPayload({ access_token: 42, user_token: "u" }).token, "u");
  // An empty access_token is still the join's answer: the socket's key is used, not user_token.
  assert.equal(parseJoinPayload({ access_token: "", user_token: "u" }).token, "");
  assert.equal(parseJoinPayload({ access_token: null }).token, undefined);
});

Deno.test("join payload: postgres_changes is kept as asked for, and is none when not a list", () => {
  const asked = [{ event: "*", schema: "public", table: "rooms" }];
  assert.deepEqual(
    parseJoinPayload({ config: { postgres_changes: asked } }).postgresChanges,
    asked,
  );
  assert.deepEqual(parseJoinPayload({ config: { postgres_changes: {} } }).postgresChanges, []);
});

Deno.test("join payload: replay asked for by any value; since a whole ms date, else invalid; limit clamped to 1..25", () => {
  const replay = (value: unknown) =>
    parseJoinPayload({ config: { broadcast: { replay: value } } }).replay;
  assert.equal(parseJoinPayload({ config: { broadcast: {} } }).replay, undefined);
  for (const value of [null, "since", [], {}, { since: null, limit: "5" }]) {
    assert.deepEqual(replay(value), { since: 0, limit: 10 }, JSON.stringify(value));
  }
  for (const since of [0, 1_700_000_000_000, 253_402_300_799_999, -253_402_300_799_999]) {
    assert.deepEqual(replay({ since }), { since, limit: 10 });
  }
  for (const since of [1.5, "yesterday", true, 1e300, -1e300, 253_402_300_800_000]) {
    assert.equal(replay({ since }), "invalid", JSON.stringify(since));
  }
  const limits: [unknown, number][] = [[3.9, 3], [0, 1], [-4.7, 1], [25, 25], [100, 25]];
  for (const [limit, clamped] of limits) {
    assert.deepEqual(replay({ since: 0, limit }), { since: 0, limit: clamped }, String(limit));
  }
  // JSON reads 1e400 as Infinity: the largest limit.
  assert.deepEqual(replay(JSON.parse('{"limit": 1e400}')), { since: 0, limit: 25 });
});
