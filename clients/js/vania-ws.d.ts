// Type declarations for vania-ws.js, the browser client of vania-ws (wire protocol version 1,
// or, with `protocol: "vania"`, the subset a Vania (Dart) server speaks).

/** Any JSON value: what a payload may be. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * The client's connection state.
 *
 * - `"connecting"`: not connected yet, and never has been (the first attempt, or retries of it).
 * - `"open"`: connected, and every room the client had joined has been rejoined.
 * - `"reconnecting"`: an open connection dropped (or an attempt after one failed); retrying.
 * - `"closed"`: final. After `close()`, or when the connection ends while `reconnect` is false.
 */
export type State = "connecting" | "open" | "reconnecting" | "closed";

/**
 * Codes the client itself gives an error; every other code comes from the server's error frame
 * (PROTOCOL.md section 5: `handler_error`, `unknown_event`, `invalid_payload`, `room_limit`, …).
 *
 * - `"timeout"`: no reply within the request's timeout (the wait in the queue included).
 * - `"disconnected"`: the connection dropped after the request was sent; the server may or may
 *   not have run it, so it is not resent.
 * - `"closed"`: the client is closed (or closed before the reply).
 * - `"unsupported"`: `request` with `protocol: "vania"`; a Vania server never answers requests.
 */
export type ClientErrorCode = "timeout" | "disconnected" | "closed" | "unsupported";

/**
 * The wire protocol the server speaks.
 *
 * - `"vania-ws"`: PROTOCOL.md, version 1: the `connected` handshake with a session id, acks,
 *   error frames with codes, requests both ways.
 * - `"vania"`: a Vania (Dart) server. Its first frame is `{"event":"connect"}` (newer versions
 *   may add a payload); it never sends acks nor anything with an `id`, and it joins and leaves
 *   rooms without a reply. So `request` rejects with `"unsupported"`, and `join`/`leave` are done
 *   once their frame is handed to the socket. `emit` and `on` work as with vania-ws.
 */
export type Protocol = "vania-ws" | "vania";

/** The protocol's error codes (PROTOCOL.md section 5). */
export type ServerErrorCode =
  | "invalid_json"
  | "invalid_envelope"
  | "unknown_event"
  | "invalid_payload"
  | "invalid_room"
  | "room_limit"
  | "forbidden"
  | "rate_limited"
  | "handler_error"
  | "internal"
  | "unsupported_frame";

/** The error a request, `join`, `leave` or `ready` rejects with. */
export declare class VaniaWsError extends Error {
  constructor(code: string, message: string);
  readonly name: "VaniaWsError";
  /** A {@link ServerErrorCode} from the server's error frame, or a {@link ClientErrorCode}. */
  readonly code: ServerErrorCode | ClientErrorCode | (string & {});
}

export interface ConnectOptions {
  /**
   * Reconnect when the connection drops or an attempt fails. Default `true`.
   *
   * Every close the client did not ask for is retried, whatever its code (1000, 1001, 1008,
   * 1011, an application code such as 4000): a browser cannot tell why a handshake was refused
   * (401, 403, 404, 503 all look like a failed connection), and a server that closes with a
   * code often wants the client back later (a restart, a drain). The backoff keeps retries
   * cheap. To stop on a given code, call `close()` from a `"state"` listener, which receives the
   * close code.
   */
  reconnect?: boolean;
  /**
   * The first retry delay, in ms. Default `250`. The n-th consecutive retry waits
   * `min(reconnectMaxDelayMs, reconnectDelayMs * 2^n)`, of which a random point in the upper
   * half is taken (jitter), so clients do not all come back at the same instant.
   */
  reconnectDelayMs?: number;
  /**
   * The cap on the retry delay, in ms. Default `5000`. It is also how long a connection must
   * have stayed open for the backoff to start over after it drops: a server that accepts and
   * closes at once is retried ever more slowly, not in a tight loop.
   */
  reconnectMaxDelayMs?: number;
  /**
   * The default timeout of `request`, `join` and `leave`, in ms, counted from the call (a wait
   * in the queue while not connected included). Default `10000`; `Infinity` for none. Also the
   * timeout of each rejoin after a reconnect, counted from the server's greeting (a rejoin that
   * times out is reported to `"error"` and forgotten, and the client opens without it).
   */
  requestTimeoutMs?: number;
  /**
   * How long each connection attempt may take to be greeted, in ms. Default `10000`;
   * `Infinity` (or a value above 2^31 - 1) for never. It counts from the moment the attempt's
   * socket is created until the server's greeting (`connected`, or `connect` with
   * `protocol: "vania"`): the TCP connection, the upgrade and the greeting. The greeting ends
   * it; the rejoins after a reconnect are not covered (each has `requestTimeoutMs`, and one that
   * fails or times out is reported to `"error"` and forgotten, and the client opens). It does
   * not apply once greeted.
   *
   * When it fires, the attempt is abandoned (its socket is closed, with code 4000 and reason
   * `"connect timeout"` if the upgrade was done) and counts as a failed attempt: with
   * `reconnect` the backoff retries it (the rooms to rejoin are kept, and so is everything
   * queued; queued requests keep their own timeouts), and the state does not change (it is
   * already `"connecting"` or `"reconnecting"`). Without `reconnect` the client closes: the
   * `"closed"` state's detail is
   * `{ code: 1006, reason: "connect timeout: the server did not greet within N ms" }`, and
   * `ready` and queued requests reject with `"closed"`, their message saying the same.
   * A value that is not a positive number (or `Infinity`) is a TypeError from `connect`.
   */
  connectTimeoutMs?: number;
  /**
   * How many `emit`s are kept while not open; past it the oldest one is dropped (with a
   * `console.warn`). Default `1000`; `0` drops every emit made while not open.
   */
  maxQueuedEmits?: number;
  /**
   * The server's protocol: `"vania-ws"` (the default) or `"vania"` for a Vania (Dart) server
   * (see {@link Protocol}). Any other value is a TypeError from `connect`.
   */
  protocol?: Protocol;
}

export interface CallOptions {
  /** This call's timeout in ms, instead of `requestTimeoutMs`; `Infinity` for none. */
  timeoutMs?: number;
}

/** A received frame, as parsed. `id` is present when the server asks for a reply. */
export interface Frame {
  event: string;
  payload: Json;
  id?: number;
  [key: string]: unknown;
}

/**
 * The payload of an error frame without `id` (the error of an `emit`), or of a failed rejoin.
 * It is passed on as the server sent it: a Vania server's error frame (a middleware that refused
 * the frame) is `{ message }` only, so with `protocol: "vania"` `code` is absent.
 */
export interface ErrorPayload {
  code: ServerErrorCode | ClientErrorCode | (string & {});
  message: string;
  /** Set when a room could not be rejoined after a reconnect (it is then forgotten). */
  room?: string;
}

/** Why the state changed, when a socket closing caused it. */
export interface CloseDetail {
  /**
   * The WebSocket close code (1006 when the connection failed or ended without a close frame,
   * an attempt abandoned by `connectTimeoutMs` included).
   */
  code: number;
  /**
   * The close frame's reason; for a connect timeout,
   * `"connect timeout: the server did not greet within N ms"`.
   */
  reason: string;
}

/**
 * A handler of a server event. When the server asks for a reply (the frame has an `id`), the
 * FIRST registered handler's return value, or the value its promise resolves to, is sent back
 * as the ack (`undefined` is sent as `null`). If that handler throws or rejects, nothing is sent
 * (the error is logged) and the server's call fails with its timeout. Without any handler,
 * nothing is sent either.
 */
export type EventHandler = (payload: any, frame: Frame) => unknown;

export interface VaniaWsClient {
  /**
   * Resolves on the connection's `connected` frame once every previously joined room has been
   * rejoined. With `protocol: "vania"` it resolves on the first `connect` frame (a `connected`
   * frame is accepted too), the rejoin frames sent. While `"reconnecting"` it is a NEW pending promise, resolved once reconnected.
   * An attempt the server does not greet within `connectTimeoutMs` is abandoned and retried;
   * the same `ready` keeps waiting for a later attempt.
   * It rejects with code `"closed"` when the client closes before it resolved (for example
   * `close()` before connecting, or a failed first attempt with `reconnect: false`), and once
   * the client is closed it is always a rejected promise. Unawaited rejections are not reported
   * as unhandled.
   */
  readonly ready: Promise<void>;
  /**
   * The current connection's session id (`ws:<uuid>`); `null` while not connected. With
   * `protocol: "vania"`, the handshake payload's `session_id` or `sessionId` when it is a
   * string, else `null` (Vania's own `connect` frame carries none).
   */
  readonly sessionId: string | null;
  readonly state: State;

  /**
   * The client's state changes. `detail` carries the close code when a socket closing caused
   * the change (to `"reconnecting"` or `"closed"`); it is `undefined` otherwise.
   */
  on(event: "state", handler: (state: State, detail: CloseDetail | undefined) => void): () => void;
  /**
   * Server error frames that carry no `id` (errors of `emit`s), and rooms that could not be
   * rejoined after a reconnect (`room` set). With no listener, they are logged with
   * `console.warn`.
   */
  on(event: "error", handler: (payload: ErrorPayload, frame: Frame | null) => void): () => void;
  /**
   * A server event. Returns a function that unsubscribes this registration. `"ack"` and
   * `"connected"` (and, with `protocol: "vania"`, `"connect"`) are consumed by the client and
   * cannot be listened to (TypeError).
   */
  on(event: string, handler: EventHandler): () => void;

  /**
   * Sends an event without asking for a reply. While not open it is queued (bounded by
   * `maxQueuedEmits`) and sent, in call order, once open. Throws a TypeError for a bad event
   * name, a payload that is not serializable, or `"ack"`/`"join-room"`/`"left-room"` (use
   * `join`/`leave`); throws a VaniaWsError `"closed"` once the client is closed.
   */
  emit(event: string, payload?: unknown): void;

  /**
   * Sends an event with an `id` and resolves with the payload of the server's ack. Rejects with
   * a VaniaWsError: the server's code and message on an error frame, `"timeout"`,
   * `"disconnected"` (dropped after it was sent; never resent, since the handler may have run)
   * or `"closed"`. While not open it is queued and sent once open (after the rejoins).
   *
   * With `protocol: "vania"` it rejects at once with `"unsupported"` and sends nothing: a Vania
   * server does not answer requests (use `emit`, and `on` for what its handler emits back).
   */
  request<T = any>(event: string, payload?: unknown, options?: CallOptions): Promise<T>;

  /**
   * Joins a room; resolves with `{ room }` on the ack. Only a successful join is remembered
   * and rejoined after a reconnect. A room name is 1 to 255 bytes of UTF-8 (TypeError otherwise).
   *
   * With `protocol: "vania"` the frame carries no `id` and the promise resolves with `{ room }`
   * once the frame is handed to the socket (queued while not open, within the timeout); the
   * room is then remembered and rejoined after a reconnect (its frame sent before `ready`).
   */
  join(room: string, options?: CallOptions): Promise<{ room: string }>;

  /**
   * Leaves a room; resolves with `{ room }` on the ack. The room is forgotten at once (not
   * rejoined after a reconnect), whatever becomes of this request. With `protocol: "vania"`
   * it resolves once the frame (without `id`) is handed to the socket.
   */
  leave(room: string, options?: CallOptions): Promise<{ room: string }>;

  /**
   * Closes the connection (code 1000) and stops reconnecting for good. Pending and queued
   * requests reject with `"closed"`; `ready` rejects with `"closed"`. Idempotent.
   */
  close(): void;
}

/**
 * Opens a client on a vania-ws route (`ws://` or `wss://` URL), or a Vania one with
 * `protocol: "vania"`, and returns it at once; await `ready` for the connection. Throws a
 * TypeError for bad options (an unknown `protocol` included), a SyntaxError for a malformed
 * URL, and an Error when there is no global `WebSocket` (Node 20 needs
 * `--experimental-websocket`).
 */
export declare function connect(url: string | URL, options?: ConnectOptions): VaniaWsClient;
