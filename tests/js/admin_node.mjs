// A Node socket.io 4.x server instrumented with the official @socket.io/admin-ui, in a
// cluster through @socket.io/redis-streams-adapter, for tests/test_socketio_admin.py:
// `node tests/js/admin_node.mjs REDIS_URL USERNAME PASSWORD`.
//
// Its "/" namespace behaves as tests/apps/socketio_admin.py's Chat: a client's auth
// `room` is joined and its auth `data` kept in socket.data; "rooms" answers the socket's
// rooms. The admin UI's session ids are kept under the keys of the package's RedisStore
// (`socket.io-admin#<id>`, one day; RedisStore itself wants a callback-style client).
// Prints {"ready": PORT} once it listens; ends when its stdin closes.
import { createServer } from "node:http";
import { createRequire } from "node:module";

import { instrument } from "@socket.io/admin-ui";
import { createAdapter } from "@socket.io/redis-streams-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

// The package's own bcryptjs (its dependency) hashes the password, as its docs show.
const require = createRequire(import.meta.url);
const bcrypt = createRequire(require.resolve("@socket.io/admin-ui"))("bcryptjs");

const [redisUrl, username, password] = process.argv.slice(2);

const redis = createClient({ url: redisUrl });
redis.on("error", () => {});
await redis.connect();

const io = new Server({
  adapter: createAdapter(redis, { blockTimeInMs: 1000 }),
  transports: ["websocket"],
});
io.on("connection", (socket) => {
  const auth = socket.handshake.auth || {};
  if (typeof auth.room === "string") socket.join(auth.room);
  if (auth.data && typeof auth.data === "object") Object.assign(socket.data, auth.data);
  socket.on("rooms", (ack) => ack([...socket.rooms].sort()));
});

const prefix = "socket.io-admin#";
instrument(io, {
  auth: { type: "basic", username, password: bcrypt.hashSync(password, 4) },
  mode: "development",
  serverId: "node",
  store: {
    doesSessionExist: async (id) => (await redis.exists(prefix + id)) === 1,
    saveSession: (id) => redis.set(prefix + id, "true", { EX: 86400 }),
  },
});

const httpServer = createServer();
io.attach(httpServer);
await new Promise((resolve) => httpServer.listen(0, "127.0.0.1", resolve));
console.log(JSON.stringify({ ready: httpServer.address().port }));

process.stdin.resume();
process.stdin.on("end", async () => {
  io.close();
  await redis.quit().catch(() => {});
  process.exit(0);
});
