// wsgate.js against a real wsgate server (tests/apps/client_js.py), driven by
// tests/test_browser_client.py: `node --experimental-websocket integration.mjs BASE_URL`.
// Prints one JSON object: what each step observed. Every wait has a deadline.
import { connect, WsgateError } from "../../src/wsgate/static/wsgate.js";

const base = process.argv[2];
const DEADLINE = 5000;

function within(promise, what, ms = DEADLINE) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

function nextState(client, wanted) {
  return within(
    new Promise((resolve) => {
      const off = client.onState((change) => {
        if (change.state === wanted) {
          off();
          resolve(change);
        }
      });
    }),
    `state ${wanted}`,
  );
}

async function failure(promise) {
  try {
    await within(promise, "a rejection");
  } catch (error) {
    if (!(error instanceof WsgateError)) throw error;
    return { code: error.code, message: error.message, detail: error.detail };
  }
  return { code: null };
}

const out = {};
const client = connect(`${base}/api`, { reconnect: { initialDelay: 50, maxDelay: 200 } });
// Sent before the connection opens: queued, then written on open.
const early = client.request("echo", "early");
await nextState(client, "open");
out.early = await within(early, "early");
out.echo = await within(client.request("echo", { a: [1, 2] }), "echo");
out.add = await within(client.request("add", { x: 2, y: 3 }), "add");
out.validation = await failure(client.request("add", { x: "two", y: 3 }));
out.unknown = await failure(client.request("nope", null));
out.refused = await failure(client.request("refuse", null));
out.timeout = await failure(client.request("slow", 1.0, { timeout: 100 }));

const shouted = new Promise((resolve) => client.on("shouted", resolve));
client.send("shout", "hello all");
out.push = await within(shouted, "push");

out.items = [];
const ticks = client.stream("ticks", 3);
while (out.items.length < 3) out.items.push((await within(ticks.next(), "item")).value);
await ticks.return();

// The server closes with 1012 (service restart): the client reconnects by itself and a
// request made meanwhile is answered on the new connection.
const reconnecting = nextState(client, "reconnecting");
const closing = failure(client.request("close", { code: 1012, reason: "restart" }));
out.restart = await reconnecting;
out.closeRequest = await closing;
const queued = client.request("echo", "queued");
await nextState(client, "open");
out.queued = await within(queued, "queued");

// An application close code (4xxx) ends the client for good.
const closed = nextState(client, "closed");
client.send("close", { code: 4001, reason: "bye" });
out.final = await closed;
try {
  client.send("echo", 1);
} catch (error) {
  out.afterClose = error.code;
}

// A full queue refuses instead of dropping silently.
const small = connect(`${base}/api`, { queueSize: 1 });
small.send("echo", 1);
try {
  small.send("echo", 2);
} catch (error) {
  out.queueFull = error.code;
}
small.close();

console.log(JSON.stringify(out));
process.exit(0);
