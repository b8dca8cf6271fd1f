// Unit tests of wsgate.js's history recovery against a fake WebSocket: positions from
// `pos`, `wsgate.since` in the reconnect URL, `wsgate.recovery` frames. `node --test tests/js/`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RECOVERY_EVENT, SINCE_PARAM, connect, withSince } from "../../src/wsgate/static/wsgate.js";
import { fakeWebSockets } from "./fake_websocket.mjs";

const NOW = { reconnect: { initialDelay: 0, jitter: 0 } };

function setup(t, url = "ws://server/rooms/1?user=ann", options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const fake = fakeWebSockets();
  const client = connect(url, { WebSocket: fake.WebSocket, ...NOW, ...options });
  return { client, fake };
}

/** The positions a socket's URL presents (null: no wsgate.since). */
function since(socket) {
  const raw = new URL(socket.url).searchParams.get(SINCE_PARAM);
  return raw === null ? null : JSON.parse(raw);
}

function framed(event, data, group, offset, epoch = "e1") {
  return { event, data, pos: { group, offset, epoch } };
}

function reconnect(t, fake) {
  fake.last().drop(1012, "restart");
  t.mock.timers.tick(0);
  return fake.last();
}

describe("positions", () => {
  test("a frame's pos is stored before its handlers run, and they get its data only", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const seen = [];
    client.on("chat.message", (data) => seen.push({ data, positions: client.positions() }));
    fake.last().receive(framed("chat.message", { text: "hi" }, "room:1", 7));
    assert.deepEqual(seen, [
      { data: { text: "hi" }, positions: { "room:1": { offset: 7, epoch: "e1" } } },
    ]);
    // A frame without listeners still moves the position; other groups are kept apart.
    fake.last().receive(framed("other", null, "room:1", 8));
    fake.last().receive(framed("x", 1, "room:2", 1, "e2"));
    assert.deepEqual(client.positions(), {
      "room:1": { offset: 8, epoch: "e1" },
      "room:2": { offset: 1, epoch: "e2" },
    });
  });

  test("positions() is a copy", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    fake.last().receive(framed("m", 1, "g", 1));
    const copy = client.positions();
    copy.g.offset = 99;
    delete copy.g;
    assert.deepEqual(client.positions(), { g: { offset: 1, epoch: "e1" } });
  });

  test("a malformed pos is ignored and the frame still delivered", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    const seen = [];
    client.on("m", (data) => seen.push(data));
    fake.last().receive({ event: "m", data: 1, pos: { group: "g", offset: "3", epoch: "e" } });
    fake.last().receive({ event: "m", data: 2, pos: "g" });
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(client.positions(), {});
  });
});

describe("wsgate.since", () => {
  test("the first connect presents nothing; a reconnect presents what was seen", (t) => {
    const { fake } = setup(t);
    assert.equal(since(fake.last()), null);
    assert.equal(fake.last().url, "ws://server/rooms/1?user=ann");
    fake.last().open();
    fake.last().receive(framed("m", 1, "room:1", 3, "a1b2"));
    fake.last().receive(framed("m", 1, "room:2", 5, "c3d4"));
    const next = reconnect(t, fake);
    const url = new URL(next.url);
    assert.equal(url.pathname, "/rooms/1");
    assert.equal(url.searchParams.get("user"), "ann");
    assert.deepEqual(since(next), { "room:1": [3, "a1b2"], "room:2": [5, "c3d4"] });
  });

  test("a reconnect without positions leaves the URL as it is", (t) => {
    const { fake } = setup(t);
    fake.last().open();
    assert.equal(reconnect(t, fake).url, "ws://server/rooms/1?user=ann");
  });

  test("other query parameters are kept and a previous wsgate.since is replaced", () => {
    const positions = { "room:1": { offset: 2, epoch: "e" } };
    const url = withSince("ws://h/p?a=1&wsgate.since=%7B%7D&b=x%20y#frag", positions);
    assert.equal(
      url,
      `ws://h/p?a=1&b=x%20y&wsgate.since=${encodeURIComponent('{"room:1":[2,"e"]}')}#frag`,
    );
    assert.equal(withSince("ws://h/p", positions).split("?")[1].startsWith(SINCE_PARAM), true);
    assert.equal(withSince("ws://h/p?a=1", {}), "ws://h/p?a=1");
    const again = new URL(withSince(url, { g: { offset: 0, epoch: "f" } }));
    assert.deepEqual(again.searchParams.getAll(SINCE_PARAM), ['{"g":[0,"f"]}']);
  });

  test("a URL function is called for every attempt and gets the parameter", (t) => {
    let n = 0;
    const { fake } = setup(t, () => `ws://server/rooms/1?token=t${++n}`);
    fake.last().open();
    fake.last().receive(framed("m", 1, "room:1", 4));
    const next = reconnect(t, fake);
    const url = new URL(next.url);
    assert.equal(url.searchParams.get("token"), "t2");
    assert.deepEqual(since(next), { "room:1": [4, "e1"] });
  });

  test("seeded positions are presented from the first attempt, and validated", (t) => {
    const saved = { "room:1": { offset: 12, epoch: "a1b2c3d4e5f6a7b8" } };
    const { client, fake } = setup(t, "ws://server/rooms/1", { positions: saved });
    assert.deepEqual(since(fake.last()), { "room:1": [12, "a1b2c3d4e5f6a7b8"] });
    saved["room:1"].offset = 0; // the client keeps its own copy
    assert.deepEqual(client.positions(), { "room:1": { offset: 12, epoch: "a1b2c3d4e5f6a7b8" } });
    const fake2 = fakeWebSockets();
    for (const bad of [[1], "x", { g: { offset: -1, epoch: "e" } }, { g: { offset: 1 } }]) {
      assert.throws(
        () => connect("ws://server/", { WebSocket: fake2.WebSocket, positions: bad }),
        /wsgate: positions/,
      );
    }
  });
});

describe("wsgate.recovery", () => {
  test("onRecover gets {group, recovered, missed}; the position becomes the frame's", (t) => {
    const { client, fake } = setup(t);
    fake.last().open();
    fake.last().receive(framed("m", 1, "room:1", 3, "old"));
    const socket = reconnect(t, fake);
    socket.open();
    const recoveries = [];
    const raw = [];
    const off = client.onRecover((r) => recoveries.push({ ...r, positions: client.positions() }));
    client.on(RECOVERY_EVENT, (data) => raw.push(data));
    const data = { group: "room:1", recovered: false, missed: 0, offset: 0, epoch: "new" };
    socket.receive({ event: RECOVERY_EVENT, data });
    assert.deepEqual(recoveries, [
      {
        group: "room:1",
        recovered: false,
        missed: 0,
        positions: { "room:1": { offset: 0, epoch: "new" } },
      },
    ]);
    assert.deepEqual(raw, [data]);
    // Stored although not recovered: the next reconnect presents it.
    const third = reconnect(t, fake);
    assert.deepEqual(since(third), { "room:1": [0, "new"] });
    third.open();
    off();
    third.receive({ event: RECOVERY_EVENT, data: { ...data, recovered: true, missed: 2, offset: 2 } });
    assert.equal(recoveries.length, 1);
    assert.deepEqual(client.positions(), { "room:1": { offset: 2, epoch: "new" } });
  });

  test("replayed frames, then the recovery frame, in order; a listener's error is reported", (t) => {
    const { client, fake } = setup(t);
    const errors = [];
    t.mock.method(console, "error", (e) => errors.push(e));
    const saved = globalThis.reportError;
    globalThis.reportError = undefined;
    t.after(() => {
      globalThis.reportError = saved;
    });
    fake.last().open();
    const order = [];
    client.on("m", (data) => order.push(["m", data]));
    client.onRecover(() => {
      throw new Error("boom");
    });
    client.onRecover((r) => order.push(["recover", r]));
    fake.last().receive(framed("m", 1, "g", 1));
    const socket = reconnect(t, fake);
    socket.open();
    socket.receive(framed("m", 2, "g", 2));
    socket.receive(framed("m", 3, "g", 3));
    socket.receive({
      event: RECOVERY_EVENT,
      data: { group: "g", recovered: true, missed: 2, offset: 3, epoch: "e1" },
    });
    assert.deepEqual(order, [
      ["m", 1],
      ["m", 2],
      ["m", 3],
      ["recover", { group: "g", recovered: true, missed: 2 }],
    ]);
    assert.equal(errors.length, 1);
    assert.throws(() => client.onRecover(1), /onRecover\(fn\) needs a function/);
  });
});

describe("a failed attempt", () => {
  test("an error fired from inside close() fails the attempt once", (t) => {
    // Node's WebSocket does that on a socket whose handshake was refused (HTTP 503).
    const { client, fake } = setup(t);
    const states = [];
    client.onState((change) => states.push(change.state));
    const socket = fake.last();
    socket.close = function close(code, reason) {
      this.closedWith = { code, reason };
      this.onerror?.({});
    };
    socket.onerror({});
    assert.deepEqual(states, ["reconnecting"]);
    t.mock.timers.tick(0);
    assert.equal(fake.sockets.length, 2);
    assert.equal(client.state, "reconnecting");
  });
});
