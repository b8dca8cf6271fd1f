// The chat example in Debian's Chromium, driven by playwright-core (no browser is
// downloaded). Started by tests/test_browser.py:
//
//   node tests/browser/chat.mjs HTTP_BASE_URL SCREENSHOT_DIR HISTORY
//
// HISTORY says what the restart does to the rooms' history: "lost" (kept in the server
// process: the pages are told they may have missed messages and reload the room) or
// "kept" (kept in a Valkey that outlives the server: the pages recover what they missed).
//
// It talks to the test over stdin/stdout, one JSON object per line: it prints
// {"step": "stop-server"} / {"step": "start-server"} and waits for a line "ok" before
// going on; at the end it prints {"result": {...}} with what it observed. Any failed
// wait throws (and the process exits non-zero) with a message saying what was awaited.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

import { chromium } from "playwright-core";

const [base, shots, history] = process.argv.slice(2);
const WAIT = 20000; // ms: the reconnect backoff tops out at 5 s
mkdirSync(shots, { recursive: true });

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(name) {
  console.log(JSON.stringify({ step: name }));
  const { value, done } = await lines.next();
  if (done || value.trim() !== "ok") throw new Error(`the test did not confirm ${name}: ${value}`);
}

const browser = await chromium.launch({
  executablePath: process.env.WSGATE_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // playwright gives every launch a fresh temporary --user-data-dir.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const result = { consoleErrors: [] };

async function open(name, room) {
  const context = await browser.newContext({ viewport: { width: 800, height: 720 } });
  const page = await context.newPage();
  page.on("console", (msg) => {
    // The browser reports each refused reconnect attempt on the console: expected while
    // the server is down. Anything else is an error of the page.
    if (msg.type() === "error" && !/WebSocket connection to .* failed/.test(msg.text())) {
      result.consoleErrors.push(`${name}: ${msg.text()}`);
    }
  });
  page.on("pageerror", (error) => result.consoleErrors.push(`${name}: ${error.message}`));
  await page.goto(`${base}/`);
  await page.fill("#room", room);
  await page.fill("#user", name);
  await page.click("#join");
  await waitText(page, "#status", "connected", `${name} connected`);
  await waitLog(page, `joined ${room} as ${name}`, `${name} joined`);
  return page;
}

async function waitFor(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: WAIT });
  } catch (error) {
    const state = await page.evaluate(() => ({
      status: document.getElementById("status").textContent,
      log: document.getElementById("log").innerText.slice(-1500),
    }));
    throw new Error(`waiting for ${what}: ${error.message}\npage: ${JSON.stringify(state)}`);
  }
}
const waitText = (page, selector, text, what) =>
  waitFor(page, ([s, t]) => document.querySelector(s)?.textContent === t, [selector, text], what);
const waitLog = (page, text, what) =>
  waitFor(page, (t) => document.getElementById("log").innerText.includes(t), text, what);
const logText = (page) => page.evaluate(() => document.getElementById("log").innerText);
const lastEntry = (page) =>
  page.evaluate(() => {
    const el = document.getElementById("log").lastElementChild;
    return { className: el.className, text: el.textContent };
  });
async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}
const shot = (page, name) => page.screenshot({ path: join(shots, name), fullPage: true });

const room = `r${Date.now().toString(36)}`;
const ann = await open("ann", room);
const bob = await open("bob", room);
await waitText(ann, "#members", "2 here", "ann sees 2 members");
await waitText(bob, "#members", "2 here", "bob sees 2 members");
await waitLog(ann, "bob joined", "ann told of bob");

// Two pages chat.
await say(ann, "hello bob");
await waitLog(bob, "ann: hello bob", "bob receives ann's message");
await waitFor(ann, () => !document.querySelector("#log .pending"), null, "ann's message confirmed");
result.confirmed = await lastEntry(ann);

// A long word wraps instead of widening the log.
await say(bob, "x".repeat(400));
await waitLog(ann, "bob: xxxxxxxxxx", "the long word");
result.overflow = await ann.evaluate(() => {
  const log = document.getElementById("log");
  return { scrollWidth: log.scrollWidth, clientWidth: log.clientWidth };
});

// Blank messages are refused on the page, with a note.
const before = await ann.evaluate(() => document.getElementById("log").children.length);
await say(ann, "    ");
result.blankNote = await ann.textContent("#note");
result.blankAdded = (await ann.evaluate(() => document.getElementById("log").children.length)) - before;

// A name change is clean: a rename in place, no close code in the log.
await bob.fill("#user", "robert");
await bob.click("#join");
await waitLog(bob, "you are now robert (was bob)", "bob renamed");
await waitLog(ann, "bob is now robert", "ann told of the rename");
await say(bob, "robert here");
await waitLog(ann, "robert: robert here", "the new name on messages");
await shot(ann, "1-chatting.png");

// The server restarts: both pages show it, a message typed meanwhile waits as pending.
await step("stop-server");
for (const page of [ann, bob]) {
  await waitFor(page, () => document.getElementById("status").className === "reconnecting",
    null, "reconnecting status");
  await waitLog(page, "connection lost; reconnecting…", "the loss logged");
}
result.reconnectingStatus = await ann.textContent("#status");
await say(ann, "typed while the server was down");
result.pendingWhileDown = await lastEntry(ann);
await shot(ann, "2-reconnecting.png");

// A request made while the server is down times out and rejects (the page's module is
// already loaded: import() takes it from the module map, not the network).
result.timeout = await ann.evaluate(async (room) => {
  const { connect } = await import("/wsgate.js");
  const client = connect(`ws://${location.host}/chat/${room}?user=probe`);
  const started = performance.now();
  try {
    await client.request("who", null, { timeout: 300 });
    return { resolved: true };
  } catch (error) {
    return {
      name: error.name,
      code: error.code,
      ms: performance.now() - started,
      state: client.state,
    };
  } finally {
    client.close();
  }
}, room);

await step("start-server");
for (const [page, name] of [[ann, "ann"], [bob, "robert"]]) {
  await waitText(page, "#status", "connected", `${name} reconnected`);
  if (history === "lost") {
    await waitLog(page, "some messages may be missing; reloaded", `${name} told and reloaded`);
  } else {
    await waitLog(page, "reconnected", `${name} logs the reconnect`);
  }
  await waitText(page, "#members", "2 here", `${name} sees 2 members again`);
}
// Sent on ann's reconnect and confirmed by the server. Bob gets it whichever page was
// back first: live, replayed from the history, or in the room he reloaded.
await waitFor(ann, () => !document.querySelector("#log .pending"), null, "pending confirmed");
result.pendingAfter = await ann.evaluate(() =>
  [...document.querySelectorAll("#log .me")].map((e) => e.className).at(-1));
await waitLog(bob, "ann: typed while the server was down", "bob gets what ann typed");
result.restartLogs = { ann: await logText(ann), bob: await logText(bob) };
await say(bob, "back again");
await waitLog(ann, "robert: back again", "messages flow after the restart");
await shot(ann, "3-reconnected.png");
await shot(bob, "3-reconnected-other.png");

// An error frame rejects with its code.
result.errorFrame = await ann.evaluate(async (room) => {
  const { connect, WsgateError } = await import("/wsgate.js");
  const client = connect(`ws://${location.host}/chat/${room}?user=probe`);
  try {
    await client.request("chat.send", { text: 5 });
    return { resolved: true };
  } catch (error) {
    return {
      isWsgateError: error instanceof WsgateError,
      code: error.code,
      detail: error.detail,
    };
  } finally {
    client.close();
  }
}, room);

// Name and room survive a reload.
await ann.reload();
await waitText(ann, "#status", "connected", "ann connected after reload");
result.afterReload = {
  room: await ann.inputValue("#room"),
  user: await ann.inputValue("#user"),
};
await waitLog(ann, `joined ${room} as ann`, "ann rejoined after reload");
await shot(ann, "4-reloaded.png");

result.logs = { ann: await logText(ann), bob: await logText(bob) };
result.online = await bob.textContent("#online");
result.room = room;
await browser.close();
console.log(JSON.stringify({ result }));
process.exit(0);
