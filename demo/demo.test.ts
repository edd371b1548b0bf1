// The demo page (API.md §6) in a real browser: Debian's chromium, driven by playwright-core,
// against the test stack's gateway at /demo/. People sign in through the page with the local
// Auth (the seeded users and their password), as a person would. Each test has a room of its own
// (hosted by the seeded host, with the seeded listener and dj as members) but the first, which
// opens the seeded "Sunday vinyl" and writes the screenshots (demo/screenshots/, git-ignored).
import assert from "node:assert/strict";
import { type Browser, type BrowserContext, chromium, type Page } from "npm:playwright-core@1.65.2";
import { browserPackages, ensurePackages } from "../local/postgres.ts";
import { apiUrl, createUser, withDb } from "../local/test-helpers.ts";
import { ensureClientBundle } from "./serve.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const screenshots = `${root}/demo/screenshots`;
const pageUrl = `${apiUrl}/demo/`;
const password = "whatssound-local";
const people = {
  host: { email: "host@whatssound.test", id: "5e1ec7ed-0000-4000-8000-000000000001" },
  dj: { email: "dj@whatssound.test", id: "5e1ec7ed-0000-4000-8000-000000000002" },
  listener: { email: "listener@whatssound.test", id: "5e1ec7ed-0000-4000-8000-000000000003" },
};
const desktop = { width: 1280, height: 860 };
const phone = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true };

// The browser from the project's own set-up (apt-get as root), and the page's bundle.
await ensurePackages(browserPackages);
await ensureClientBundle();
await Deno.mkdir(screenshots, { recursive: true });

// --- Helpers ---------------------------------------------------------------------------------

/** The flags that keep chromium from reaching for Google's services, which are unreachable here
 * (node.md); as root it needs --no-sandbox. */
const chromiumFlags = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** playwright-core keeps pipes and timers of its own open between tests. */
function browserTest(name: string, fn: (browser: Browser) => Promise<void>): void {
  Deno.test({
    name,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const browser = await chromium.launch({
        executablePath: "/usr/bin/chromium",
        args: chromiumFlags,
      });
      try {
        await fn(browser);
      } finally {
        await browser.close();
      }
    },
  });
}

/** A room hosted by the seeded host, with the listener and the dj as members. */
function createRoom(name: string, extraMembers: string[] = []): Promise<string> {
  return withDb(async (sql) => {
    const [{ id }] = await sql`insert into public.rooms (name, host_id)
                               values (${name}, ${people.host.id}) returning id`;
    for (const user of [people.dj.id, people.listener.id, ...extraMembers]) {
      await sql`insert into public.room_members (room_id, user_id, role)
                values (${id}, ${user}, ${user === people.dj.id ? "dj" : "listener"})`;
    }
    return id as string;
  });
}

/** Uncaught errors of every page, checked at the end of each test. */
const pageErrors: string[] = [];

function watch(page: Page): Page {
  page.on("pageerror", (error) => pageErrors.push(`${page.url()}: ${error.message}`));
  return page;
}

function assertNoPageErrors(): void {
  const errors = pageErrors.splice(0);
  assert.deepEqual(errors, [], "uncaught errors in the pages");
}

/** A browser profile (cookies, storage): one person's browser. */
function person(
  browser: Browser,
  options: Parameters<Browser["newContext"]>[0] = { viewport: desktop },
): Promise<BrowserContext> {
  return browser.newContext(options);
}

function roomUrl(room?: string): string {
  return room ? `${pageUrl}?room=${room}` : pageUrl;
}

/** Opens the page, signs in through the form and waits until the room is live. */
async function signIn(context: BrowserContext, email: string, room?: string): Promise<Page> {
  const page = watch(await context.newPage());
  await page.goto(roomUrl(room));
  await page.getByTestId("email").fill(email);
  await page.getByTestId("password").fill(password);
  await page.getByTestId("sign-in").click();
  await waitForState(page, "live");
  return page;
}

/** One of the seeded people, signed in to `room` in a browser profile of their own. */
async function signInAs(browser: Browser, who: keyof typeof people, room: string): Promise<Page> {
  return signIn(await person(browser), people[who].email, room);
}

/** A new room named `name`, with the host and the listener signed in to it. */
async function hostAndListenerIn(browser: Browser, name: string) {
  const room = await createRoom(name);
  const host = await signInAs(browser, "host", room);
  const listener = await signInAs(browser, "listener", room);
  return { room, host, listener };
}

/** Another tab of a signed-in person (the session is in the profile's storage). */
async function openTab(context: BrowserContext, room?: string): Promise<Page> {
  const page = watch(await context.newPage());
  await page.goto(roomUrl(room));
  await waitForState(page, "live");
  return page;
}

function waitForState(page: Page, state: string, timeout = 15_000): Promise<unknown> {
  return page.waitForFunction(
    (want) => document.querySelector('[data-testid="connection-state"]')?.textContent === want,
    state,
    { timeout },
  );
}

function text(page: Page, testId: string): Promise<string> {
  return page.getByTestId(testId).first().innerText();
}

/** Waits until the element's text is `want`. */
async function waitForText(page: Page, testId: string, want: string, timeout = 10_000) {
  await page.waitForFunction(
    ([id, value]) => document.querySelector(`[data-testid="${id}"]`)?.textContent === value,
    [testId, want],
    { timeout },
  ).catch(async (error) => {
    throw new Error(`${testId}: wanted "${want}", saw "${await text(page, testId)}" (${error})`);
  });
}

/** The chat as shown: one entry per chat-message element, oldest first. */
function chat(page: Page): Promise<{ body: string; pending: boolean; status: string }[]> {
  return page.getByTestId("chat-message").evaluateAll((items) =>
    items.map((item) => ({
      body: item.querySelector(".body")?.textContent ?? "",
      pending: item.hasAttribute("data-pending"),
      status: item.querySelector(".status")?.textContent ?? "",
    }))
  );
}

async function bodies(page: Page): Promise<string[]> {
  return (await chat(page)).map((m) => m.body);
}

/** Waits until the page shows `body` in its chat, not pending. */
async function waitForMessage(page: Page, body: string, timeout = 10_000): Promise<void> {
  await page.waitForFunction(
    (want) =>
      [...document.querySelectorAll('[data-testid="chat-message"]')].some((item) =>
        !item.hasAttribute("data-pending") && item.querySelector(".body")?.textContent === want
      ),
    body,
    { timeout },
  ).catch(async (error) => {
    throw new Error(`"${body}" not shown; chat: ${JSON.stringify(await chat(page))} (${error})`);
  });
}

async function say(page: Page, body: string): Promise<void> {
  await page.getByTestId("chat-input").fill(body);
  await page.getByTestId("chat-send").click();
}

/** Waits until the host's page plays something after a press of play; returns its title. */
async function startedSong(host: Page): Promise<string> {
  await host.waitForFunction(() =>
    document.querySelector('[data-testid="now-playing"]')?.textContent !== "Nothing playing"
  );
  return await text(host, "now-playing");
}

/** The host adds a seeded song to the queue. */
async function queueSong(host: Page, title: string): Promise<void> {
  const value = await host.locator("#queue-song option", { hasText: title }).getAttribute("value");
  await host.getByTestId("queue-song").selectOption(value!);
  await host.getByTestId("queue-add").click();
}

/** Each body once. */
function assertOnce(list: string[], what: string): void {
  assert.equal(new Set(list).size, list.length, `${what} shows a message twice: ${list}`);
}

/** The page's player position now (ms), with the wall clock it was read at. */
function position(page: Page): Promise<{ ms: number; at: number; text: string }> {
  return page.evaluate(() => {
    const demo = (globalThis as unknown as {
      whatssoundDemo: { player: { positionMs(): number } };
    }).whatssoundDemo;
    return {
      ms: demo.player.positionMs(),
      at: Date.now(),
      text: document.querySelector('[data-testid="position"]')!.textContent!,
    };
  });
}

function seconds(mss: string): number {
  const [m, s] = mss.split(":").map(Number);
  return m * 60 + s;
}

/** The page's globals that the callbacks run in the page use. (Not the DOM library: it would
 * change the types of every test file that `deno test` checks together with this one.) */
interface PageElement {
  textContent: string | null;
  hasAttribute(name: string): boolean;
  querySelector(selector: string): PageElement | null;
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement> & { length: number };
  documentElement: { scrollWidth: number };
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// --- Tests -----------------------------------------------------------------------------------

browserTest(
  "sign-in, the seeded room for the host and a listener, and the screenshots",
  async (browser) => {
    // The sign-in form: a wrong password is refused with Supabase Auth's message.
    const hostContext = await person(browser);
    const signInPage = watch(await hostContext.newPage());
    await signInPage.goto(pageUrl);
    await signInPage.screenshot({ path: `${screenshots}/sign-in-desktop.png`, fullPage: true });
    await signInPage.getByTestId("email").fill(people.host.email);
    await signInPage.getByTestId("password").fill("not-the-password");
    await signInPage.getByTestId("sign-in").click();
    await signInPage.getByText("Invalid login credentials").waitFor({ timeout: 10_000 });
    await signInPage.close();

    const host = await signIn(hostContext, people.host.email);
    const listenerContext = await person(browser);
    const listener = await signIn(listenerContext, people.listener.email);

    for (const page of [host, listener]) {
      await waitForText(page, "room-name", "Sunday vinyl");
      const shown = await bodies(page);
      for (const seeded of ["Welcome! First record coming up.", "Next one is a deep cut."]) {
        assert.ok(shown.includes(seeded), `the seeded chat: ${shown}`);
      }
      await waitForText(page, "presence-count", "2");
    }
    // Only the host has the controls.
    assert.ok(await host.getByTestId("play-pause").isVisible());
    assert.equal(await listener.getByTestId("play-pause").isVisible(), false);
    assert.equal(await listener.getByTestId("queue-add").isVisible(), false);

    // A lively room for the pictures: a seeded song playing (other test files add songs such as
    // "Realtime Song" to the shared catalogue; a picture shows what a user would see), two
    // queued, a few words.
    await queueSong(host, "Midnight Tram");
    await host.getByTestId("next").click();
    await waitForText(host, "now-playing", "Midnight Tram");
    if ((await text(host, "play-pause")) === "Play") await host.getByTestId("play-pause").click();
    for (const title of ["Café con sal", "Low Orbit"]) {
      await queueSong(host, title);
      await listener.getByTestId("queue-item").filter({ hasText: title }).waitFor();
    }
    await say(listener, "Is this the B-side?");
    await waitForMessage(host, "Is this the B-side?");
    await say(host, "It is! Two more coming up.");
    await waitForMessage(listener, "It is! Two more coming up.");
    await sleep(1200);
    await host.screenshot({ path: `${screenshots}/host-desktop.png`, fullPage: true });
    await listener.screenshot({ path: `${screenshots}/listener-desktop.png`, fullPage: true });

    // The same pages on a phone.
    const hostPhone = await person(browser, phone);
    const hostOnPhone = await signIn(hostPhone, people.host.email);
    const listenerPhone = await person(browser, phone);
    const signInOnPhone = watch(await listenerPhone.newPage());
    await signInOnPhone.goto(pageUrl);
    await signInOnPhone.screenshot({ path: `${screenshots}/sign-in-phone.png`, fullPage: true });
    await signInOnPhone.close();
    const listenerOnPhone = await signIn(listenerPhone, people.listener.email);
    await sleep(500);
    await hostOnPhone.screenshot({ path: `${screenshots}/host-phone.png`, fullPage: true });
    await listenerOnPhone.screenshot({ path: `${screenshots}/listener-phone.png`, fullPage: true });
    // Nothing is wider than the phone's screen.
    for (const page of [hostOnPhone, listenerOnPhone]) {
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `the page is ${width}px wide on a 390px screen`);
    }
    assertNoPageErrors();
  },
);

browserTest("a message typed in one page appears once in the other", async (browser) => {
  const { room, host, listener } = await hostAndListenerIn(browser, "Demo: chat");

  await say(listener, "hello from the listener");
  await waitForMessage(host, "hello from the listener");
  await say(host, "hello back");
  await waitForMessage(listener, "hello back");
  await sleep(500); // Anything that would come twice has come by now.
  for (const page of [host, listener]) {
    assert.deepEqual(await bodies(page), ["hello from the listener", "hello back"]);
    assert.ok((await chat(page)).every((m) => !m.pending));
  }
  // The input is cleared and keeps the focus; Enter sends.
  assert.equal(await listener.getByTestId("chat-input").inputValue(), "");
  await listener.getByTestId("chat-input").fill("sent with Enter");
  await listener.keyboard.press("Enter");
  await waitForMessage(host, "sent with Enter");
  assertNoPageErrors();
});

browserTest(
  "the host queues a song, skips to it, pauses and plays; the listener follows",
  async (browser) => {
    const { room, host, listener } = await hostAndListenerIn(browser, "Demo: queue");
    await waitForText(listener, "now-playing", "Nothing playing");
    assert.equal(await listener.getByTestId("queue-item").count(), 0);

    // Play: nothing was playing, so the catalogue's first song starts.
    await host.getByTestId("play-pause").click();
    const first = await startedSong(host);
    await waitForText(listener, "now-playing", first);
    await waitForText(host, "play-pause", "Pause");

    await queueSong(host, "Low Orbit");
    await listener.getByTestId("queue-item").filter({ hasText: "Low Orbit" }).waitFor();
    assert.equal(await listener.getByTestId("queue-item").count(), 1);

    await host.getByTestId("next").click();
    await waitForText(listener, "now-playing", "Low Orbit");
    await listener.waitForFunction(() =>
      document.querySelectorAll('[data-testid="queue-item"]').length === 0
    );

    // Pause: the listener's position stops (and stays within a second of the host's).
    await sleep(1500);
    await host.getByTestId("play-pause").click();
    await waitForText(host, "play-pause", "Play");
    await sleep(800);
    const [paused, hostPaused] = [await position(listener), await position(host)];
    await sleep(1200);
    const later = await position(listener);
    assert.equal(later.ms, paused.ms, "the position stands still while paused");
    assert.ok(Math.abs(paused.ms - hostPaused.ms) < 1000, `${paused.ms} vs ${hostPaused.ms}`);
    await host.getByTestId("play-pause").click();
    await sleep(1200);
    assert.ok((await position(listener)).ms > later.ms + 500, "it runs again");
    assertNoPageErrors();
  },
);

browserTest(
  "a late joiner sees the recent chat and the host's song at the right position",
  async (browser) => {
    const { room, host, listener } = await hostAndListenerIn(browser, "Demo: late join");
    await host.getByTestId("play-pause").click();
    await startedSong(host);
    // A long seeded song: other test files add short songs to the shared catalogue, and one of
    // them could end (and the page move on) in the middle of this test.
    await queueSong(host, "Low Orbit");
    await host.getByTestId("next").click();
    await waitForText(host, "now-playing", "Low Orbit");
    const said = ["one", "two", "three", "four"];
    for (const [i, body] of said.entries()) await say(i % 2 ? listener : host, body);
    await waitForMessage(listener, "four");
    await sleep(2500); // The song plays on.

    const late = await signInAs(browser, "dj", room);
    assert.deepEqual(await bodies(late), said);
    assert.equal(await text(late, "now-playing"), "Low Orbit");
    await sleep(300);
    // Read both as close together as the two pages allow, and compare at the same wall time.
    const [ofHost, ofLate] = await Promise.all([position(host), position(late)]);
    const hostAtSameTime = ofHost.ms + (ofLate.at - ofHost.at);
    const error = Math.abs(ofLate.ms - hostAtSameTime);
    assert.ok(ofLate.ms > 2000, `the song is ${ofLate.ms} ms in`);
    assert.ok(error < 1000, `late joiner ${ofLate.ms} ms, host ${hostAtSameTime} ms`);
    assert.ok(Math.abs(seconds(ofLate.text) - seconds(ofHost.text)) <= 1, "m:ss within a second");
    console.log(`late joiner's position vs the host's: ${error.toFixed(0)} ms apart`);
    await waitForText(late, "presence-count", "3");
    assertNoPageErrors();
  },
);

browserTest("presence counts a user with two tabs once", async (browser) => {
  const room = await createRoom("Demo: presence");
  const host = await signInAs(browser, "host", room);
  const listenerContext = await person(browser);
  const firstTab = await signIn(listenerContext, people.listener.email, room);
  const secondTab = await openTab(listenerContext, room);
  await sleep(500);
  for (const page of [host, firstTab, secondTab]) {
    await waitForText(page, "presence-count", "2");
    assert.equal(await page.getByTestId("presence-member").count(), 2);
  }
  // One tab closes: the listener is still here.
  await secondTab.close();
  await sleep(1000);
  assert.equal(await text(host, "presence-count"), "2");
  // The last one closes (pagehide sends `leave`): the listener is gone.
  await firstTab.close();
  await waitForText(host, "presence-count", "1");
  assert.equal(await host.getByTestId("presence-member").count(), 1);
  assertNoPageErrors();
});

browserTest(
  "the listener goes offline, the host keeps chatting; back online it shows every message once",
  async (browser) => {
    const room = await createRoom("Demo: offline");
    const host = await signInAs(browser, "host", room);
    const listenerContext = await person(browser);
    const listener = await signIn(listenerContext, people.listener.email, room);
    await say(host, "before");
    await waitForMessage(listener, "before");

    // The network goes: requests fail, and the socket drops (offline emulation alone leaves an
    // open WebSocket up).
    await listenerContext.setOffline(true);
    await listener.evaluate(() => {
      const realtime = (globalThis as unknown as {
        whatssoundDemo: {
          supabase: { realtime: { socketAdapter: { getSocket(): { conn: WebSocket | null } } } };
        };
      }).whatssoundDemo.supabase.realtime;
      realtime.socketAdapter.getSocket().conn?.close();
    });
    await waitForState(listener, "offline");

    const whileAway = ["while you were away 1", "while you were away 2", "while you were away 3"];
    for (const body of whileAway) {
      await say(host, body);
      await waitForMessage(host, body);
    }
    // The listener writes meanwhile: shown at once, as pending.
    await say(listener, "written offline");
    await sleep(1500);
    const shown = await chat(listener);
    assert.deepEqual(shown.map((m) => m.body), ["before", "written offline"]);
    assert.ok(shown[1].pending, "the message waits, shown as pending");
    assert.equal(await text(listener, "connection-state"), "offline");

    await listenerContext.setOffline(false);
    await waitForState(listener, "live", 30_000);
    await waitForMessage(listener, "written offline", 15_000);
    await waitForMessage(host, "written offline");
    await sleep(1000);
    const expected = ["before", ...whileAway, "written offline"];
    assert.deepEqual(await bodies(listener), expected);
    assert.deepEqual(await bodies(host), expected);
    assertOnce(await bodies(listener), "the listener");
    assert.ok((await chat(listener)).every((m) => !m.pending));
    assertNoPageErrors();
  },
);

browserTest("above 100 people the page shows the count and a summary", async (browser) => {
  const crowd = await withDb(async (sql) => {
    const users = [];
    for (let i = 0; i < 101; i++) users.push(await createUser(sql));
    return users;
  });
  const room = await createRoom("Demo: a crowd", crowd.map((u) => u.id));
  // 101 people join presence through the API, ten at a time.
  for (let i = 0; i < crowd.length; i += 10) {
    await Promise.all(
      crowd.slice(i, i + 10).map(async (user, j) => {
        const response = await fetch(`${apiUrl}/functions/v1/presence`, {
          method: "POST",
          headers: {
            authorization: `Bearer ${user.token}`,
            apikey: Deno.env.get("SUPABASE_ANON_KEY")!,
            "content-type": "application/json",
          },
          body: JSON.stringify({
            action: "join",
            room_id: room,
            connection_id: `crowd-${i + j}-${crypto.randomUUID().slice(0, 8)}`,
            user_id: user.id,
            user_info: { name: `Guest ${i + j + 1}` },
          }),
        });
        assert.equal(response.status, 200, await response.text());
      }),
    );
  }
  const host = await signInAs(browser, "host", room);
  await waitForText(host, "presence-count", "102");
  const shownMembers = await host.getByTestId("presence-member").count();
  assert.ok(shownMembers > 0 && shownMembers <= 10, `${shownMembers} members shown`);
  assert.match(await host.locator("#presence-summary").innerText(), /^Showing \d+ of 102/);
  await host.screenshot({ path: `${screenshots}/host-crowd-desktop.png`, fullPage: true });
  assertNoPageErrors();
});

Deno.test("the gateway serves the page, its files, the bundle and supabase-js; nothing else", async () => {
  const get = (path: string) => fetch(`${apiUrl}${path}`, { redirect: "manual" });
  const redirect = await get("/demo?room=abc");
  await redirect.body?.cancel();
  assert.equal(redirect.status, 308);
  assert.equal(redirect.headers.get("location"), "/demo/?room=abc");
  for (
    const [path, type, marker] of [
      ["/demo/", "text/html", 'data-testid="room-name"'],
      ["/demo/app.js", "text/javascript", "createRoomsClient"],
      ["/demo/whatssound-client.js", "text/javascript", "createRoomsClient"],
      ["/demo/vendor/supabase.js", "text/javascript", "createClient"],
      ["/demo/local.json", "application/json", '"anon_key"'],
    ]
  ) {
    const response = await get(path);
    const body = await response.text();
    assert.equal(response.status, 200, path);
    assert.ok(response.headers.get("content-type")!.startsWith(type), path);
    assert.ok(body.includes(marker), `${path} has ${marker}`);
  }
  const local = await (await get("/demo/local.json")).json();
  assert.equal(local.url, apiUrl);
  assert.equal(local.songs.length >= 4, true);
  for (
    const path of ["/demo/demo.test.ts", "/demo/serve.ts", "/demo/../package.json", "/demo/x/y.js"]
  ) {
    const response = await get(path);
    await response.body?.cancel();
    assert.equal(response.status, 404, path);
  }
});
