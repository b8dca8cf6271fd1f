// Types for wsgate.js, the client of wsgate's wire protocol.
//
// Describe a gateway with two maps and pass them to connect():
//
//   interface ChatEvents {
//     "chat.send": { data: { text: string }; reply: null; item: never };
//     "who": { data: null; reply: { room: string; members: number }; item: never };
//   }
//   interface ChatPushes { "chat.message": { room: string; user: string; text: string } }
//   const client = connect<ChatEvents, ChatPushes>(url);
//   const who = await client.request("who", null);   // { room: string; members: number }
//
// Without type arguments every event name is accepted and data is `unknown`.

/** One event a client may send: the `data` it carries, the `reply`'s data, and the
 * `item` type if its handler is a stream (`never` otherwise). */
export interface EventSpec {
  data: unknown;
  reply: unknown;
  item: unknown;
}

/** The connection's state: "connecting" (the first attempt), "open", "reconnecting"
 * (waiting for or making another attempt), "closed" (for good). */
export type ClientState = "connecting" | "open" | "reconnecting" | "closed";

/** What `onState` listeners receive on every change. */
export interface StateChange {
  state: ClientState;
  /** The close code that caused "reconnecting" or "closed"; null otherwise. */
  code: number | null;
  /** The close reason that came with `code`; null otherwise. */
  reason: string | null;
  /** Reconnect attempts in a row so far (0 once open). */
  attempt: number;
  /** Milliseconds until the next attempt ("reconnecting"); null otherwise. */
  delay: number | null;
}

/** The last position a client saw in a group with history: the frame's offset and the
 * group's epoch. */
export interface Position {
  offset: number;
  epoch: string;
}

/** The positions of a client, one per group: `client.positions()`, and what
 * `connect(url, {positions})` takes. */
export type Positions = Record<string, Position>;

/** What `onRecover` listeners receive for each `wsgate.recovery` frame. */
export interface Recovery {
  /** The group the client was subscribed to again. */
  group: string;
  /** true: every frame missed since the client's position was replayed (before this);
   * false: they are lost (another epoch, or older than the history keeps). */
  recovered: boolean;
  /** How many frames were replayed. */
  missed: number;
}

/** The whole data of a `wsgate.recovery` frame (what `on("wsgate.recovery")` gets). */
export interface RecoveryData extends Recovery {
  /** The client's position in the group from now on. */
  offset: number;
  epoch: string;
}

/** Exponential backoff with jitter between reconnect attempts. */
export interface ReconnectOptions {
  /** Ms before the first attempt (the cap of its jitter). Default 1000. */
  initialDelay?: number;
  /** The largest delay in ms. Default 5000. */
  maxDelay?: number;
  /** The cap grows by this factor per failed attempt. Default 2. */
  factor?: number;
  /** 1: full jitter (uniform in [0, cap]); 0: none. Default 1. */
  jitter?: number;
  /** Close codes that reconnect although they would stop (1000, 1008, 4000-4999). */
  retryCodes?: readonly number[];
  /** Failed attempts in a row before the client gives up ("closed"). Default Infinity. */
  maxAttempts?: number;
}

/** The part of the WebSocket API the client uses (the browser's, or Node's `ws`). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface WebSocketConstructor {
  new (url: string, protocols?: string | string[]): WebSocketLike;
}

export interface ConnectOptions {
  /** false: never reconnect. Default: reconnect with DEFAULT_RECONNECT. */
  reconnect?: boolean | ReconnectOptions;
  /** Subprotocols to offer in the handshake. */
  protocols?: string | string[];
  /** Frames kept while (re)connecting; beyond it send/request fail with "queue_full".
   * Default 100. */
  queueSize?: number;
  /** The default request timeout in ms (10000); null for none. */
  timeout?: number | null;
  /** Ms a connection attempt may take before it counts as failed (10000). */
  connectTimeout?: number;
  /** The WebSocket implementation (default: globalThis.WebSocket). */
  WebSocket?: WebSocketConstructor;
  /** The jitter's random source, in [0, 1). Default Math.random. */
  random?: () => number;
  /** Positions to present from the first attempt on (e.g. a `client.positions()` saved
   * in sessionStorage before a page reload). Default: none. */
  positions?: Positions;
}

export interface RequestOptions {
  /** Ms to wait for the reply, counted from the call (queueing included); null for none. */
  timeout?: number | null;
}

/** The data of an error frame. */
export interface ErrorData {
  code: string;
  message: string;
  detail: unknown;
}

/** A request that failed: an error frame's `code`, `message`, `detail`, or the client's
 * own codes "timeout", "disconnected", "closed", "queue_full". */
export class WsgateError extends Error {
  constructor(code: string, message: string, detail?: unknown, event?: string);
  readonly code: string;
  readonly detail: unknown;
  /** The event of the request that failed, if any. */
  readonly event: string | undefined;
}

/** The constraint on an event map: every property an EventSpec. Written as a mapped type
 * over the map itself (not `Record<string, EventSpec>`) so that interfaces, which have no
 * implicit index signature, are accepted as well as type aliases. */
export type EventMap<Events> = { [K in keyof Events]: EventSpec };
/** The constraint on a push map: event name -> the push's data. */
export type PushMap<Pushes> = { [K in keyof Pushes]: unknown };

export interface Client<
  Events extends EventMap<Events> = Record<string, EventSpec>,
  Pushes extends PushMap<Pushes> = Record<string, unknown>,
> {
  /** The URL of the current (or next) connection attempt. */
  readonly url: string;
  readonly state: ClientState;
  /** Sends `{event, data, id}`; resolves with the reply's data. Rejects with WsgateError. */
  request<K extends keyof Events & string>(
    event: K,
    data: Events[K]["data"],
    options?: RequestOptions,
  ): Promise<Events[K]["reply"]>;
  /** Sends `{event, data}` (no reply). true: written now; false: queued until open.
   * Throws WsgateError "queue_full" or "closed". */
  send<K extends keyof Events & string>(event: K, data: Events[K]["data"]): boolean;
  /** Requests a stream and iterates over its items (pushed as `event` after the request's
   * null reply). The protocol has no stream id: two concurrent streams of one event, or
   * pushes of that event name, cannot be told apart. Breaking out of the loop does not
   * stop the server's generator; it runs until the connection ends. */
  stream<K extends keyof Events & string>(
    event: K,
    data: Events[K]["data"],
    options?: RequestOptions,
  ): AsyncIterableIterator<Events[K]["item"]>;
  /** Error frames that answer no request. */
  on(event: "error", fn: (error: ErrorData) => void): () => void;
  /** The `wsgate.recovery` frames (see `onRecover`), with their whole data. */
  on(event: "wsgate.recovery", fn: (data: RecoveryData) => void): () => void;
  /** Pushes (and stream items) of one event. With the default `Pushes` any event name is
   * accepted and its data is `unknown`. */
  on<K extends keyof Pushes & string>(event: K, fn: (data: Pushes[K]) => void): () => void;
  /** Every state change. */
  onState(fn: (change: StateChange) => void): () => void;
  /** Every `wsgate.recovery` frame: after a (re)connect that presented a position in a
   * group the server subscribed the client to again, once the frames missed there were
   * replayed (or could not be). Returns a function that unsubscribes. */
  onRecover(fn: (recovery: Recovery) => void): () => void;
  /** A copy of the last position seen in each group with history. */
  positions(): Positions;
  /** Closes for good; queued and unanswered requests reject with "closed". */
  close(code?: number, reason?: string): void;
  /** The entries of presence group `group`, kept from the server's `presence.state` and
   * `presence.diff` events. The same object for the same group. */
  presence<Meta = unknown>(group: string): PresenceView<Meta>;
}

/** Presence entries: key -> the metas of its entries (one per connection). */
export type PresenceEntries<Meta = unknown> = Record<string, Meta[]>;

/** The data of a `presence.state` event. */
export interface PresenceState<Meta = unknown> {
  group: string;
  entries: PresenceEntries<Meta>;
}

/** The data of a `presence.diff` event. */
export interface PresenceDiff<Meta = unknown> {
  group: string;
  joins: PresenceEntries<Meta>;
  leaves: PresenceEntries<Meta>;
}

/** One presence group as the client sees it. */
export interface PresenceView<Meta = unknown> {
  readonly group: string;
  /** The current entries (a copy). */
  list(): PresenceEntries<Meta>;
  /** After every `presence.state` (also after a reconnect). Returns a remover. */
  onSync(fn: (entries: PresenceEntries<Meta>) => void): () => void;
  /** Entries joined under `key`; `current` is every entry of `key` now. */
  onJoin(fn: (key: string, current: Meta[], joined: Meta[]) => void): () => void;
  /** Entries left `key`; `current` is what `key` keeps (empty: gone). */
  onLeave(fn: (key: string, current: Meta[], left: Meta[]) => void): () => void;
  /** Stops following the group's events. */
  close(): void;
}

export const DEFAULT_RECONNECT: Readonly<Required<ReconnectOptions>>;
export const DEFAULT_QUEUE_SIZE: number;
export const DEFAULT_TIMEOUT: number;
export const DEFAULT_CONNECT_TIMEOUT: number;
/** "wsgate.since": the handshake's query parameter that presents the positions. */
export const SINCE_PARAM: "wsgate.since";
/** "wsgate.recovery": the event of the frame that says whether a group recovered. */
export const RECOVERY_EVENT: "wsgate.recovery";

/** `url` with `wsgate.since` presenting `positions` (other query parameters kept, a
 * previous `wsgate.since` replaced); `url` itself when there are none. */
export function withSince(url: string, positions: Positions | Map<string, Position>): string;

/** The delay in ms before reconnect attempt `attempt` (1, 2, ...). */
export function backoffDelay(
  attempt: number,
  options?: ReconnectOptions,
  random?: () => number,
): number;

/** Whether a connection closed with `code` is reopened under `options`. */
export function shouldReconnect(code: number, options?: ReconnectOptions): boolean;

/** Opens a connection to a wsgate endpoint; `url` may be a function, called before every
 * attempt. See wsgate.js for the rules. */
export function connect<
  Events extends EventMap<Events> = Record<string, EventSpec>,
  Pushes extends PushMap<Pushes> = Record<string, unknown>,
>(url: string | (() => string), options?: ConnectOptions): Client<Events, Pushes>;
