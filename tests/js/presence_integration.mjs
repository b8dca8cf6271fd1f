// wsgate.js's presence views against a real wsgate server (tests/apps/presence_app.py),
// driven by tests/test_presence_clients.py:
// `node --experimental-websocket presence_integration.mjs BASE_URL ROOM`.
// Prints one JSON object: the callbacks each step observed. Every wait has a deadline.
import { connect } from "../../src/wsgate/static/wsgate.js";

const [base, room] = process.argv.slice(2);
const DEADLINE = 5000;

function within(promise, what, ms = DEADLINE) {
  let timer;
  const expired = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** The next call of `view[method]` whose key is `key` (any for onSync). */
function next(view, method, key) {
  return within(
    new Promise((resolve) => {
      const off = view[method]((...args) => {
        if (key === undefined || args[0] === key) {
          off();
          resolve(args);
        }
      });
    }),
    `${method} ${key ?? ""}`,
  );
}

const url = (user, watch = 1) => `${base}/presence/${room}?user=${user}&watch=${watch}`;
const out = {};
const ann = connect(url("ann"), { reconnect: { initialDelay: 50, maxDelay: 200 } });
const view = ann.presence(room);
const synced = next(view, "onSync");
const annJoined = next(view, "onJoin", "ann");
out.sync = (await synced)[0];
out.annJoin = await annJoined;

const bobJoined = next(view, "onJoin", "bob");
const bob = connect(url("bob", 0));
out.bobJoin = await bobJoined;
const secondTab = next(view, "onJoin", "bob");
const bob2 = connect(url("bob", 0));
out.bobSecondTab = await secondTab;

// One of bob's two tabs closes: a leave with the other tab still in `current`.
const tabLeft = next(view, "onLeave", "bob");
bob2.close();
out.bobTabLeave = await tabLeft;

// ann changes her meta: her old meta leaves, the new one joins.
const annLeft = next(view, "onLeave", "ann");
const annRejoined = next(view, "onJoin", "ann");
ann.send("status", { user: "ann", away: true });
out.annUpdate = { join: await annRejoined, leave: await annLeft };
out.listed = view.list();

// The server restarts ann's connection: it reconnects, the server sends the state again.
const resynced = next(view, "onSync");
ann.send("restart");
out.resync = (await resynced)[0];

bob.close();
ann.close();
console.log(JSON.stringify(out));
process.exit(0);
