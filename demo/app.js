// The demo page (API.md §6): sign in with the local Auth, then one room through the client
// library — what plays and where, up next, chat with optimistic sending, who is here, and the
// room's connection state. Plain DOM, no framework: each part of the room has one render
// function, called from the library's events.
import { createRoomsClient, webStorageOutbox } from "./whatssound-client.js";
import { SimulatedPlayer } from "./player.js";

const seededRoom = "5e1ec7ed-0000-4000-8000-00000000b001"; // "Sunday vinyl" (supabase/seed.sql)
const roomId = new URLSearchParams(location.search).get("room") || seededRoom;
const $ = (id) => document.getElementById(id);

// The API URL, the anon key, the catalogue and display names (see demo/serve.ts).
const local = await (await fetch("local.json")).json();
const songs = new Map(local.songs.map((song) => [song.id, song]));
const names = new Map(Object.entries(local.people));
const supabase = globalThis.supabase.createClient(local.url, local.anon_key);

/** For a person poking at the page from the console, and for the browser tests. */
const demo = { supabase, room: null, player: null };
globalThis.whatssoundDemo = demo;

const { data: { session } } = await supabase.auth.getSession();
$("loading").hidden = true;
if (session) enterRoom(session.user);
else showSignIn();

// --- Sign-in ---------------------------------------------------------------------------------

function showSignIn() {
  $("sign-in-view").hidden = false;
  $("email").focus();
  $("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter ?? $("sign-in-form").querySelector("button");
    const email = $("email").value.trim();
    const password = $("password").value;
    if (!email || !password) {
      $("sign-in-error").textContent = "Enter your email and password.";
      return;
    }
    button.disabled = true;
    $("sign-in-error").textContent = "";
    const { data, error } = await supabase.auth.signInWithPassword({ email, password });
    button.disabled = false;
    if (error) {
      $("sign-in-error").textContent = error.message;
      $("password").focus();
      return;
    }
    $("sign-in-view").hidden = true;
    enterRoom(data.user);
  });
}

$("sign-out").addEventListener("click", async () => {
  await demo.room?.leave().catch(() => {});
  await supabase.auth.signOut();
  location.reload();
});

// --- The room --------------------------------------------------------------------------------

async function enterRoom(user) {
  const myName = user.user_metadata?.display_name || user.email || "Guest";
  names.set(user.id, myName);
  $("account-name").textContent = myName;
  $("account").hidden = false;
  $("room-view").hidden = false;
  renderState("joining");

  // Unsent chat survives a reload of this tab (not shared with other tabs of the same user).
  const rooms = createRoomsClient({ supabase, storage: webStorageOutbox(sessionStorage) });
  let room;
  try {
    room = await rooms.join(roomId, { presence: { info: { name: myName } } });
  } catch (error) {
    const reasons = {
      not_a_member: "You are not a member of this room.",
      room_not_found: "There is no such room.",
    };
    showRoomError(reasons[error.code] ?? `Could not join the room: ${error.message}`);
    renderState("left");
    return;
  }
  demo.room = room;
  $("room-name").textContent = room.info?.name ?? "Room";
  document.title = `${room.info?.name ?? "Room"} — WhatsSound demo`;
  room.on("state", renderState);
  room.on("error", (error) => showRoomError(error.message));
  renderState(room.state);

  const chat = new ChatView(room, user.id);
  room.chat.on("messages", () => chat.render());
  room.chat.on("pending", () => chat.render());
  room.on("state", () => chat.render()); // A pending message says whether it waits for the network.
  chat.render(true);
  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = $("chat-input").value;
    if (!body.trim()) return;
    chat.send(body);
    $("chat-input").value = "";
    $("chat-input").focus();
  });

  const player = new SimulatedPlayer();
  demo.player = player;
  room.playback.attach(player);
  room.playback.on("correction", showCorrection);
  room.playback.on("state", renderSong);
  renderSong();
  setInterval(tick, 250);

  room.queue.on("state", renderQueue);
  renderQueue();

  for (const event of ["sync", "member_added", "member_removed"]) {
    room.presence.on(event, renderPresence);
  }
  renderPresence();

  if (room.host) setUpHost(room, player);

  function tick() {
    renderPosition();
    if (room.host) advanceAtSongEnd(room, player);
  }
}

function showRoomError(message) {
  $("room-error").textContent = message;
  $("room-error").hidden = false;
}

function renderState(state) {
  const element = $("connection-state");
  element.textContent = state;
  element.dataset.state = state;
}

// --- Now playing -----------------------------------------------------------------------------

function currentSong() {
  const id = demo.room?.playback.state?.song_id;
  return id ? songs.get(id) ?? { id, title: "Unknown song", artist: "", duration_ms: 0 } : null;
}

function renderSong() {
  const song = currentSong();
  const state = demo.room?.playback.state;
  $("now-playing").textContent = song ? song.title : "Nothing playing";
  $("now-artist").textContent = song?.artist ?? "";
  $("duration").textContent = formatTime(song?.duration_ms ?? 0);
  const playing = Boolean(state?.is_playing && song);
  $("play-pause").textContent = playing ? "Pause" : "Play";
  $("play-pause").setAttribute("aria-label", playing ? "Pause the room" : "Play the room");
  renderPosition();
}

function renderPosition() {
  const song = currentSong();
  const state = demo.room?.playback.state;
  const duration = song?.duration_ms ?? 0;
  const raw = demo.player && song ? demo.player.positionMs() : 0;
  const position = duration > 0 ? Math.min(raw, duration) : raw;
  const element = $("position");
  element.textContent = formatTime(position);
  element.dataset.ms = String(Math.round(position));
  const percent = duration > 0 ? (100 * position) / duration : 0;
  $("progress-bar").style.width = `${percent.toFixed(2)}%`;
  const progress = $("progress");
  progress.setAttribute("aria-valuenow", percent.toFixed(0));
  progress.setAttribute("aria-valuetext", `${formatTime(position)} of ${formatTime(duration)}`);
  $("play-status").textContent = !song
    ? ""
    : duration > 0 && raw >= duration
    ? "· ended"
    : state?.is_playing
    ? "· playing"
    : "· paused";
}

function showCorrection(correction) {
  const drift = correction.driftMs === null ? "" : `${Math.round(Math.abs(correction.driftMs))} ms`;
  if (correction.kind === "seek" && correction.reason === "drift") {
    $("sync-note").textContent = `last correction: a seek, ${drift} off`;
  } else if (correction.kind === "rate") {
    $("sync-note").textContent = correction.rate === 1
      ? "in step again"
      : `last correction: rate ×${correction.rate.toFixed(3)}, ${drift} off`;
  } else if (correction.kind === "load" || correction.reason === "attach") {
    $("sync-note").textContent = "in step";
  }
}

/** m:ss */
function formatTime(ms) {
  const seconds = Math.floor(Math.max(0, ms) / 1000);
  return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}

// --- Host controls ---------------------------------------------------------------------------
// The host's page sets the room's playback state (room.host.report) and the queue
// (room.host.setQueue); like every other page, its own simulated player follows the room.

function setUpHost(room, player) {
  $("host-controls").hidden = false;
  $("queue-form").hidden = false;
  const select = $("queue-song");
  for (const song of songs.values()) {
    select.add(new Option(`${song.title} — ${song.artist}`, song.id));
  }
  $("play-pause").addEventListener("click", () => {
    const state = room.playback.state;
    if (!state?.song_id) return playNext(room);
    room.host.report(state.song_id, player.positionMs(), !state.is_playing);
  });
  $("next").addEventListener("click", () => playNext(room));
  $("queue-form").addEventListener("submit", (event) => {
    event.preventDefault();
    room.host.setQueue({ songs: [...queuedSongs(room), select.value] })
      .catch((error) => showRoomError(`The queue was not saved: ${error.message}`));
  });
}

/**
 * The next song: the first one queued, or else the catalogue's song after the current one (so
 * the room keeps playing). `fromSeq` names the state being moved on from, so two tabs of the host
 * that both reach the end of a song publish the same queue once (the publish id is idempotent).
 */
function playNext(room, fromSeq) {
  const queue = queuedSongs(room);
  const current = room.playback.state?.song_id ?? null;
  const catalogue = [...songs.keys()];
  const next = queue[0] ?? catalogue[(catalogue.indexOf(current) + 1) % catalogue.length];
  if (!next) return;
  if (queue.length > 0) {
    const id = fromSeq === undefined ? undefined : `next-${fromSeq}`;
    room.host.setQueue({ songs: queue.slice(1) }, { id })
      .catch((error) => showRoomError(`The queue was not saved: ${error.message}`));
  }
  room.host.report(next, 0, true);
}

let advancedFrom = null;

/** A playing song that reached its end moves on to the next (once per state). */
function advanceAtSongEnd(room, player) {
  const state = room.playback.state;
  const song = currentSong();
  if (!state?.is_playing || !song?.duration_ms || advancedFrom === state.seq) return;
  if (player.positionMs() < song.duration_ms) return;
  advancedFrom = state.seq;
  playNext(room, state.seq);
}

// --- Up next ---------------------------------------------------------------------------------

/** The queue's song ids: the payload the host publishes is `{songs: [id, …]}`. */
function queuedSongs(room) {
  const list = room.queue.state?.songs;
  return Array.isArray(list) ? list.filter((id) => typeof id === "string") : [];
}

function renderQueue() {
  const room = demo.room;
  const list = $("queue");
  const items = queuedSongs(room).map((id, index) => {
    const song = songs.get(id);
    const item = document.createElement("li");
    item.dataset.testid = "queue-item";
    item.dataset.songId = id;
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    const artist = document.createElement("span");
    artist.className = "artist";
    artist.textContent = song ? ` — ${song.artist}` : "";
    label.append(song?.title ?? "Unknown song", artist);
    row.append(label);
    item.append(row);
    if (room.host) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "quiet small";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove ${song?.title ?? "this song"} from the queue`);
      remove.addEventListener("click", () => {
        const queue = queuedSongs(room);
        queue.splice(index, 1);
        room.host.setQueue({ songs: queue })
          .catch((error) => showRoomError(`The queue was not saved: ${error.message}`));
      });
      row.append(remove);
    }
    return item;
  });
  list.replaceChildren(...items);
  $("queue-empty").hidden = items.length > 0;
}

// --- Chat ------------------------------------------------------------------------------------

/**
 * One list item per message, keyed by client_id: a message handed to `send` shows at once as
 * pending, and the same element becomes the message once it has gone out (seq order), so it
 * never shows twice. Failed sends offer Retry and Discard.
 */
class ChatView {
  #room;
  #me;
  #list = $("chat");
  #elements = new Map();
  /** Messages sent from this tab that have not come back in `room.chat.messages` yet. */
  #mine = new Map();

  constructor(room, me) {
    this.#room = room;
    this.#me = me;
  }

  send(body) {
    const pending = this.#room.chat.send(body);
    this.#mine.set(pending.client_id, pending);
    pending.done.catch(() => {}).finally(() => this.render());
    this.render();
  }

  render(scrollToEnd = false) {
    const list = this.#list;
    const nearEnd = scrollToEnd ||
      list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    const messages = this.#room.chat.messages;
    const delivered = new Set(messages.map((m) => m.client_id));
    for (const pending of this.#room.chat.pending) {
      if (!this.#mine.has(pending.client_id)) this.#mine.set(pending.client_id, pending);
    }
    for (const id of [...this.#mine.keys()]) {
      const pending = this.#mine.get(id);
      const dropped = pending.status !== "sent" &&
        !this.#room.chat.pending.some((p) => p.client_id === id);
      if (delivered.has(id) || dropped) this.#mine.delete(id);
    }
    const wanted = [
      ...messages.map((message) => ({ key: message.client_id, message })),
      ...[...this.#mine.values()].map((pending) => ({ key: pending.client_id, pending })),
    ];
    const keep = new Set(wanted.map((w) => w.key));
    for (const [key, element] of this.#elements) {
      if (!keep.has(key)) {
        element.remove();
        this.#elements.delete(key);
      }
    }
    let previous = null;
    for (const entry of wanted) {
      let element = this.#elements.get(entry.key);
      if (!element) {
        element = this.#create();
        this.#elements.set(entry.key, element);
      }
      this.#fill(element, entry);
      const expected = previous ? previous.nextSibling : list.firstChild;
      if (element !== expected) list.insertBefore(element, expected);
      previous = element;
    }
    if (nearEnd) list.scrollTop = list.scrollHeight;
  }

  #create() {
    const item = document.createElement("li");
    item.className = "message";
    item.dataset.testid = "chat-message";
    const meta = document.createElement("p");
    meta.className = "meta";
    const author = document.createElement("span");
    author.className = "author";
    const time = document.createElement("time");
    meta.append(author, time);
    const body = document.createElement("p");
    body.className = "body";
    const status = document.createElement("p");
    status.className = "status";
    item.append(meta, body, status);
    return item;
  }

  #fill(item, { message, pending }) {
    const [meta, body, status] = item.children;
    const [author, time] = meta.children;
    const userId = message?.user_id ?? this.#me;
    item.classList.toggle("mine", userId === this.#me);
    author.textContent = names.get(userId) ?? `Someone (${userId.slice(0, 8)})`;
    if (message) {
      delete item.dataset.pending;
      delete item.dataset.status;
      item.dataset.seq = String(message.seq);
      time.dateTime = message.created_at;
      time.textContent = new Date(message.created_at).toLocaleTimeString([], {
        hour: "2-digit",
        minute: "2-digit",
      });
      body.textContent = message.body;
      status.textContent = "";
      status.hidden = true;
      item.querySelector(".actions")?.remove();
      return;
    }
    item.dataset.pending = "";
    item.dataset.status = pending.status;
    time.textContent = "";
    body.textContent = pending.body;
    status.hidden = false;
    status.textContent = pending.status === "failed"
      ? `Not sent: ${pending.error?.message ?? "refused"}`
      : pending.status === "sent"
      ? "Sent"
      : this.#room.state === "offline"
      ? "Waiting for the connection…"
      : "Sending…";
    item.querySelector(".actions")?.remove();
    if (pending.status === "failed") item.append(this.#actions(pending));
  }

  #actions(pending) {
    const actions = document.createElement("div");
    actions.className = "actions";
    const retry = document.createElement("button");
    retry.type = "button";
    retry.className = "small";
    retry.textContent = "Retry";
    retry.addEventListener("click", () => {
      this.#mine.delete(pending.client_id);
      const again = this.#room.chat.retry(pending);
      if (again) this.#mine.set(again.client_id, again);
      this.render();
    });
    const discard = document.createElement("button");
    discard.type = "button";
    discard.className = "small quiet";
    discard.textContent = "Discard";
    discard.addEventListener("click", () => {
      this.#room.chat.discard(pending);
      this.#mine.delete(pending.client_id);
      this.render();
    });
    actions.append(retry, discard);
    return actions;
  }
}

// --- Who is here -----------------------------------------------------------------------------

function renderPresence() {
  const members = demo.room?.presence.members;
  if (!members) return;
  for (const member of members.list) {
    if (typeof member.info?.name === "string") names.set(member.user_id, member.info.name);
  }
  $("presence-count").textContent = String(members.count);
  const me = members.me?.user_id;
  const items = members.list.map((member) => {
    const item = document.createElement("li");
    item.dataset.testid = "presence-member";
    item.dataset.userId = member.user_id;
    const name = document.createElement("span");
    name.textContent = names.get(member.user_id) ?? `Someone (${member.user_id.slice(0, 8)})`;
    item.append(name);
    if (member.is_host) item.append(badge("host"));
    if (member.user_id === me) item.append(badge("you"));
    if (member.connections > 1) {
      const tabs = document.createElement("span");
      tabs.className = "tabs";
      tabs.textContent = `${member.connections} tabs`;
      item.append(tabs);
    }
    return item;
  });
  $("presence").replaceChildren(...items);
  const summary = $("presence-summary");
  summary.hidden = members.type !== "summary";
  if (members.type === "summary") {
    summary.textContent = `Showing ${members.list.length} of ${members.count}: hosts first, ` +
      "then the most recently active" +
      (members.recentlyActive === null
        ? "."
        : ` (${members.recentlyActive} active in the last minute).`);
  }
}

function badge(text) {
  const element = document.createElement("span");
  element.className = "badge";
  element.textContent = text;
  return element;
}
