// The official socket.io-client against a wsgate server: one scenario per run.
//
//   node tests/node/socketio_client.js '{"url": "http://127.0.0.1:8000", "transports": ["websocket"], "scenario": "features"}'
//
// Each result is printed as one JSON line {"step": ..., "value": ...}; a failure prints
// {"step": "error", "value": message} and exits with 1. Every wait has a timeout.
"use strict";

const { io } = require("socket.io-client");

const config = JSON.parse(process.argv[2]);
const TIMEOUT = 5000;

function report(step, value) {
  process.stdout.write(JSON.stringify({ step, value: value === undefined ? null : value }) + "\n");
}

function toJSON(value) {
  // Buffers and ArrayBuffers as {"bytes": [..]} so the test can compare them.
  if (value instanceof ArrayBuffer) return { bytes: Array.from(new Uint8Array(value)) };
  if (Buffer.isBuffer(value)) return { bytes: Array.from(value) };
  if (Array.isArray(value)) return value.map(toJSON);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJSON(v);
    return out;
  }
  return value;
}

function connect(namespace = "/", options = {}) {
  return io(config.url + namespace, {
    transports: config.transports,
    forceNew: true,
    reconnection: false,
    timeout: TIMEOUT,
    ...options,
  });
}

function once(socket, event) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${TIMEOUT} ms`)), TIMEOUT);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

function call(socket, event, ...args) {
  return socket.timeout(TIMEOUT).emitWithAck(event, ...args);
}

async function waitTransport(socket, name) {
  if (socket.io.engine.transport.name === name) return;
  await once(socket.io.engine, "upgrade");
}

async function features() {
  const main = connect("/", { auth: { tag: config.tag } });
  main.on("question", (q, ack) => ack("42:" + q));
  const [auth] = await once(main, "auth");
  report("auth", auth);
  report("recovered", main.recovered);

  main.emit("message", "a", 2, { x: null });
  report("message-back", await once(main, "message-back"));
  report("chat", await call(main, "chat", { text: "hello" }));
  report("chat-invalid", await call(main, "chat", { text: 5 }));
  report("pair", await new Promise((resolve) => main.timeout(TIMEOUT).emit("pair", 1, 2, (err, a, b) => resolve(err ? String(err) : [a, b]))));
  report("nothing", await call(main, "nothing"));
  report("ask", await call(main, "ask", "q?", 2));
  const binBack = once(main, "binary-back");
  report("binary-ack", toJSON(await call(main, "binary", Buffer.from([0, 1]), { k: Buffer.from("zz") })));
  report("binary-back", toJSON(await binBack));

  const admin = connect("/admin", { auth: { token: "secret" } });
  await once(admin, "connect");
  report("whoami", (await call(admin, "whoami")) === `admin ${admin.id}`);
  const refused = connect("/admin", { auth: { token: "wrong" } });
  report("refused", (await once(refused, "connect_error"))[0].message);
  const nowhere = connect("/nope");
  report("invalid-namespace", (await once(nowhere, "connect_error"))[0].message);

  // Rooms: a and b join "r"; a shouts, skipping itself: only b hears it.
  const a = connect("/");
  const b = connect("/");
  await Promise.all([once(a, "auth"), once(b, "auth")]);
  report("join", [await call(a, "join", "r"), await call(b, "join", "r")]);
  const heardB = once(b, "shouted");
  report("shout", await call(a, "shout", "r", "one"));
  report("heard-b", await heardB);
  const heardA = once(a, "shouted");
  await call(b, "shout", "r", "two");
  report("heard-a", await heardA);

  await waitTransport(main, config.transports[config.transports.length - 1]);
  report("transport", (await call(main, "info")).transport);

  // Server-side disconnect, then a client-side one.
  const gone = once(a, "disconnect");
  a.emit("kick-me");
  report("kicked", (await gone)[0]);
  const leaver = connect("/", { auth: { tag: config.tag + "-leaver" } });
  await once(leaver, "auth");
  leaver.disconnect();
  let seen = [];
  for (let i = 0; i < 100 && seen.length === 0; i++) {
    seen = await call(main, "disconnects", config.tag + "-leaver");
    if (seen.length === 0) await new Promise((r) => setTimeout(r, 20));
  }
  report("client-disconnect", seen);
  for (const s of [main, admin, refused, nowhere, b]) s.disconnect();
}

async function recovery() {
  // Connection state recovery: cut the transport, miss an event, come back.
  const url = config.url;
  const socket = io(url + "/", {
    path: "/recover",
    transports: config.transports,
    reconnectionDelay: 50,
    reconnectionDelayMax: 100,
    timeout: TIMEOUT,
  });
  const other = io(url + "/", { path: "/recover", transports: config.transports, forceNew: true, timeout: TIMEOUT });
  await Promise.all([once(socket, "connect"), once(other, "connect")]);
  const first = await call(socket, "info");
  report("first", first);
  const news = [];
  socket.on("news", (text) => news.push(text));
  const heard = once(socket, "news");
  await call(other, "publish", "before");
  await heard;
  // Drop the transport without a goodbye, publish while it is away.
  const down = once(socket, "disconnect");
  socket.io.engine.close();
  report("disconnect-reason", (await down)[0]);
  await call(other, "publish", "missed");
  await once(socket, "connect");
  report("recovered", socket.recovered);
  const heardAfter = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no 'after' news")), TIMEOUT);
    socket.on("news", (text) => {
      if (text === "after") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await call(other, "publish", "after");
  await heardAfter;
  report("news", news);
  const second = await call(socket, "info");
  report("second", second);
  socket.disconnect();
  other.disconnect();
}

const scenarios = { features, recovery };

const deadline = setTimeout(() => {
  report("error", "scenario timed out");
  process.exit(1);
}, 30000);

scenarios[config.scenario]()
  .then(() => {
    clearTimeout(deadline);
    report("done", true);
    process.exit(0);
  })
  .catch((err) => {
    report("error", String(err && err.stack ? err.stack : err));
    process.exit(1);
  });
