// `npm run bench -- client-continuity`: chat continuity of the client library across socket
// drops (CLIENT.md benchmark "Continuity"). On a throw-away stack: LISTENERS (50) listeners,
// each its own supabase-js client and RoomsClient joined to one room (chat only: presence off);
// SENDERS (12) users send one message per request through chat-send, together RATE (200)
// messages a second, for DURATION_S (20) s. Meanwhile every listener's socket is dropped again
// and again at random: it is up 1–5 s, then down for 0.5–3 s (`realtime.disconnect()`, then
// `connect()`), so broadcasts are lost to it and the library must notice (the rejoin) and catch
// up from history. Afterwards, for each listener: messages missing, duplicated (also counting
// every `messages` event, not only the final list) and out of order, against what the room
// stored from the listener's snapshot on (target 0 / 0 / 0), and the time from each reconnect
// until the listener held every message that had gone out before it (catch-up). Everything
// runs in this one process (gateway and Realtime stand-in included), which shares the CPU.
// Figures are printed and written, not asserted.
import { createClient, type SupabaseClient } from "npm:@supabase/supabase-js@2.119.1";
import postgres from "npm:postgres@3.4.9";
import { createRoomsClient, type Room, type RoomsClient } from "../client/mod.ts";
import { anonKey, userToken } from "../local/keys.ts";
import { withThrowawayStack } from "../local/throwaway.ts";
import { between } from "../local/seeded-random.ts";
import { summarize, timingLine, writeResults } from "./lib/results.ts";

const listenerCount = Number(Deno.env.get("LISTENERS") ?? 50);
const senderCount = Number(Deno.env.get("SENDERS") ?? 12);
const rate = Number(Deno.env.get("RATE") ?? 200);
const durationMs = Number(Deno.env.get("DURATION_S") ?? 20) * 1000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Listener {
  supabase: SupabaseClient;
  rooms: RoomsClient;
  room: Room;
  firstSeq: number;
  emitted: number[];
  drops: number;
  catchUps: number[];
}

await withThrowawayStack({ api: 54491, db: 54492 }, async ({ apiUrl, dbUrl }) => {
  const sql = postgres(dbUrl, { max: 4, onnotice: () => {} });
  const user = async () => {
    const id = crypto.randomUUID();
    await sql`insert into auth.users (id, email, is_anonymous) values (${id}, ${`${id}@bench.test`}, false)`;
    return { id, token: await userToken(id) };
  };
  const host = await user();
  const [{ id: roomId }] = await sql`insert into public.rooms (name, host_id)
                                    values ('Continuity', ${host.id}) returning id`;
  const listenerUsers = [];
  for (let i = 0; i < listenerCount; i++) listenerUsers.push(await user());
  const senders = [];
  for (let i = 0; i < senderCount; i++) senders.push(await user());
  for (const member of [...listenerUsers, ...senders]) {
    await sql`insert into public.room_members (room_id, user_id, role) values (${roomId}, ${member.id}, 'listener')`;
  }

  // The listeners join, ten at a time.
  const listeners: Listener[] = [];
  const joinStart = performance.now();
  for (let i = 0; i < listenerUsers.length; i += 10) {
    listeners.push(
      ...await Promise.all(
        listenerUsers.slice(i, i + 10).map(async ({ token }) => {
          const supabase = createClient(apiUrl, anonKey, {
            accessToken: () => Promise.resolve(token),
          });
          const rooms = createRoomsClient({ supabase, page: { window: null, document: null } });
          const room = await rooms.join(roomId, { presence: false });
          const listener: Listener = {
            supabase,
            rooms,
            room,
            firstSeq: room.chat.lastSeq + 1,
            emitted: [],
            drops: 0,
            catchUps: [],
          };
          room.chat.on("messages", (added) => listener.emitted.push(...added.map((m) => m.seq)));
          return listener;
        }),
      ),
    );
  }
  const joinMs = performance.now() - joinStart;
  console.log(`${listeners.length} listeners joined in ${joinMs.toFixed(0)} ms`);

  // The room's newest seq, read every 50 ms (what a reconnecting listener must catch up to).
  let newestSeq = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const [{ max }] = await sql`select coalesce(max(seq), 0)::int as max from public.messages
                                  where room_id = ${roomId}`;
      newestSeq = max;
      await sleep(50);
    }
  })();

  // The senders: one message per request, RATE a second between them.
  let sent = 0;
  let refused = 0;
  const sendEveryMs = (1000 * senderCount) / rate;
  const sendUntil = performance.now() + durationMs;
  const sending = senders.map(async ({ token }, s) => {
    await sleep((s * sendEveryMs) / senderCount);
    for (let i = 0; performance.now() < sendUntil; i++) {
      const started = performance.now();
      const response = await fetch(`${apiUrl}/functions/v1/chat-send`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${token}`,
          apikey: anonKey,
          "Content-Type": "application/json",
        },
        body: JSON.stringify({
          room_id: roomId,
          messages: [{ client_id: `s${s}-${i}`, body: `message ${i}` }],
        }),
      });
      await response.body?.cancel();
      if (response.status === 202) sent++;
      else refused++;
      await sleep(Math.max(0, sendEveryMs - (performance.now() - started)));
    }
  });

  // Every listener's socket goes down and comes back, again and again, while messages go out.
  const dropping = listeners.map(async (listener) => {
    while (performance.now() < sendUntil - 3000) {
      await sleep(between(Math.random, 1000, 5000));
      await listener.supabase.realtime.disconnect();
      listener.drops++;
      await sleep(between(Math.random, 500, 3000));
      listener.supabase.realtime.connect();
      const target = newestSeq;
      const back = performance.now();
      (async () => {
        while (listener.room.chat.lastSeq < target) await sleep(10);
        listener.catchUps.push(performance.now() - back);
      })();
    }
  });
  await Promise.all([...sending, ...dropping]);
  const sendSeconds = durationMs / 1000;

  // Everything stored goes out; then every listener should hold all of it.
  for (;;) {
    const [{ n }] = await sql`select count(*)::int as n from public.messages
                              where room_id = ${roomId} and seq is null`;
    if (n === 0) break;
    await sleep(50);
  }
  const [{ last }] =
    await sql`select max(seq)::int as last from public.messages where room_id = ${roomId}`;
  const drainStart = performance.now();
  while (
    performance.now() - drainStart < 15_000 && listeners.some((l) => l.room.chat.lastSeq < last)
  ) {
    await sleep(50);
  }
  const drainMs = performance.now() - drainStart;
  watching = false;
  await watcher;

  const perListener = listeners.map((l) => {
    const held = l.room.chat.messages.map((m) => m.seq).filter((seq) => seq >= l.firstSeq);
    const heldSet = new Set(held);
    let missing = 0;
    for (let seq = l.firstSeq; seq <= last; seq++) if (!heldSet.has(seq)) missing++;
    const emitted = l.emitted.filter((seq) => seq >= l.firstSeq);
    const duplicated = held.length - heldSet.size + (emitted.length - new Set(emitted).size);
    let outOfOrder = 0;
    for (let i = 1; i < emitted.length; i++) if (emitted[i] <= emitted[i - 1]) outOfOrder++;
    return { missing, duplicated, outOfOrder, drops: l.drops, expected: last - l.firstSeq + 1 };
  });
  const total = (key: "missing" | "duplicated" | "outOfOrder" | "drops") =>
    perListener.reduce((n, l) => n + l[key], 0);
  const catchUp = summarize(listeners.flatMap((l) => l.catchUps));

  console.log(
    `sent ${sent} messages in ${sendSeconds} s (${
      (sent / sendSeconds).toFixed(0)
    }/s) from ${senderCount} senders` +
      (refused ? `, ${refused} refused` : ""),
  );
  console.log(
    `${total("drops")} socket drops (${
      (total("drops") / listeners.length).toFixed(1)
    } per listener)`,
  );
  console.log(
    `missing ${total("missing")}, duplicated ${total("duplicated")}, out of order ${
      total("outOfOrder")
    } ` +
      `(all listeners; each expected ${perListener[0].expected}–${perListener.at(-1)!.expected})`,
  );
  console.log(`listeners with any missing: ${perListener.filter((l) => l.missing > 0).length}`);
  console.log(`catch-up after a reconnect: ${timingLine(catchUp, 0)} (${catchUp.count})`);
  console.log(`after the last send, all listeners complete in ${drainMs.toFixed(0)} ms`);

  await writeResults("client-continuity", {
    listeners: listeners.length,
    senders: senderCount,
    duration_s: sendSeconds,
    messages_sent: sent,
    messages_per_s: Math.round(sent / sendSeconds),
    refused,
    drops: total("drops"),
    missing: total("missing"),
    duplicated: total("duplicated"),
    out_of_order: total("outOfOrder"),
    listeners_with_missing: perListener.filter((l) => l.missing > 0).length,
    catch_up: catchUp,
    drain_ms: Math.round(drainMs),
    join_ms: Math.round(joinMs),
  });

  for (const l of listeners) {
    await l.rooms.close();
    await l.supabase.removeAllChannels();
    await l.supabase.realtime.disconnect();
  }
  await sql.end();
});
