// The official engine.io-client against a wsgate @engineio_controller echo endpoint.
//
//   node tests/node/engineio_client.js '{"url": "http://127.0.0.1:8000", "path": "/engine.io", "transports": ["polling", "websocket"]}'
//
// Prints one JSON line per step ({"step", "value"}); exits 1 on a failure or a timeout.
"use strict";

const { Socket } = require("engine.io-client");

const config = JSON.parse(process.argv[2]);
const TIMEOUT = 5000;

function report(step, value) {
  process.stdout.write(JSON.stringify({ step, value: value === undefined ? null : value }) + "\n");
}

function fail(message) {
  report("error", message);
  process.exit(1);
}

setTimeout(() => fail("scenario timed out"), 20000);

const socket = new Socket(config.url, { path: config.path, transports: config.transports });
const wantUpgrade = config.transports.length > 1;
const received = [];
let upgraded = !wantUpgrade;

function maybeDone() {
  if (received.length === 3 && upgraded) {
    report("received", received);
    report("transport", socket.transport.name);
    socket.close();
  }
}

socket.on("open", () => {
  report("open", { sid: typeof socket.id === "string" });
  socket.send("hello");
  socket.send(new Uint8Array([1, 2, 3]));
  socket.send("é ✓");
});
socket.on("upgrade", () => {
  upgraded = true;
  maybeDone();
});
socket.on("message", (data) => {
  received.push(typeof data === "string" ? data : { bytes: Array.from(new Uint8Array(data)) });
  maybeDone();
});
socket.on("close", (reason) => {
  report("close", reason);
  report("done", true);
  process.exit(0);
});
socket.on("error", (err) => fail(String(err)));
setTimeout(() => {
  if (received.length < 3 || !upgraded) fail(`only ${JSON.stringify(received)}, upgraded=${upgraded}`);
}, TIMEOUT);
