// wsgate.js through a real server restart (tests/test_browser_client.py):
// `node --experimental-websocket restart.mjs BASE_URL`. Steps: "stop-server",
// "start-server" (the test answers "ok" once done); then {"result": {...}}.
import { createInterface } from "node:readline";

import { connect } from "../../src/wsgate/static/wsgate.js";

const base = process.argv[2];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function step(name) {
  console.log(JSON.stringify({ step: name }));
  const { value } = await lines.next();
  if (value?.trim() !== "ok") throw new Error(`the test did not confirm ${name}`);
}
function within(promise, what, ms = 20000) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}
const states = [];
const waiters = [];
// Waits for the client to reach `state`; on failure the error lists the states seen.
function next(state, ms = 20000) {
  const reached = new Promise((resolve) => waiters.push({ state, resolve }));
  return within(reached, `state ${state} (seen: ${JSON.stringify(states)})`, ms);
}

// A connection attempt that hangs while the server restarts is given up after 3 s.
const client = connect(`${base}/api`, {
  reconnect: { initialDelay: 100, maxDelay: 500 },
  connectTimeout: 3000,
});
client.onState((change) => {
  states.push(change);
  for (const w of waiters.splice(0)) {
    if (w.state === change.state) w.resolve(change);
    else waiters.push(w);
  }
});
await next("open");
const out = { before: await within(client.request("echo", "before"), "echo") };

const lost = next("reconnecting");
await step("stop-server");
out.lost = await lost;
// Made while the server is down: queued, then sent on the new connection.
out.sendQueued = client.send("shout", "hello again");
const heard = new Promise((resolve) => client.on("shouted", resolve));
const during = client.request("echo", "during", { timeout: 40000 });
during.catch(() => {}); // awaited below; no unhandled rejection meanwhile

const back = next("open", 40000);
const stopped = Date.now();
await step("start-server");
out.back = await back;
out.downMs = Date.now() - stopped;
out.during = await within(during, "the queued request", 45000);
out.heard = await within(heard, "the push");
out.attempts = Math.max(...states.map((s) => s.attempt));
out.delays = states.filter((s) => s.state === "reconnecting").map((s) => s.delay);
client.close();
out.final = client.state;
console.log(JSON.stringify({ result: out }));
process.exit(0);
