// wsgate.js's history recovery against a real server serving tests/apps/recovery.py
// (tests/test_browser_recovery.py): `node --experimental-websocket recovery.mjs BASE_URL`.
// Step: "restart-server" (the test stops the server, starts it again on the same port,
// and answers "ok"); then {"result": {...}}.
import { createInterface } from "node:readline";

import { connect } from "../../src/wsgate/static/wsgate.js";

const base = process.argv[2];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(name) {
  console.log(JSON.stringify({ step: name }));
  const { value } = await lines.next();
  if (value?.trim() !== "ok") throw new Error(`the test did not confirm ${name}`);
}

// Every change anyone waits for wakes the waiters; each wait has a deadline.
let wake = [];
function changed() {
  for (const fn of wake.splice(0)) fn();
}
async function waitUntil(predicate, what, ms) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, left);
      wake.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

const FAST = { reconnect: { initialDelay: 50, maxDelay: 300 }, connectTimeout: 3000 };

/** A client whose messages, recoveries and states are written down in order. */
function watched(path, options = FAST) {
  const client = connect(`${base}${path}`, options);
  const log = [];
  client.on("chat.message", (data) => {
    log.push({ message: data, offsets: client.positions() });
    changed();
  });
  client.onRecover((recovery) => {
    log.push({ recovery, positions: client.positions() });
    changed();
  });
  client.onState((change) => {
    states.push({ path, ...change });
    changed();
  });
  const count = (key) => log.filter((entry) => key in entry).length;
  return { client, log, count };
}

async function opened(...clients) {
  await until(() => clients.every((c) => c.client.state === "open"), "open");
}

const room = (name) => `${name}-${Math.random().toString(16).slice(2, 10)}`;
const out = {};
const states = []; // every client's state changes, for the error message of a wait

async function until(predicate, what, ms = 20000) {
  try {
    await waitUntil(predicate, what, ms);
  } catch (error) {
    error.message += ` (states: ${JSON.stringify(states.slice(-12))})`;
    throw error;
  }
}

// 1. Dropped while others broadcast: exactly the missed frames, then onRecover, then live.
{
  const r = room("drop");
  const a = watched(`/rooms/${r}?user=ann`);
  const b = watched(`/rooms/${r}`);
  await opened(a, b);
  await b.client.request("say", ["m1", "m2"]);
  await until(() => a.count("message") === 2, "m1, m2");
  await b.client.request("hold", r);
  a.client.send("drop");
  await until(() => a.client.state === "reconnecting", "reconnecting after drop");
  await b.client.request("say", ["m3", "m4", "m5"]);
  await b.client.request("release", r);
  await until(() => a.count("recovery") === 1, "the recovery");
  await b.client.request("say", ["m6"]);
  await until(() => a.count("message") === 6, "m6");
  out.drop = { group: `room:${r}`, log: [...a.log], positions: a.client.positions(), other: [...b.log] };
  // 2. A page reload: the saved positions recover in a new client.
  const saved = JSON.parse(JSON.stringify(a.client.positions()));
  a.client.close();
  await b.client.request("say", ["m7", "m8"]);
  const c = watched(`/rooms/${r}`, { ...FAST, positions: saved });
  await until(() => c.count("recovery") === 1, "the recovery of the new client");
  out.reload = { log: c.log, positions: c.client.positions() };
  b.client.close();
  c.client.close();
}

// 3. Away longer than the history keeps (2 frames on /small): not recovered.
{
  const r = room("small");
  const a = watched(`/small/${r}`);
  const b = watched(`/small/${r}`);
  await opened(a, b);
  await b.client.request("say", ["m1"]);
  await until(() => a.count("message") === 1, "m1");
  await b.client.request("hold", r);
  a.client.send("drop");
  await until(() => a.client.state === "reconnecting", "reconnecting after drop");
  await b.client.request("say", ["m2", "m3", "m4"]);
  await b.client.request("release", r);
  await until(() => a.count("recovery") === 1, "the recovery");
  await b.client.request("say", ["m5"]);
  await until(() => a.count("message") === 2, "m5");
  out.small = { group: `room:${r}`, log: a.log, positions: a.client.positions() };
  a.client.close();
  b.client.close();
}

// 4. A server restart: the history is gone (a new epoch); the new position is stored,
// so the next reconnect recovers.
{
  const r = room("restart");
  const a = watched(`/rooms/${r}`);
  await opened(a);
  await a.client.request("say", ["m1", "m2"]);
  await until(() => a.count("message") === 2, "m1, m2");
  out.beforeRestart = a.client.positions();
  await step("restart-server");
  await until(() => a.count("recovery") === 1, "the recovery after the restart", 40000);
  a.client.send("drop");
  await until(() => a.count("recovery") === 2, "the recovery after the drop");
  await a.client.request("say", ["m3"]);
  await until(() => a.count("message") === 3, "m3");
  out.restart = { group: `room:${r}`, log: a.log, positions: a.client.positions() };
  a.client.close();
}

console.log(JSON.stringify({ result: out }));
process.exit(0);
