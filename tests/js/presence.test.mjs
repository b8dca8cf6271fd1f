// Unit tests of wsgate.js's presence views against a fake WebSocket:
// presence.state replaces the entries, presence.diff joins and leaves one entry per meta.
// `node --test tests/js/`.
import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { DEFAULT_RECONNECT, connect } from "../../src/wsgate/static/wsgate.js";
import { fakeWebSockets } from "./fake_websocket.mjs";

function setup(t) {
  t?.mock.timers.enable({ apis: ["setTimeout"] });
  const fake = fakeWebSockets();
  const client = connect("ws://server/presence/lobby", { WebSocket: fake.WebSocket });
  fake.last().open();
  const view = client.presence("lobby");
  const calls = [];
  view.onSync((entries) => calls.push(["sync", entries]));
  view.onJoin((key, current, joined) => calls.push(["join", key, current, joined]));
  view.onLeave((key, current, left) => calls.push(["leave", key, current, left]));
  return { client, fake, view, calls };
}

const state = (entries, group = "lobby") => ({ event: "presence.state", data: { group, entries } });
const diff = (joins, leaves, group = "lobby") => ({
  event: "presence.diff",
  data: { group, joins, leaves },
});

describe("presence", () => {
  test("state replaces the entries and fires onSync", () => {
    const { fake, view, calls, client } = setup();
    assert.equal(client.presence("lobby"), view);
    fake.last().receive(state({ ann: [{ tab: 1 }, { tab: 2 }] }));
    assert.deepEqual(view.list(), { ann: [{ tab: 1 }, { tab: 2 }] });
    fake.last().receive(state({ bob: [{}] }));
    assert.deepEqual(view.list(), { bob: [{}] });
    assert.deepEqual(calls, [
      ["sync", { ann: [{ tab: 1 }, { tab: 2 }] }],
      ["sync", { bob: [{}] }],
    ]);
  });

  test("a key with two entries losing one leaves with the other in current", () => {
    const { fake, view, calls } = setup();
    fake.last().receive(state({ ann: [{ tab: 1, at: "x" }] }));
    fake.last().receive(diff({ ann: [{ tab: 2 }], bob: [{}] }, {}));
    assert.deepEqual(view.list(), { ann: [{ tab: 1, at: "x" }, { tab: 2 }], bob: [{}] });
    // JSON equality, one occurrence per left meta.
    fake.last().receive(diff({}, { ann: [{ tab: 1, at: "x" }] }));
    assert.deepEqual(view.list(), { ann: [{ tab: 2 }], bob: [{}] });
    fake.last().receive(diff({}, { ann: [{ tab: 2 }], bob: [{}] }));
    assert.deepEqual(view.list(), {});
    assert.deepEqual(calls.slice(1), [
      ["join", "ann", [{ tab: 1, at: "x" }, { tab: 2 }], [{ tab: 2 }]],
      ["join", "bob", [{}], [{}]],
      ["leave", "ann", [{ tab: 2 }], [{ tab: 1, at: "x" }]],
      ["leave", "ann", [], [{ tab: 2 }]],
      ["leave", "bob", [], [{}]],
    ]);
  });

  test("two equal metas under one key: a leave removes one of them", () => {
    const { fake, view } = setup();
    fake.last().receive(state({ ann: [{}, {}] }));
    fake.last().receive(diff({}, { ann: [{}] }));
    assert.deepEqual(view.list(), { ann: [{}] });
  });

  test("other groups' events, and leaves of unknown entries, change nothing", () => {
    const { fake, view, calls } = setup();
    fake.last().receive(state({ ann: [{}] }));
    fake.last().receive(state({ zed: [{}] }, "other"));
    fake.last().receive(diff({ zed: [{}] }, {}, "other"));
    fake.last().receive(diff({}, { nobody: [{}] }));
    assert.deepEqual(view.list(), { ann: [{}] });
    assert.equal(calls.length, 1);
  });

  test("after a reconnect the new state replaces the old one", (t) => {
    const { fake, view, calls } = setup(t);
    const first = fake.last();
    first.receive(state({ ann: [{}], bob: [{}] }));
    first.drop(1012);
    t.mock.timers.tick(DEFAULT_RECONNECT.maxDelay);
    assert.notEqual(fake.last(), first);
    fake.last().open();
    fake.last().receive(state({ bob: [{}] }));
    assert.deepEqual(view.list(), { bob: [{}] });
    assert.deepEqual(calls.map((c) => c[0]), ["sync", "sync"]);
  });

  test("removers and close stop the callbacks; a throwing callback does not break others", () => {
    const { fake, view } = setup();
    const seen = [];
    const off = view.onJoin((key) => seen.push(key));
    view.onJoin(() => {
      throw new Error("boom");
    });
    const reported = [];
    const original = globalThis.reportError;
    globalThis.reportError = (e) => reported.push(e.message);
    try {
      fake.last().receive(diff({ ann: [{}] }, {}));
      off();
      fake.last().receive(diff({ bob: [{}] }, {}));
    } finally {
      globalThis.reportError = original;
    }
    assert.deepEqual(seen, ["ann"]);
    assert.deepEqual(reported, ["boom", "boom"]);
    view.close();
    fake.last().receive(diff({ cat: [{}] }, {}));
    assert.deepEqual(Object.keys(view.list()), ["ann", "bob"]);
    assert.throws(() => view.onSync(null), TypeError);
  });
});
