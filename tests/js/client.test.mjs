// Unit tests of wsgate.js against a fake WebSocket: backoff, close codes, queueing,
// timeouts, error frames, streams, state events. `node --test tests/js/`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import {
  DEFAULT_RECONNECT,
  WsgateError,
  backoffDelay,
  connect,
  shouldReconnect,
} from "../../src/wsgate/static/wsgate.js";
import { fakeWebSockets, settle } from "./fake_websocket.mjs";

function setup(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const fake = fakeWebSockets();
  const client = connect("ws://server/chat/lobby", { WebSocket: fake.WebSocket, ...options });
  const states = [];
  client.onState((change) => states.push(change));
  return { client, fake, states };
}

async function rejection(promise) {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the promise resolved");
}

describe("backoff", () => {
  test("defaults: 1 s doubling to 5 s, full jitter", () => {
    assert.equal(DEFAULT_RECONNECT.initialDelay, 1000);
    assert.equal(DEFAULT_RECONNECT.maxDelay, 5000);
    assert.equal(DEFAULT_RECONNECT.factor, 2);
    assert.equal(DEFAULT_RECONNECT.jitter, 1);
    const caps = [1000, 2000, 4000, 5000, 5000, 5000];
    caps.forEach((cap, i) => {
      assert.equal(backoffDelay(i + 1, DEFAULT_RECONNECT, () => 0), cap);
      assert.equal(backoffDelay(i + 1, DEFAULT_RECONNECT, () => 0.5), cap / 2);
      assert.ok(backoffDelay(i + 1, DEFAULT_RECONNECT, () => 0.9999) <= 1);
    });
  });

  test("every jittered delay stays within [0, cap] and they spread over it", () => {
    for (let attempt = 1; attempt <= 10; attempt++) {
      const cap = Math.min(5000, 1000 * 2 ** (attempt - 1));
      const delays = Array.from({ length: 300 }, () => backoffDelay(attempt));
      assert.ok(delays.every((d) => d >= 0 && d <= cap), `attempt ${attempt}: ${delays}`);
      assert.ok(Math.min(...delays) < cap * 0.25 && Math.max(...delays) > cap * 0.75);
    }
  });

  test("jitter 0 gives the exact exponential schedule; options are merged", () => {
    const o = { initialDelay: 100, maxDelay: 1000, factor: 3, jitter: 0 };
    assert.deepEqual([1, 2, 3, 4].map((n) => backoffDelay(n, o)), [100, 300, 900, 1000]);
    assert.equal(backoffDelay(2, { jitter: 0 }), 2000);
  });

  test("bad options are refused with a message naming them", () => {
    const { WebSocket } = fakeWebSockets();
    assert.throws(() => connect("ws://x", { WebSocket, reconnect: { factor: 0.5 } }), /factor/);
    assert.throws(() => connect("ws://x", { WebSocket, reconnect: { jitter: 2 } }), /jitter/);
    assert.throws(() => connect("ws://x", { WebSocket, queueSize: -1 }), /queueSize/);
    assert.throws(() => connect("ws://x", { WebSocket: undefined, reconnect: "x" }), TypeError);
  });
});

describe("close codes", () => {
  test("stop after 1000, 1008 and 4000-4999; retry after the others", () => {
    for (const code of [1000, 1008, 4000, 4003, 4999]) assert.equal(shouldReconnect(code), false);
    for (const code of [1001, 1005, 1006, 1011, 1012, 1013, 3000, 5000]) {
      assert.equal(shouldReconnect(code), true, String(code));
    }
    assert.equal(shouldReconnect(4003, { retryCodes: [4003] }), true);
  });

  for (const code of [1000, 1008, 4003]) {
    test(`a server close with ${code} ends the client`, (t) => {
      const { client, fake, states } = setup(t);
      fake.last().open();
      fake.last().drop(code, "go away");
      assert.equal(client.state, "closed");
      assert.deepEqual(states.at(-1), {
        state: "closed", code, reason: "go away", attempt: 0, delay: null,
      });
      t.mock.timers.tick(60000);
      assert.equal(fake.sockets.length, 1);
    });
  }

  for (const code of [1001, 1006, 1011, 1012]) {
    test(`a close with ${code} reconnects after a delay within the backoff`, (t) => {
      const { client, fake, states } = setup(t, { random: () => 0.25 });
      fake.last().open();
      fake.last().drop(code);
      assert.equal(client.state, "reconnecting");
      assert.deepEqual(states.at(-1), {
        state: "reconnecting", code, reason: "", attempt: 1, delay: 750,
      });
      t.mock.timers.tick(749);
      assert.equal(fake.sockets.length, 1);
      t.mock.timers.tick(1);
      assert.equal(fake.sockets.length, 2);
      assert.equal(fake.last().url, "ws://server/chat/lobby");
      fake.last().open();
      assert.equal(client.state, "open");
      assert.equal(states.at(-1).attempt, 0);
    });
  }

  test("an error without a close event ends the attempt (as Node 20's WebSocket does)", (t) => {
    const { client, fake, states } = setup(t, { random: () => 0 });
    const first = fake.last();
    first.onerror({}); // readyState still CONNECTING, and no close event follows
    assert.equal(client.state, "reconnecting");
    assert.equal(states.at(-1).code, 1006);
    assert.ok(first.closedWith);
    first.drop(1006); // a late close event is ignored
    assert.equal(states.length, 1);
    t.mock.timers.tick(1000);
    assert.equal(fake.sockets.length, 2);
  });

  test("an attempt that neither opens nor fails is abandoned after connectTimeout", (t) => {
    const { client, fake, states } = setup(t, { connectTimeout: 3000, random: () => 0 });
    t.mock.timers.tick(2999);
    assert.equal(client.state, "connecting");
    t.mock.timers.tick(1);
    assert.equal(client.state, "reconnecting");
    assert.deepEqual(fake.sockets[0].closedWith, { code: undefined, reason: undefined });
    assert.equal(states.at(-1).attempt, 1);
    t.mock.timers.tick(1000);
    fake.last().open();
    t.mock.timers.tick(10000); // an open connection is not timed out
    assert.equal(client.state, "open");
  });

  test("a final close fails what was queued with closed", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const sent = client.request("a", null);
    fake.last().readyState = 2; // closing: the next frame waits in the queue
    const queued = client.request("b", null);
    fake.last().drop(4001, "bye");
    assert.equal((await rejection(sent)).code, "disconnected");
    const error = await rejection(queued);
    assert.equal(error.code, "closed");
    assert.deepEqual(error.detail, { code: 4001, reason: "bye" });
    assert.equal(client.state, "closed");
  });

  test("retryCodes makes an application close code reconnect", (t) => {
    const { client, fake } = setup(t, { reconnect: { retryCodes: [4003] } });
    fake.last().open();
    fake.last().drop(4003);
    assert.equal(client.state, "reconnecting");
  });

  test("failed attempts grow the delay until an open resets it; maxAttempts gives up", (t) => {
    const { client, fake, states } = setup(t, {
      random: () => 0,
      reconnect: { maxAttempts: 4 },
    });
    for (let i = 0; i < 4; i++) {
      fake.last().drop(1006);
      t.mock.timers.tick(states.at(-1).delay);
    }
    assert.deepEqual(
      states.map((s) => [s.state, s.attempt, s.delay]),
      [["reconnecting", 1, 1000], ["reconnecting", 2, 2000], ["reconnecting", 3, 4000],
        ["reconnecting", 4, 5000]],
    );
    fake.last().open();
    fake.last().drop(1006);
    assert.deepEqual(states.at(-1).delay, 1000);
    t.mock.timers.tick(1000);
    for (let i = 0; i < 4; i++) {
      fake.last().drop(1006);
      t.mock.timers.tick(states.at(-1).delay ?? 0);
    }
    assert.equal(client.state, "closed");
    assert.equal(fake.sockets.length, 9); // 1 + 4 attempts, then 4 more after the open
  });

  test("reconnect: false closes for good after any drop", (t) => {
    const { client, fake } = setup(t, { reconnect: false });
    fake.last().open();
    fake.last().drop(1006);
    assert.equal(client.state, "closed");
    assert.throws(() => client.send("x"), (e) => e instanceof WsgateError && e.code === "closed");
  });

  test("a URL function is called again for every attempt", (t) => {
    t.mock.timers.enable({ apis: ["setTimeout"] });
    const fake = fakeWebSockets();
    let user = "ann";
    const client = connect(() => `ws://server/chat?user=${user}`, {
      WebSocket: fake.WebSocket,
      random: () => 0,
    });
    assert.equal(fake.last().url, "ws://server/chat?user=ann");
    user = "bob";
    assert.equal(client.url, "ws://server/chat?user=bob");
    fake.last().drop(1006);
    t.mock.timers.tick(1000);
    assert.equal(fake.last().url, "ws://server/chat?user=bob");
    assert.throws(() => connect(42, { WebSocket: fake.WebSocket }), /URL string or a function/);
  });

  test("protocols are offered in the handshake", (t) => {
    const { fake } = setup(t, { protocols: ["chat.v1"] });
    assert.deepEqual(fake.last().protocols, ["chat.v1"]);
  });
});

describe("queue", () => {
  test("frames sent while connecting are written in order on open", async (t) => {
    const { client, fake } = setup(t);
    assert.equal(client.state, "connecting");
    assert.equal(client.send("a", 1), false);
    const reply = client.request("b", { x: 2 });
    assert.equal(client.send("c"), false);
    fake.last().open();
    assert.deepEqual(fake.last().sent, [
      { event: "a", data: 1 },
      { event: "b", data: { x: 2 }, id: 1 },
      { event: "c" },
    ]);
    assert.equal(client.send("d"), true);
    fake.last().receive({ event: "b", id: 1, data: "ok" });
    assert.equal(await reply, "ok");
  });

  test("a full queue refuses with queue_full and keeps what it had", async (t) => {
    const { client, fake } = setup(t, { queueSize: 3 });
    client.send("m", 1);
    client.send("m", 2);
    const third = client.request("r", null);
    assert.throws(
      () => client.send("m", 4),
      (e) => e instanceof WsgateError && e.code === "queue_full",
    );
    const refused = await rejection(client.request("r", null));
    assert.equal(refused.code, "queue_full");
    fake.last().open();
    assert.deepEqual(fake.last().sent.map((f) => f.data ?? f.id), [1, 2, 1]);
    fake.last().receive({ event: "r", id: 1, data: null });
    assert.equal(await third, null);
  });

  test("the default queue holds 100 frames", (t) => {
    const { client } = setup(t);
    for (let i = 0; i < 100; i++) client.send("m", i);
    assert.throws(() => client.send("m", 100), { code: "queue_full" });
  });

  test("frames sent while reconnecting wait for the next connection", (t) => {
    const { client, fake } = setup(t, { random: () => 0 });
    fake.last().open();
    fake.last().drop(1012);
    assert.equal(client.send("later", "x"), false);
    t.mock.timers.tick(1000);
    fake.last().open();
    assert.deepEqual(fake.last().sent, [{ event: "later", data: "x" }]);
  });
});

describe("requests", () => {
  test("ids are assigned by the client and replies resolve by id", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const a = client.request("who", null);
    const b = client.request("echo", [1]);
    assert.deepEqual(fake.last().sent, [
      { event: "who", data: null, id: 1 },
      { event: "echo", data: [1], id: 2 },
    ]);
    fake.last().receive({ event: "echo", id: 2, data: [1] });
    fake.last().receive({ event: "who", id: 1, data: { members: 2 } });
    assert.deepEqual(await b, [1]);
    assert.deepEqual(await a, { members: 2 });
  });

  test("an error frame rejects with its code, message and detail", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const p = client.request("chat.send", { text: 5 });
    const detail = [{ path: "$.data.text", message: "Expected `str`, got `int`" }];
    fake.last().receive({
      event: "error", id: 1, data: { code: "validation_error", message: "bad data", detail },
    });
    const error = await rejection(p);
    assert.ok(error instanceof WsgateError && error instanceof Error);
    assert.equal(error.name, "WsgateError");
    assert.equal(error.code, "validation_error");
    assert.equal(error.message, "bad data");
    assert.deepEqual(error.detail, detail);
    assert.equal(error.event, "chat.send");
  });

  test("no reply within the timeout rejects with timeout; a late reply is ignored", async (t) => {
    const { client, fake } = setup(t, { timeout: 3000 });
    fake.last().open();
    const own = client.request("slow", null, { timeout: 100 });
    const dflt = client.request("slow", null);
    t.mock.timers.tick(100);
    assert.equal((await rejection(own)).code, "timeout");
    t.mock.timers.tick(2899);
    await settle();
    fake.last().receive({ event: "slow", id: 1, data: "late" });
    t.mock.timers.tick(1);
    const error = await rejection(dflt);
    assert.equal(error.code, "timeout");
    assert.match(error.message, /3000 ms/);
  });

  test("timeout null waits for ever, per client or per request", async (t) => {
    const { client, fake } = setup(t, { timeout: null });
    fake.last().open();
    const forever = client.request("a", null);
    const own = client.request("b", null, { timeout: 50 });
    const none = client.request("c", null, { timeout: null });
    t.mock.timers.tick(3600 * 1000);
    assert.equal((await rejection(own)).code, "timeout");
    fake.last().receive({ event: "a", id: 1, data: 1 });
    fake.last().receive({ event: "c", id: 3, data: 3 });
    assert.deepEqual([await forever, await none], [1, 3]);
  });

  test("a request that timed out in the queue is never sent", async (t) => {
    const { client, fake } = setup(t);
    const p = client.request("x", null, { timeout: 50 });
    client.send("y");
    t.mock.timers.tick(50);
    assert.equal((await rejection(p)).code, "timeout");
    fake.last().open();
    assert.deepEqual(fake.last().sent, [{ event: "y" }]);
  });

  test("a drop rejects sent requests with disconnected and keeps queued ones", async (t) => {
    const { client, fake } = setup(t, { random: () => 0 });
    fake.last().open();
    const sent = client.request("a", null);
    fake.last().drop(1006);
    const queued = client.request("b", null);
    const error = await rejection(sent);
    assert.equal(error.code, "disconnected");
    assert.deepEqual(error.detail, { code: 1006, reason: "" });
    t.mock.timers.tick(1000);
    fake.last().open();
    assert.deepEqual(fake.last().sent, [{ event: "b", data: null, id: 2 }]);
    fake.last().receive({ event: "b", id: 2, data: 7 });
    assert.equal(await queued, 7);
  });

  test("close() rejects what is pending with closed and stops for good", async (t) => {
    const { client, fake, states } = setup(t);
    fake.last().open();
    const p = client.request("a", null);
    client.close();
    assert.deepEqual(fake.last().closedWith, { code: 1000, reason: "" });
    assert.equal((await rejection(p)).code, "closed");
    assert.equal(client.state, "closed");
    assert.equal(states.at(-1).code, 1000);
    assert.equal((await rejection(client.request("a", null))).code, "closed");
    t.mock.timers.tick(60000);
    assert.equal(fake.sockets.length, 1);
    client.close(); // idempotent
  });

  test("close() while waiting to reconnect cancels the attempt", (t) => {
    const { client, fake } = setup(t);
    fake.last().drop(1006);
    client.close();
    t.mock.timers.tick(60000);
    assert.equal(fake.sockets.length, 1);
    assert.equal(client.state, "closed");
  });
});

describe("pushes and streams", () => {
  test("on() receives pushes of its event until unsubscribed", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const got = [];
    const off = client.on("chat.message", (m) => got.push(m));
    client.on("other", () => got.push("other"));
    fake.last().receive({ event: "chat.message", data: { text: "hi" } });
    fake.last().receive("not json");
    fake.last().receive({ no: "event" });
    off();
    fake.last().receive({ event: "chat.message", data: { text: "again" } });
    assert.deepEqual(got, [{ text: "hi" }]);
  });

  test("error frames that answer no request go to on('error')", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const errors = [];
    client.on("error", (e) => errors.push(e.code));
    fake.last().receive({ event: "error", id: null, data: { code: "internal_error", message: "x" } });
    assert.deepEqual(errors, ["internal_error"]);
  });

  test("a listener that throws does not stop the others", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const reported = [];
    t.mock.method(console, "error", (e) => reported.push(e.message));
    const got = [];
    client.on("p", () => {
      throw new Error("listener bug");
    });
    client.on("p", (d) => got.push(d));
    fake.last().receive({ event: "p", data: 1 });
    assert.deepEqual(got, [1]);
    assert.deepEqual(reported, ["listener bug"]);
  });

  test("a stream yields the items pushed after its reply", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const stream = client.stream("ticks", { every: 1 });
    assert.deepEqual(fake.last().sent, [{ event: "ticks", data: { every: 1 }, id: 1 }]);
    fake.last().receive({ event: "ticks", id: 1, data: null });
    fake.last().receive({ event: "ticks", data: { n: 1 } });
    const got = [];
    const consumer = (async () => {
      for await (const item of stream) {
        got.push(item.n);
        if (got.length === 3) break;
      }
    })();
    await settle();
    fake.last().receive({ event: "ticks", data: { n: 2 } });
    fake.last().receive({ event: "ticks", data: { n: 3 } });
    await consumer;
    assert.deepEqual(got, [1, 2, 3]);
    // After break the stream's listener is gone: later items are not buffered anywhere.
    assert.equal(client._listeners.has("ticks"), false);
  });

  test("a stream whose request fails throws its error", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const stream = client.stream("ticks", null);
    const next = stream.next();
    fake.last().receive({
      event: "error", id: 1, data: { code: "too_many_streams", message: "at most 64" },
    });
    assert.equal((await rejection(next)).code, "too_many_streams");
    assert.deepEqual(await stream.next(), { value: undefined, done: true });
  });

  test("a stream ends with disconnected when the connection drops", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const stream = client.stream("ticks", null);
    fake.last().receive({ event: "ticks", id: 1, data: null });
    await settle();
    fake.last().receive({ event: "ticks", data: 1 });
    assert.deepEqual(await stream.next(), { value: 1, done: false });
    const next = stream.next();
    fake.last().drop(1006);
    assert.equal((await rejection(next)).code, "disconnected");
  });

  test("closing the client ends a stream with closed", async (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const stream = client.stream("ticks", null);
    const next = stream.next();
    client.close();
    assert.equal((await rejection(next)).code, "closed");
  });
});

describe("state", () => {
  test("connecting -> open -> reconnecting -> open -> closed, each reported once", (t) => {
    const { client, fake, states } = setup(t, { random: () => 0.5 });
    assert.equal(client.state, "connecting");
    fake.last().open();
    fake.last().drop(1012, "restart");
    t.mock.timers.tick(500);
    fake.last().open();
    client.close(1000, "bye");
    assert.deepEqual(states, [
      { state: "open", code: null, reason: null, attempt: 0, delay: null },
      { state: "reconnecting", code: 1012, reason: "restart", attempt: 1, delay: 500 },
      { state: "open", code: null, reason: null, attempt: 0, delay: null },
      { state: "closed", code: 1000, reason: "bye", attempt: 0, delay: null },
    ]);
  });

  test("onState returns an unsubscribe function", (t) => {
    const { client, fake, states } = setup(t);
    const seen = [];
    const off = client.onState((s) => seen.push(s.state));
    fake.last().open();
    off();
    client.close();
    assert.deepEqual(seen, ["open"]);
    assert.equal(states.length, 2);
  });
});
