// wsgate.js: the browser (and Node) client for wsgate's wire protocol.
//
//   import { connect } from "/wsgate.js";
//   const client = connect(`ws://${location.host}/chat/lobby?user=ann`);
//   client.onState(({ state }) => status.textContent = state);
//   client.on("chat.message", (msg) => show(msg));
//   const count = await client.request("who", null);            // the reply's data
//   client.send("chat.send", { text: "hi" });                    // no reply expected
//   for await (const tick of client.stream("ticks", null)) ...   // a stream's items
//   client.onRecover(({ group, recovered, missed }) => ...);     // after a reconnect
//
// No dependencies; an ES module; types in wsgate.d.ts beside it.

/** What `connect()` uses unless `options.reconnect` says otherwise. */
export const DEFAULT_RECONNECT = Object.freeze({
  initialDelay: 1000, // ms before the first attempt (the cap of its jitter)
  maxDelay: 5000, // the delay never exceeds this
  factor: 2, // the cap grows by this factor with every failed attempt
  jitter: 1, // 1: full jitter (a delay drawn uniformly in [0, cap]); 0: none
  retryCodes: Object.freeze([]), // close codes that reconnect although they would stop
  maxAttempts: Infinity, // failed attempts in a row before giving up
});

/** Frames queued while (re)connecting, unless `options.queueSize` says otherwise. */
export const DEFAULT_QUEUE_SIZE = 100;
/** Milliseconds `request()` and `stream()` wait for the reply by default. */
export const DEFAULT_TIMEOUT = 10000;
/** Milliseconds a connection attempt may take before it counts as failed. */
export const DEFAULT_CONNECT_TIMEOUT = 10000;

const OPEN = 1;

/** The handshake's query parameter that presents the client's positions. */
export const SINCE_PARAM = "wsgate.since";
/** The event of the frame that says whether a group's missed frames were recovered. */
export const RECOVERY_EVENT = "wsgate.recovery";

/**
 * A request that failed: an error frame from the server (its `code`, `message` and
 * `detail`), or the client's own codes: "timeout", "disconnected" (the connection dropped
 * after the frame was sent and before its reply), "closed" (the client is closed),
 * "queue_full" (the frame could not even be queued).
 */
export class WsgateError extends Error {
  constructor(code, message, detail = null, event = undefined) {
    super(message);
    this.name = "WsgateError";
    this.code = code;
    this.detail = detail;
    this.event = event;
  }
}

/**
 * The delay in ms before reconnect attempt `attempt` (1, 2, ...): the cap
 * `min(maxDelay, initialDelay * factor ** (attempt - 1))`, minus a random share of it
 * (`jitter` 1: anywhere in [0, cap]; 0: exactly the cap).
 */
export function backoffDelay(attempt, options = DEFAULT_RECONNECT, random = Math.random) {
  const o = { ...DEFAULT_RECONNECT, ...options };
  const cap = Math.min(o.maxDelay, o.initialDelay * o.factor ** Math.max(0, attempt - 1));
  return Math.round(cap * (1 - o.jitter * random()));
}

/**
 * Whether a connection closed with `code` should be reopened: not after 1000 (a normal
 * closure by the server), 1008 (policy violation) or 4000-4999 (the application's own
 * refusals), unless `retryCodes` lists the code; after anything else, yes.
 */
export function shouldReconnect(code, options = DEFAULT_RECONNECT) {
  const retry = options.retryCodes ?? DEFAULT_RECONNECT.retryCodes;
  if (retry.includes(code)) return true;
  return !(code === 1000 || code === 1008 || (code >= 4000 && code <= 4999));
}

function positive(value, name) {
  if (typeof value !== "number" || !(value >= 0)) {
    throw new TypeError(`wsgate: ${name} must be a number >= 0, got ${String(value)}`);
  }
  return value;
}

function reconnectOptions(value) {
  if (value === false) return null;
  if (value === undefined || value === true) return { ...DEFAULT_RECONNECT };
  if (typeof value !== "object" || value === null) {
    throw new TypeError("wsgate: reconnect must be false, true or an object of options");
  }
  const o = { ...DEFAULT_RECONNECT, ...value };
  positive(o.initialDelay, "reconnect.initialDelay");
  positive(o.maxDelay, "reconnect.maxDelay");
  if (!(o.factor >= 1)) throw new TypeError(`wsgate: reconnect.factor must be >= 1, got ${o.factor}`);
  if (!(o.jitter >= 0 && o.jitter <= 1)) {
    throw new TypeError(`wsgate: reconnect.jitter must be between 0 and 1, got ${o.jitter}`);
  }
  if (!Array.isArray(o.retryCodes)) throw new TypeError("wsgate: reconnect.retryCodes must be an array");
  positive(o.maxAttempts, "reconnect.maxAttempts");
  return o;
}

function report(error) {
  // A listener's exception must not break the client: report it like the browser would.
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else console.error(error);
}

function isPosition(group, offset, epoch) {
  return typeof group === "string" && Number.isSafeInteger(offset) && offset >= 0
    && typeof epoch === "string";
}

function seedPositions(value) {
  const positions = new Map();
  if (value === undefined || value === null) return positions;
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new TypeError("wsgate: positions must be an object {group: {offset, epoch}} (client.positions())");
  }
  for (const [group, pos] of Object.entries(value)) {
    if (typeof pos !== "object" || pos === null || !isPosition(group, pos.offset, pos.epoch)) {
      throw new TypeError(
        `wsgate: positions[${JSON.stringify(group)}] must be {offset: integer >= 0, epoch: string}, ` +
          `got ${JSON.stringify(pos)}`,
      );
    }
    positions.set(group, { offset: pos.offset, epoch: pos.epoch });
  }
  return positions;
}

/**
 * `url` with the query parameter `wsgate.since` presenting `positions` (an object
 * `{group: {offset, epoch}}`, or a Map of them): `{"<group>": [offset, "epoch"], ...}` as
 * JSON, URL-encoded. The URL's other query parameters (and its fragment) are kept, a
 * previous `wsgate.since` is replaced; with no positions, `url` is returned unchanged.
 */
export function withSince(url, positions) {
  const entries = positions instanceof Map ? [...positions] : Object.entries(positions ?? {});
  if (entries.length === 0) return url;
  const since = {};
  for (const [group, pos] of entries) since[group] = [pos.offset, pos.epoch];
  const hash = url.indexOf("#");
  const fragment = hash >= 0 ? url.slice(hash) : "";
  const rest = hash >= 0 ? url.slice(0, hash) : url;
  const mark = rest.indexOf("?");
  const base = mark >= 0 ? rest.slice(0, mark) : rest;
  const params = mark >= 0 ? rest.slice(mark + 1).split("&").filter((part) => {
    if (part === "") return false;
    const key = part.split("=", 1)[0];
    let name = key;
    try {
      name = decodeURIComponent(key.replace(/\+/g, " "));
    } catch {
      // not percent-encoded properly: compare as it is
    }
    return name !== SINCE_PARAM;
  }) : [];
  params.push(`${SINCE_PARAM}=${encodeURIComponent(JSON.stringify(since))}`);
  return `${base}?${params.join("&")}${fragment}`;
}

/** The entries of one presence group, kept from the server's `presence.state` and
 * `presence.diff` events (see `Client.presence`). */
class PresenceView {
  constructor(client, group) {
    this.group = group;
    this._entries = new Map(); // key -> [meta, ...]
    this._sync = new Set();
    this._join = new Set();
    this._leave = new Set();
    this._offs = [
      client.on("presence.state", (data) => {
        if (data && data.group === group) this._state(data.entries ?? {});
      }),
      client.on("presence.diff", (data) => {
        if (data && data.group === group) this._diff(data.joins ?? {}, data.leaves ?? {});
      }),
    ];
  }

  /** The current entries, `{key: [meta, ...]}` (a copy). */
  list() {
    const out = {};
    for (const [key, metas] of this._entries) out[key] = [...metas];
    return out;
  }

  /** Calls `fn(entries)` after every `presence.state` (also after a reconnect). */
  onSync(fn) {
    return listen(this._sync, fn, "onSync");
  }

  /** Calls `fn(key, current, joined)` when entries join under `key`. */
  onJoin(fn) {
    return listen(this._join, fn, "onJoin");
  }

  /** Calls `fn(key, current, left)` when entries leave `key` (`current` holds the entries
   * it keeps: a user with two tabs closing one still has the other). */
  onLeave(fn) {
    return listen(this._leave, fn, "onLeave");
  }

  /** Stops following the group's events. */
  close() {
    for (const off of this._offs) off();
    this._offs = [];
  }

  _state(entries) {
    this._entries = new Map();
    for (const [key, metas] of Object.entries(entries)) {
      if (Array.isArray(metas) && metas.length) this._entries.set(key, [...metas]);
    }
    const copy = this.list();
    fire(this._sync, [copy]);
  }

  _diff(joins, leaves) {
    for (const [key, metas] of Object.entries(joins)) {
      if (!Array.isArray(metas) || !metas.length) continue;
      const current = [...(this._entries.get(key) ?? []), ...metas];
      this._entries.set(key, current);
      fire(this._join, [key, [...current], [...metas]]);
    }
    for (const [key, metas] of Object.entries(leaves)) {
      if (!Array.isArray(metas) || !metas.length) continue;
      const current = [...(this._entries.get(key) ?? [])];
      const left = [];
      for (const meta of metas) {
        // One occurrence per left entry, by JSON equality.
        const text = JSON.stringify(meta);
        const i = current.findIndex((m) => JSON.stringify(m) === text);
        if (i >= 0) left.push(...current.splice(i, 1));
      }
      if (!left.length) continue;
      if (current.length) this._entries.set(key, current);
      else this._entries.delete(key);
      fire(this._leave, [key, [...current], left]);
    }
  }
}

function listen(set, fn, name) {
  if (typeof fn !== "function") throw new TypeError(`wsgate: presence ${name}(fn) needs a function`);
  const entry = (...args) => fn(...args);
  set.add(entry);
  return () => set.delete(entry);
}

function fire(set, args) {
  for (const fn of [...set]) {
    try {
      fn(...args);
    } catch (error) {
      report(error);
    }
  }
}

class Client {
  constructor(url, options = {}) {
    if (typeof url !== "function" && typeof url !== "string") {
      throw new TypeError("wsgate: connect(url) takes a URL string or a function returning one");
    }
    this._url = url;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (typeof this._WebSocket !== "function") {
      throw new TypeError("wsgate: no WebSocket implementation here; pass options.WebSocket");
    }
    this._protocols = options.protocols;
    this._reconnect = reconnectOptions(options.reconnect);
    this._queueSize = positive(options.queueSize ?? DEFAULT_QUEUE_SIZE, "queueSize");
    this._timeout = options.timeout === undefined ? DEFAULT_TIMEOUT : options.timeout; // null: none
    this._connectTimeout = positive(
      options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT,
      "connectTimeout",
    );
    this._random = options.random ?? Math.random;
    this._state = "connecting";
    this._ws = null;
    this._timer = null;
    this._attempt = 0;
    this._nextId = 1;
    this._queue = []; // {text, id} frames waiting for the connection
    this._pending = new Map(); // id -> {event, resolve, reject, timer, sent}
    this._streams = new Set();
    this._listeners = new Map(); // event -> Set of fns
    this._stateListeners = new Set();
    this._positions = seedPositions(options.positions); // group -> {offset, epoch}
    this._recoverListeners = new Set();
    this._open();
  }

  /** The URL of the current (or next) connection attempt, as given (the attempt adds
   * `wsgate.since` when the client has positions). */
  get url() {
    return typeof this._url === "function" ? String(this._url()) : this._url;
  }

  /** "connecting" | "open" | "reconnecting" | "closed". */
  get state() {
    return this._state;
  }

  /** Sends a frame without id (no reply expected). Returns true if it was written to the
   * socket now, false if it is queued until the connection opens; throws a WsgateError
   * "queue_full" or "closed" if it was not accepted. */
  send(event, data) {
    const frame = { event };
    if (data !== undefined) frame.data = data;
    return this._write(JSON.stringify(frame), null);
  }

  /** Sends a frame with a fresh id; resolves with its reply's data, rejects with a
   * WsgateError (an error frame, "timeout", "disconnected", "closed", "queue_full"). */
  request(event, data, options = {}) {
    return new Promise((resolve, reject) => {
      const id = this._nextId++;
      const frame = { event, data: data === undefined ? null : data, id };
      const entry = { event, resolve, reject, timer: null, sent: false };
      try {
        entry.sent = this._write(JSON.stringify(frame), id);
      } catch (error) {
        reject(error);
        return;
      }
      this._pending.set(id, entry);
      const timeout = options.timeout === undefined ? this._timeout : options.timeout;
      if (timeout !== null && Number.isFinite(timeout)) {
        entry.timer = setTimeout(() => {
          this._pending.delete(id);
          this._unqueue(id); // a request that timed out is never sent later
          reject(new WsgateError("timeout", `no reply to "${event}" within ${timeout} ms`, null, event));
        }, timeout);
      }
    });
  }

  /** Calls `fn(data)` for every push and stream item of `event` (and, for "error", for
   * error frames that answer no request). Returns a function that unsubscribes. */
  on(event, fn) {
    if (typeof fn !== "function") throw new TypeError("wsgate: on(event, fn) needs a function");
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    const entry = (data) => fn(data); // a distinct entry: the same fn may be added twice
    set.add(entry);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this._listeners.get(event) === set) this._listeners.delete(event);
    };
  }

  /** Calls `fn({state, code, reason, attempt, delay})` on every state change. Returns a
   * function that unsubscribes. */
  onState(fn) {
    if (typeof fn !== "function") throw new TypeError("wsgate: onState(fn) needs a function");
    const entry = (change) => fn(change);
    this._stateListeners.add(entry);
    return () => this._stateListeners.delete(entry);
  }

  /** Calls `fn({group, recovered, missed})` for every `wsgate.recovery` frame: after a
   * reconnect, once for each group the client had a position in and was subscribed to
   * again, after the frames it missed there were replayed (`recovered` true, `missed` of
   * them) or could not be (`recovered` false: the frames since are lost; e.g. the
   * server restarted, or the client was away longer than the history keeps). Returns a
   * function that unsubscribes. */
  onRecover(fn) {
    if (typeof fn !== "function") throw new TypeError("wsgate: onRecover(fn) needs a function");
    const entry = (recovery) => fn(recovery);
    this._recoverListeners.add(entry);
    return () => this._recoverListeners.delete(entry);
  }

  /** The last position the client saw in each group with history: a copy,
   * `{group: {offset, epoch}}`. Presented in every (re)connect's URL as `wsgate.since`;
   * save it (e.g. in sessionStorage) and pass it to `connect(url, {positions})` to
   * recover across a page reload. */
  positions() {
    const out = {};
    for (const [group, pos] of this._positions) out[group] = { offset: pos.offset, epoch: pos.epoch };
    return out;
  }

  /** The entries of presence group `group`, kept up to date from the server's
   * `presence.state` and `presence.diff` events (the server subscribes the connection:
   * `Presence.subscribe(ws, group)`). The same object for the same group. */
  presence(group) {
    if (typeof group !== "string" || !group) {
      throw new TypeError("wsgate: presence(group) needs a non-empty group name");
    }
    if (!this._presence) this._presence = new Map();
    let view = this._presence.get(group);
    if (!view) this._presence.set(group, (view = new PresenceView(this, group)));
    return view;
  }

  /** Starts a stream: sends the request, and yields the items pushed as `event` after its
   * (null) reply. Ends when the consumer stops (the server's stream keeps running until
   * the connection ends: the protocol has no way to cancel it) or the client is closed;
   * throws a WsgateError when the request fails or the connection drops. */
  stream(event, data, options = {}) {
    const items = [];
    let waiting = null;
    let done = false;
    let failure = null;
    const handle = { started: false, finish: null };
    const off = this.on(event, (item) => {
      if (waiting) {
        const w = waiting;
        waiting = null;
        w.resolve({ value: item, done: false });
      } else {
        items.push(item);
      }
    });
    const finish = (error) => {
      if (done) return;
      done = true;
      failure = error;
      off();
      this._streams.delete(handle);
      if (waiting) {
        const w = waiting;
        waiting = null;
        if (error) w.reject(error);
        else w.resolve({ value: undefined, done: true });
        failure = null;
      }
    };
    handle.finish = finish;
    this._streams.add(handle);
    this.request(event, data, options).then(
      () => {
        handle.started = true;
      },
      (error) => finish(error),
    );
    const iterator = {
      next() {
        if (items.length) return Promise.resolve({ value: items.shift(), done: false });
        if (done) {
          const error = failure;
          failure = null;
          return error ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
        }
        return new Promise((resolve, reject) => {
          waiting = { resolve, reject };
        });
      },
      return() {
        items.length = 0;
        finish(null);
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]() {
        return iterator;
      },
    };
    return iterator;
  }

  /** Closes the connection for good (no reconnect): queued and unanswered requests are
   * rejected with "closed". Idempotent. */
  close(code = 1000, reason = "") {
    if (this._state === "closed") return;
    const ws = this._ws;
    this._ws = null;
    if (ws) {
      try {
        ws.close(code, reason);
      } catch (error) {
        report(error);
      }
    }
    this._final(code, reason);
  }

  // -- internals ---------------------------------------------------------------------

  _open() {
    // A function is called again for every attempt; the positions seen so far go with it.
    const url = withSince(this.url, this._positions);
    const ws = this._protocols === undefined
      ? new this._WebSocket(url)
      : new this._WebSocket(url, this._protocols);
    this._ws = ws;
    // An attempt that neither opens nor fails in time (a silent network) counts as failed.
    const deadline = setTimeout(() => fail(ws), this._connectTimeout);
    const fail = (socket) => {
      clearTimeout(deadline);
      if (this._ws !== socket) return;
      // Before close(): Node's WebSocket fires "error" from inside close() on a socket
      // that is not open, which would come back here and fail the attempt again.
      this._ws = null;
      try {
        socket.close();
      } catch {
        // already closing
      }
      this._closed(1006, "");
    };
    ws.onopen = () => {
      clearTimeout(deadline);
      if (this._ws !== ws) return;
      this._attempt = 0;
      this._state = "open"; // before the flush, so that nothing is queued behind it
      const queue = this._queue;
      this._queue = [];
      for (const frame of queue) {
        ws.send(frame.text);
        if (frame.id !== null) {
          const entry = this._pending.get(frame.id);
          if (entry) entry.sent = true;
        }
      }
      this._emitState({ state: "open" });
    };
    ws.onmessage = (event) => {
      if (this._ws === ws && typeof event.data === "string") this._receive(event.data);
    };
    ws.onclose = (event) => {
      clearTimeout(deadline);
      if (this._ws === ws) this._closed(event.code, event.reason);
    };
    // Browsers follow an error with a close event; some implementations (Node 20's) never
    // close a socket whose connection failed. An error outside the open state ends the
    // attempt here (as 1006, the code a browser reports for it); the close event, if it
    // comes, is then ignored.
    ws.onerror = () => {
      if (ws.readyState !== OPEN) fail(ws);
    };
  }

  _write(text, id) {
    if (this._state === "closed") {
      throw new WsgateError("closed", "the client is closed; connect() again");
    }
    const ws = this._ws;
    if (this._state === "open" && ws && ws.readyState === OPEN) {
      ws.send(text);
      return true;
    }
    if (this._queue.length >= this._queueSize) {
      throw new WsgateError(
        "queue_full",
        `${this._queue.length} frames already wait for the connection (queueSize); not sent`,
      );
    }
    this._queue.push({ text, id });
    return false;
  }

  _unqueue(id) {
    const i = this._queue.findIndex((frame) => frame.id === id);
    if (i >= 0) this._queue.splice(i, 1);
  }

  _receive(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return; // not a wire-protocol frame
    }
    if (typeof frame !== "object" || frame === null || typeof frame.event !== "string") return;
    // A frame of a group with history: its position is stored before anyone sees the
    // frame (handlers get its data only).
    const pos = frame.pos;
    if (typeof pos === "object" && pos !== null && isPosition(pos.group, pos.offset, pos.epoch)) {
      this._positions.set(pos.group, { offset: pos.offset, epoch: pos.epoch });
    }
    if (frame.event === RECOVERY_EVENT && (frame.id === undefined || frame.id === null)) {
      this._recovered(frame.data);
    }
    const id = frame.id;
    if (id !== undefined && id !== null && this._pending.has(id)) {
      const entry = this._pending.get(id);
      this._pending.delete(id);
      clearTimeout(entry.timer);
      if (frame.event === "error") {
        const d = frame.data ?? {};
        entry.reject(new WsgateError(String(d.code), String(d.message), d.detail ?? null, entry.event));
      } else {
        entry.resolve(frame.data === undefined ? null : frame.data);
      }
      return;
    }
    const listeners = this._listeners.get(frame.event);
    if (!listeners) return;
    const data = frame.data === undefined ? null : frame.data;
    for (const fn of [...listeners]) {
      try {
        fn(data);
      } catch (error) {
        report(error);
      }
    }
  }

  _recovered(data) {
    if (typeof data !== "object" || data === null) return;
    const { group, recovered, missed, offset, epoch } = data;
    if (!isPosition(group, offset, epoch)) return;
    this._positions.set(group, { offset, epoch }); // also when not recovered: from here on
    const recovery = { group, recovered: recovered === true, missed: Number(missed) || 0 };
    for (const fn of [...this._recoverListeners]) {
      try {
        fn({ ...recovery });
      } catch (error) {
        report(error);
      }
    }
  }

  _closed(code, reason) {
    this._ws = null;
    const lost = (what) =>
      new WsgateError("disconnected", `the connection closed (${code}) before ${what}`, { code, reason });
    for (const [id, entry] of this._pending) {
      if (!entry.sent) continue; // still queued: sent when the connection opens again
      this._pending.delete(id);
      clearTimeout(entry.timer);
      entry.reject(lost(`the reply to "${entry.event}"`));
    }
    for (const stream of [...this._streams]) {
      if (stream.started) stream.finish(lost("the end of the stream"));
    }
    const r = this._reconnect;
    if (!r || !shouldReconnect(code, r) || this._attempt >= r.maxAttempts) {
      this._final(code, reason);
      return;
    }
    this._attempt += 1;
    const delay = backoffDelay(this._attempt, r, this._random);
    this._state = "reconnecting";
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._state === "reconnecting") this._open();
    }, delay);
    this._emitState({ state: "reconnecting", code, reason, attempt: this._attempt, delay });
  }

  _final(code, reason) {
    clearTimeout(this._timer);
    this._timer = null;
    this._state = "closed";
    // What was never sent, or is still unanswered, fails with "closed": no more attempts.
    const error = new WsgateError("closed", `the connection closed (${code}) for good`, {
      code,
      reason,
    });
    const pending = [...this._pending.values()];
    this._pending.clear();
    this._queue = [];
    for (const entry of pending) {
      clearTimeout(entry.timer);
      entry.reject(error);
    }
    for (const stream of [...this._streams]) stream.finish(error);
    this._emitState({ state: "closed", code, reason });
  }

  _emitState(change) {
    const full = { code: null, reason: null, attempt: this._attempt, delay: null, ...change };
    for (const fn of [...this._stateListeners]) {
      try {
        fn(full);
      } catch (error) {
        report(error);
      }
    }
  }
}

/**
 * Opens a connection to a wsgate endpoint and returns its client. `url` is a string, or
 * a function called before every attempt (to put a fresh token or a changed user name
 * in the query string). The connection is
 * reopened with exponential backoff and full jitter after it drops (see
 * `shouldReconnect` for the close codes that stop it); frames sent meanwhile wait in a
 * bounded queue and are written when it opens.
 *
 * Recovery: the client keeps the last position (`pos`) it saw in each group with history
 * and presents them in the query parameter `wsgate.since` of every attempt (see
 * `withSince`); the server replays what it missed and says so in a `wsgate.recovery`
 * frame (`onRecover`, also dispatched to `on("wsgate.recovery")` with its whole data).
 *
 * Options: `reconnect` (false, or {initialDelay, maxDelay, factor, jitter, retryCodes,
 * maxAttempts}), `protocols` (subprotocols to offer), `queueSize` (default 100),
 * `timeout` (the default request timeout in ms, 10000; null for none), `connectTimeout`
 * (ms an attempt may take, 10000), `WebSocket` (the
 * implementation, e.g. the `ws` package in Node), `random` (the jitter's source),
 * `positions` (`{group: {offset, epoch}}`, e.g. a saved `client.positions()`: presented
 * from the first attempt on, to recover across a page reload).
 * Throws a TypeError for a bad option.
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}
