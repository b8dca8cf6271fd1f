// A Node socket.io 4.x server with @socket.io/redis-streams-adapter, and official
// socket.io-client clients, driven by tests/test_socketio_cluster_node.py over
// stdin/stdout: `node tests/js/cluster_node.mjs REDIS_URL STREAM` (REDIS_URL "-": no Node
// server, only the clients).
//
// It prints {"ready": PORT} once its server listens and its adapter reads the stream,
// then answers each command line {"id", "cmd", ...} with {"id", "result"} or
// {"id", "error"}. Binary values travel as {"$bin": "<hex>"} in both directions.
import { createServer } from "node:http";
import { createInterface } from "node:readline";

import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";
import { io as connectClient } from "socket.io-client";

const [redisUrl, streamName] = process.argv.slice(2);

function fromWire(value) {
  if (Array.isArray(value)) return value.map(fromWire);
  if (value && typeof value === "object") {
    if (typeof value.$bin === "string") return Buffer.from(value.$bin, "hex");
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromWire(v)]));
  }
  return value;
}

function toWire(value) {
  if (value instanceof ArrayBuffer) return { $bin: Buffer.from(value).toString("hex") };
  if (ArrayBuffer.isView(value)) {
    return { $bin: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex") };
  }
  if (Array.isArray(value)) return value.map(toWire);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toWire(v)]));
  }
  return value;
}

// -- the server ------------------------------------------------------------------------------

// With "-" as the Redis URL there is no Node server: the script only hosts clients.
let server = null;
let port = null;
let redis = null;
const notes = [];
if (redisUrl !== "-") {
  redis = createClient({ url: redisUrl });
  redis.on("error", () => {});
  await redis.connect();

  server = new Server({
    adapter: createAdapter(redis, { streamName, blockTimeInMs: 1000 }),
    connectionStateRecovery: { maxDisconnectionDuration: 60_000, skipMiddlewares: true },
    transports: ["websocket"],
  });
  server.of("/custom");
  server.on("note", (...args) => notes.push(toWire(args)));
  server.on("hello", (who, callback) => callback(`node greets ${who}`));
  server.on("connection", (socket) => {
    socket.on("join", (room, ack) => {
      socket.join(room);
      ack?.(null);
    });
    socket.on("data", (value, ack) => {
      socket.data = value;
      ack?.(null);
    });
    socket.on("shout", (room, text, ack) => {
      socket.to(room).emit("shouted", text);
      ack?.(null);
    });
  });
  const httpServer = createServer();
  server.attach(httpServer);
  await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
  port = httpServer.address().port;

  // The adapter reads the stream and listens on its channel once its own connections are
  // up: wait for both before anyone publishes.
  async function adapterReady() {
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const list = String(await redis.sendCommand(["CLIENT", "LIST"]));
      const [, subscribers] = await redis.sendCommand(["PUBSUB", "NUMSUB", "socket.io#/#"]);
      if (list.includes("cmd=xread") && Number(subscribers) >= 1) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error("the adapter did not start reading the stream");
  }
  await adapterReady();
}

// -- the clients -----------------------------------------------------------------------------

const clients = new Map(); // name -> { socket, events, answer }
let wake = [];
function changed() {
  for (const fn of wake.splice(0)) fn();
}
async function waitUntil(predicate, what, ms = 5000) {
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

function connected(client) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no connect within 5 s")), 5000);
    client.socket.once("connect", () => {
      clearTimeout(timer);
      resolve({ sid: client.socket.id, recovered: client.socket.recovered });
    });
  });
}

function serverOf(name) {
  return name === "node" ? `http://127.0.0.1:${port}` : name;
}

const commands = {
  async connect({ name, url, namespace = "/", auth, answer }) {
    const socket = connectClient(serverOf(url) + namespace, {
      transports: ["websocket"],
      forceNew: true, // a manager (an Engine.IO connection) of its own
      reconnectionDelay: 50,
      reconnectionDelayMax: 50,
      randomizationFactor: 0,
      auth,
    });
    const client = { socket, events: [], answer };
    clients.set(name, client);
    socket.onAny((...args) => {
      const last = args[args.length - 1];
      if (typeof last === "function") {
        args.pop();
        if (client.answer !== undefined) last(fromWire(client.answer));
      } else if (typeof last === "string" && /^[0-9]+-[0-9]+$/.test(last)) {
        args.pop(); // the offset a recovering client presents (kept by the client)
      }
      client.events.push(toWire(args));
      changed();
    });
    socket.on("disconnect", (reason) => {
      client.events.push(["(disconnect)", reason]);
      changed();
    });
    return connected(client);
  },
  async emit({ name, args }) {
    const result = await clients.get(name).socket.timeout(5000).emitWithAck(...fromWire(args));
    return toWire(result);
  },
  async events({ name, count }) {
    const client = clients.get(name);
    await waitUntil(() => client.events.length >= count, `${count} events on ${name}`);
    return client.events.splice(0, count);
  },
  async pending({ name }) {
    return clients.get(name).events.splice(0);
  },
  // Cut the transport off (the server keeps the session for recovery) and stay away.
  async drop({ name }) {
    const client = clients.get(name);
    client.socket.io.reconnection(false);
    const count = client.events.length;
    client.socket.io.engine.close();
    await waitUntil(() => client.events.length > count, `${name} disconnected`);
    return client.events.pop();
  },
  // The pid of the client's session (the key its server keeps it under).
  async pid({ name }) {
    return clients.get(name).socket._pid ?? null;
  },
  // Come back, to the server at `url`: the client presents its pid and last offset.
  async resume({ name, url }) {
    const client = clients.get(name);
    client.socket.io.uri = serverOf(url);
    client.socket.io.reconnection(true);
    const again = connected(client);
    client.socket.connect();
    return again;
  },
  async close({ name }) {
    clients.get(name).socket.disconnect();
    clients.delete(name);
    return null;
  },
  async ioEmit({ room, skip, args, namespace = "/", local = false }) {
    let op = server.of(namespace);
    if (local) op = op.local;
    if (room) op = op.to(room);
    if (skip) op = op.except(skip);
    op.emit(...fromWire(args));
    return null;
  },
  async ioEmitWithAck({ room, timeout = 5000, args }) {
    let op = server.timeout(timeout);
    if (room) op = op.to(room);
    try {
      return { responses: toWire(await op.emitWithAck(...fromWire(args))) };
    } catch (e) {
      return { timeout: toWire(e.responses ?? []) };
    }
  },
  async fetchSockets({ room }) {
    const sockets = await (room ? server.in(room) : server).fetchSockets();
    return sockets.map((s) => ({
      sid: s.id,
      rooms: [...s.rooms].sort(),
      data: toWire(s.data),
      auth: s.handshake.auth,
    }));
  },
  async remote({ sid, action, args }) {
    const sockets = await server.fetchSockets();
    const target = sockets.find((s) => s.id === sid);
    if (!target) throw new Error(`no socket ${sid} in fetchSockets`);
    if (action === "emit") target.emit(...fromWire(args));
    else if (action === "join") target.join(args);
    else if (action === "leave") target.leave(args);
    else target.disconnect(Boolean(args));
    return null;
  },
  async socketsJoin({ room, rooms }) {
    (room ? server.in(room) : server).socketsJoin(rooms);
    return null;
  },
  async socketsLeave({ room, rooms }) {
    (room ? server.in(room) : server).socketsLeave(rooms);
    return null;
  },
  async disconnectSockets({ room, close }) {
    (room ? server.in(room) : server).disconnectSockets(Boolean(close));
    return null;
  },
  async serverSideEmit({ args }) {
    server.serverSideEmit(...fromWire(args));
    return null;
  },
  async serverSideEmitWithAck({ args }) {
    return toWire(await server.serverSideEmitWithAck(...fromWire(args)));
  },
  async notes({ count }) {
    await waitUntil(() => notes.length >= count, `${count} server-side events`);
    return notes.splice(0, count);
  },
  async localRooms() {
    const rooms = {};
    for (const [id, socket] of server.of("/").sockets) rooms[id] = [...socket.rooms].sort();
    return rooms;
  },
};

console.log(JSON.stringify({ ready: port }));
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const { id, cmd, ...args } = JSON.parse(line);
  try {
    const result = await commands[cmd](args);
    console.log(JSON.stringify({ id, result: result ?? null }));
  } catch (e) {
    console.log(JSON.stringify({ id, error: String(e?.stack ?? e) }));
  }
}
for (const { socket } of clients.values()) socket.disconnect();
server?.close();
process.exit(0);
