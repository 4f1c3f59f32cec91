// vania-ws browser client: a dependency-free ES module speaking the vania-ws wire protocol,
// version 1 (PROTOCOL.md). It runs in browsers and in Node >= 20 started with
// `--experimental-websocket`; it only needs `globalThis.WebSocket`. With
// `protocol: "vania"` it talks to a Vania (Dart) server instead, which has no acks (see
// README.md, "Against a Vania server").
//
//   import { connect } from "/vania-ws.js";
//   const ws = connect("ws://127.0.0.1:8000/ws");
//   await ws.ready;
//   const reply = await ws.request("whoami", null);
//
// The semantics (reconnection, queueing, what happens to requests on a drop) are documented in
// README.md and vania-ws.d.ts; the comments here say why the code is the way it is.

const DEFAULTS = Object.freeze({
  reconnect: true,
  reconnectDelayMs: 250,
  reconnectMaxDelayMs: 5000,
  requestTimeoutMs: 10000,
  connectTimeoutMs: 10000,
  maxQueuedEmits: 1000,
  protocol: "vania-ws",
});

// "vania-ws": PROTOCOL.md, acks and all. "vania": the subset a Vania (Dart) server speaks. Its
// first frame is `{"event":"connect"}` (no session id), it never answers with an `id`, and it
// joins and leaves rooms silently; so there is nothing for request/join/leave to wait for.
const PROTOCOLS = new Set(["vania-ws", "vania"]);

// Frames the framework itself handles. Sending them through emit/request would bypass the
// client's bookkeeping (the rooms it rejoins, the server's pending asks), so they are refused.
const RESERVED_OUTGOING = new Set(["ack", "join-room", "left-room"]);

// Events `on` delivers that do not come from the server as ordinary events.
const LOCAL_EVENTS = new Set(["state", "error"]);

// Frames the client consumes itself; a listener for them would never run, so `on` refuses them
// rather than let a page wait for an event that cannot come (use `ready` or "state"). Against a
// Vania server `connect` is the handshake frame too.
const UNLISTENABLE = new Set(["ack", "connected"]);
const UNLISTENABLE_VANIA = new Set(["ack", "connected", "connect"]);

// The protocol caps a room name at 255 bytes of UTF-8; checking it here turns a round trip
// that would end in `invalid_room` into an immediate TypeError at the call site.
const MAX_ROOM_BYTES = 255;

// setTimeout fires immediately for delays above 2^31 - 1 ms; a longer timeout means "never".
const MAX_TIMER_MS = 2147483647;

// The close code an attempt abandoned by the connect timeout is closed with, for the server's
// logs (close() accepts only 1000 and 3000-4999). The page's "state" listeners are told 1006
// instead: no close frame came from the server, as with any other failed attempt.
const CONNECT_TIMEOUT_CLOSE_CODE = 4000;

const utf8 = new TextEncoder();

/** An error from the server (`.code` is the protocol's code) or from the client itself. */
export class VaniaWsError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "VaniaWsError";
    this.code = code;
  }
}

/**
 * Opens a client on `url` (a `ws://` or `wss://` URL of a vania-ws route) and returns it at
 * once; `await client.ready` to wait for the connection.
 */
export function connect(url, options = {}) {
  return new Client(url, options);
}

function isUnsignedInteger(value) {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function checkEventName(event, what) {
  if (typeof event !== "string" || event.length === 0) {
    throw new TypeError(`${what}: the event name must be a non-empty string, got ${describe(event)}`);
  }
}

function checkRoom(room, what) {
  if (typeof room !== "string" || room.length === 0) {
    throw new TypeError(`${what}: the room must be a non-empty string, got ${describe(room)}`);
  }
  if (utf8.encode(room).length > MAX_ROOM_BYTES) {
    throw new TypeError(`${what}: a room name is at most ${MAX_ROOM_BYTES} bytes of UTF-8`);
  }
}

function checkDelay(value, name, { allowInfinity }) {
  const ok =
    typeof value === "number" &&
    value > 0 &&
    (Number.isFinite(value) || (allowInfinity && value === Infinity));
  if (!ok) {
    throw new TypeError(
      `${name} must be a positive number${allowInfinity ? " (or Infinity)" : ""}, got ${describe(value)}`,
    );
  }
  return value;
}

function describe(value) {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null || value === undefined) return String(value);
  return typeof value === "object" || typeof value === "function" ? typeof value : String(value);
}

// Serializing at the call site (not when a queued frame is finally sent) makes an
// unserializable payload (a cycle, a BigInt) throw where the mistake is.
function serialize(frame, what) {
  let text;
  try {
    text = JSON.stringify(frame);
  } catch (err) {
    throw new TypeError(`${what}: the payload is not serializable to JSON (${err.message})`);
  }
  return text;
}

// A promise that is rejected with nobody awaiting it must not become an "unhandled rejection"
// (which ends a Node process): `ready` is often never awaited again after a reconnect.
function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject, settled: false };
}

class Client {
  constructor(url, options) {
    if (typeof url !== "string" && !(typeof URL !== "undefined" && url instanceof URL)) {
      throw new TypeError(`connect: the url must be a string or a URL, got ${describe(url)}`);
    }
    if (options === null || typeof options !== "object") {
      throw new TypeError("connect: options must be an object");
    }
    if (typeof globalThis.WebSocket !== "function") {
      throw new Error(
        "connect: no global WebSocket (in Node 20, run with --experimental-websocket; Node 22+ has it built in)",
      );
    }
    const opts = { ...DEFAULTS };
    for (const key of Object.keys(options)) {
      if (options[key] !== undefined) opts[key] = options[key];
    }
    this._url = String(url);
    this._reconnect = Boolean(opts.reconnect);
    this._delayMs = checkDelay(opts.reconnectDelayMs, "reconnectDelayMs", { allowInfinity: false });
    this._maxDelayMs = checkDelay(opts.reconnectMaxDelayMs, "reconnectMaxDelayMs", {
      allowInfinity: false,
    });
    this._timeoutMs = checkDelay(opts.requestTimeoutMs, "requestTimeoutMs", { allowInfinity: true });
    this._connectTimeoutMs = checkDelay(opts.connectTimeoutMs, "connectTimeoutMs", { allowInfinity: true });
    if (!Number.isSafeInteger(opts.maxQueuedEmits) || opts.maxQueuedEmits < 0) {
      throw new TypeError("maxQueuedEmits must be a non-negative integer");
    }
    this._maxQueuedEmits = opts.maxQueuedEmits;
    if (!PROTOCOLS.has(opts.protocol)) {
      throw new TypeError(`protocol must be "vania-ws" or "vania", got ${describe(opts.protocol)}`);
    }
    this._vania = opts.protocol === "vania";

    this._sessionId = null;
    this._state = "connecting";
    this._listeners = new Map(); // event -> array of handlers, in registration order
    this._nextId = 1; // the client's own request ids: unsigned integers from 1 (PROTOCOL §3)
    this._pending = new Map(); // id -> request entry (sent or queued)
    this._queue = []; // frames waiting for "open", in call order: {kind, text, entry?}
    this._queuedEmits = 0;
    this._rooms = new Set(); // rooms to rejoin after a reconnect
    this._roomOps = new Map(); // room -> token of the latest join/leave call (see join)
    this._socket = null;
    this._connectedSocket = null;
    this._everOpen = false;
    this._openedAt = 0;
    this._attempt = 0; // consecutive failed connections, drives the backoff
    this._retryTimer = null;
    this._connectTimer = null; // the current attempt's connect timeout (see _startConnectTimer)
    this._ready = deferred();

    // The first attempt runs synchronously so a malformed URL throws from connect() itself.
    this._open({ throwOnBadUrl: true });
  }

  get state() {
    return this._state;
  }

  get sessionId() {
    return this._sessionId;
  }

  get ready() {
    return this._ready.promise;
  }

  on(event, handler) {
    checkEventName(event, "on");
    if (typeof handler !== "function") {
      throw new TypeError(`on(${JSON.stringify(event)}): the handler must be a function`);
    }
    if ((this._vania ? UNLISTENABLE_VANIA : UNLISTENABLE).has(event)) {
      throw new TypeError(
        `on(${JSON.stringify(event)}): this frame is consumed by the client; use \`ready\` or the "state" event`,
      );
    }
    let list = this._listeners.get(event);
    if (!list) {
      list = [];
      this._listeners.set(event, list);
    }
    // Each registration gets its own record, so registering one function twice and
    // unsubscribing once removes exactly one registration.
    const record = { handler };
    list.push(record);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      const current = this._listeners.get(event);
      if (!current) return;
      const index = current.indexOf(record);
      if (index !== -1) current.splice(index, 1);
      if (current.length === 0) this._listeners.delete(event);
    };
  }

  emit(event, payload = null) {
    checkEventName(event, "emit");
    this._checkOutgoing(event, "emit");
    const text = serialize({ event, payload: payload === undefined ? null : payload }, "emit");
    if (this._state === "closed") {
      throw new VaniaWsError("closed", `emit(${JSON.stringify(event)}): the client is closed`);
    }
    if (this._state === "open") {
      this._socket.send(text);
      return;
    }
    // Not open: queue, so a page that emits during a reconnect loses nothing in the usual case,
    // but bounded, so a long outage cannot grow memory without limit. The oldest emit goes
    // first: the newest state of e.g. "typing" is the one worth delivering.
    if (this._maxQueuedEmits === 0) {
      console.warn(`vania-ws: not connected, dropping emit(${JSON.stringify(event)})`);
      return;
    }
    if (this._queuedEmits >= this._maxQueuedEmits) {
      const index = this._queue.findIndex((item) => item.kind === "emit");
      const [dropped] = this._queue.splice(index, 1);
      this._queuedEmits -= 1;
      console.warn(
        `vania-ws: more than ${this._maxQueuedEmits} emits queued while not connected, dropping the oldest (${dropped.event})`,
      );
    }
    this._queue.push({ kind: "emit", text, event });
    this._queuedEmits += 1;
  }

  request(event, payload = null, options = undefined) {
    checkEventName(event, "request");
    this._checkOutgoing(event, "request");
    const timeoutMs = this._callTimeout(options, "request");
    if (this._vania) {
      // Checked after the arguments, so a bad call is a TypeError whatever the protocol.
      return Promise.reject(
        new VaniaWsError(
          "unsupported",
          `request(${JSON.stringify(event)}): a Vania server does not answer requests; use emit() and on()`,
        ),
      );
    }
    return this._request(
      (id) => ({ event, id, payload: payload === undefined ? null : payload }),
      `request(${JSON.stringify(event)})`,
      timeoutMs,
    );
  }

  join(room, options = undefined) {
    checkRoom(room, "join");
    const timeoutMs = this._callTimeout(options, "join");
    // A token per call: if leave(room) is called before this join's ack arrives, the ack must
    // not put the room back into the rejoin set.
    const token = {};
    this._roomOps.set(room, token);
    return this._roomRequest("join-room", room, `join(${JSON.stringify(room)})`, timeoutMs).then(
      (payload) => {
        if (this._roomOps.get(room) === token) {
          this._roomOps.delete(room);
          if (this._state !== "closed") this._rooms.add(room);
        }
        return payload;
      },
      (err) => {
        // A refused join (room_limit, forbidden, …) or one whose fate is unknown (timeout,
        // disconnected) is not remembered: rejoining it later would repeat a request the caller
        // was told failed.
        if (this._roomOps.get(room) === token) this._roomOps.delete(room);
        throw err;
      },
    );
  }

  leave(room, options = undefined) {
    checkRoom(room, "leave");
    const timeoutMs = this._callTimeout(options, "leave");
    // Forget the room at once, not on the ack: whatever happens to this request, the caller
    // wants out, and a reconnect (which leaves every room on the server) must not rejoin it.
    const marker = {};
    this._roomOps.set(room, marker);
    this._rooms.delete(room);
    return this._roomRequest("left-room", room, `leave(${JSON.stringify(room)})`, timeoutMs).finally(() => {
      // Drop the bookkeeping entry unless a later join/leave call replaced it.
      if (this._roomOps.get(room) === marker) this._roomOps.delete(room);
    });
  }

  close() {
    if (this._state === "closed") return;
    this._shutdown("the client was closed", undefined);
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      detach(socket);
      try {
        socket.close(1000, "client closed");
      } catch {
        // A socket that is still connecting may refuse close() in some engines; it is detached
        // already, so whatever it does next is ignored.
      }
    }
  }

  // --- internals -------------------------------------------------------------------------

  _checkOutgoing(event, what) {
    if (RESERVED_OUTGOING.has(event)) {
      throw new TypeError(
        `${what}(${JSON.stringify(event)}): this event is handled by the client itself (use join()/leave())`,
      );
    }
  }

  _callTimeout(options, what) {
    if (options === undefined || options === null) return this._timeoutMs;
    if (typeof options !== "object") throw new TypeError(`${what}: options must be an object`);
    if (options.timeoutMs === undefined) return this._timeoutMs;
    return checkDelay(options.timeoutMs, `${what}: timeoutMs`, { allowInfinity: true });
  }

  // A join-room / left-room frame. Against a Vania server, which never acks, it carries no `id`
  // and the call is done once the frame is handed to the socket; it resolves with the `{ room }`
  // a vania-ws server's ack would have carried, so callers see one shape.
  _roomRequest(event, room, label, timeoutMs) {
    if (this._vania) {
      return this._request(() => ({ event, room }), label, timeoutMs, { noReply: { room } });
    }
    return this._request((id) => ({ event, room, id }), label, timeoutMs);
  }

  // Registers a request, starts its timeout (which covers the wait in the queue too), and
  // sends it now if open or queues it. `build(id)` makes the frame. With `noReply` (the value
  // to resolve with) the request ends when the frame is sent: there is no reply to wait for.
  // It still gets an id, only as its key in `_pending`, so the queue, the timeout and close()
  // treat it like any request.
  _request(build, label, timeoutMs, { noReply } = {}) {
    if (this._state === "closed") {
      return Promise.reject(new VaniaWsError("closed", `${label}: the client is closed`));
    }
    const id = this._nextId++;
    const text = serialize(build(id), label);
    return new Promise((resolve, reject) => {
      const entry = { id, text, label, resolve, reject, sent: false, timer: null, noReply };
      if (timeoutMs !== Infinity && timeoutMs <= MAX_TIMER_MS) {
        entry.timer = setTimeout(() => {
          this._settle(entry);
          this._unqueue(entry);
          reject(new VaniaWsError("timeout", `${label}: no reply within ${timeoutMs} ms`));
        }, timeoutMs);
      }
      this._pending.set(id, entry);
      if (this._state === "open") {
        this._sendEntry(entry);
      } else {
        this._queue.push({ kind: "request", entry });
      }
    });
  }

  _sendEntry(entry) {
    entry.sent = true;
    this._socket.send(entry.text);
    if (entry.noReply !== undefined) {
      this._settle(entry);
      entry.resolve(entry.noReply);
    }
  }

  // Removes an entry from the pending map and stops its timer; the caller resolves/rejects.
  _settle(entry) {
    this._pending.delete(entry.id);
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
  }

  _unqueue(entry) {
    const index = this._queue.findIndex((item) => item.entry === entry);
    if (index !== -1) this._queue.splice(index, 1);
  }

  _setState(state, detail) {
    if (this._state === state) return;
    this._state = state;
    this._dispatchLocal("state", state, detail);
  }

  _dispatchLocal(event, ...args) {
    const list = this._listeners.get(event);
    if (!list) return 0;
    // A copy: a handler may unsubscribe (itself or others) while we iterate.
    const handlers = list.slice();
    for (const { handler } of handlers) {
      try {
        handler(...args);
      } catch (err) {
        // One faulty listener must not stop the others nor the client's own state machine.
        console.error(`vania-ws: a "${event}" listener threw`, err);
      }
    }
    return handlers.length;
  }

  _open({ throwOnBadUrl = false } = {}) {
    this._retryTimer = null;
    let socket;
    try {
      socket = new globalThis.WebSocket(this._url);
    } catch (err) {
      // A malformed URL will never work: throw from connect() the first time. If it ever fails
      // later, treat it as a failed attempt so the backoff, not a tight loop, governs.
      if (throwOnBadUrl) throw err;
      this._onSocketGone(null, { code: 1006, reason: String(err && err.message) });
      return;
    }
    this._socket = socket;
    this._startConnectTimer(socket);
    socket.onmessage = (message) => {
      if (this._socket === socket) this._onMessage(socket, message.data);
    };
    socket.onclose = (event) => {
      if (this._socket === socket) this._onSocketGone(socket, { code: event.code, reason: event.reason });
    };
    // Per the WebSocket spec an error is followed by a close event (code 1006), but Node 20's
    // WebSocket (undici) fires only `error` when a connection attempt fails (refused, or a
    // non-101 answer such as 401/403/404/503) and leaves the socket CONNECTING forever. So an
    // error ends the socket here; the close event that may follow finds it detached. Nothing is
    // lost: a close frame from the server never comes with an error, so every error is a 1006.
    socket.onerror = () => {
      if (this._socket !== socket) return;
      this._onSocketGone(socket, { code: 1006, reason: "connection error" });
      try {
        socket.close();
      } catch {
        // Already closing or closed, or an engine that refuses close() in this state.
      }
    };
  }

  // A server (or a proxy in front of it) can accept the TCP connection or the upgrade and then
  // never greet. Nothing else ends such an attempt: no error, no close, so `ready` would stay
  // pending and no retry would ever run. The timeout covers the attempt from the socket's
  // creation until the server's greeting (`connected`, or `connect` for Vania): the TCP
  // connection, the upgrade and the greeting. It stops there, not at "open": the rejoins that
  // follow a greeting have their own timeout (requestTimeoutMs), and a rejoin that fails drops
  // its room and lets the client open; were they under this timer too, a server that never acks
  // one room's rejoin would have the client abandon every attempt and never open. When it fires
  // the attempt is a failed one like any other: the socket is dropped and the backoff retries
  // it, or, with reconnect off, the client closes.
  _startConnectTimer(socket) {
    this._clearConnectTimer(); // one attempt at a time, so one timer (every path clears it anyway)
    const ms = this._connectTimeoutMs;
    if (ms === Infinity || ms > MAX_TIMER_MS) return;
    this._connectTimer = setTimeout(() => {
      this._connectTimer = null;
      if (this._socket !== socket) return;
      const why = `the server did not greet within ${ms} ms`;
      this._onSocketGone(socket, { code: 1006, reason: `connect timeout: ${why}` }, why);
      try {
        socket.close(CONNECT_TIMEOUT_CLOSE_CODE, "connect timeout");
      } catch {
        // An engine that refuses close() in this state; the socket is detached already.
      }
    }, ms);
  }

  _clearConnectTimer() {
    if (this._connectTimer === null) return;
    clearTimeout(this._connectTimer);
    this._connectTimer = null;
  }

  _onMessage(socket, data) {
    if (typeof data !== "string") return; // the protocol is text frames only
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      console.warn("vania-ws: ignoring a frame that is not JSON");
      return;
    }
    if (frame === null || typeof frame !== "object" || Array.isArray(frame)) return;
    if (typeof frame.event !== "string") return;
    const payload = frame.payload === undefined ? null : frame.payload;

    switch (frame.event) {
      case "connect":
        // A vania-ws server never sends `connect` itself; for it, this is an ordinary event.
        if (!this._vania) break;
        this._onConnected(socket, payload);
        return;
      case "connected":
        this._onConnected(socket, payload);
        return;
      case "ack": {
        // An ack for an id we no longer wait for (timed out) is dropped, as the protocol does.
        const entry = isUnsignedInteger(frame.id) ? this._pending.get(frame.id) : undefined;
        if (entry && entry.sent) {
          this._settle(entry);
          entry.resolve(payload);
        }
        return;
      }
      case "error": {
        const code = payload && typeof payload.code === "string" ? payload.code : "unknown";
        const message = payload && typeof payload.message === "string" ? payload.message : "error";
        if (frame.id !== undefined) {
          const entry = isUnsignedInteger(frame.id) ? this._pending.get(frame.id) : undefined;
          if (entry && entry.sent) {
            this._settle(entry);
            entry.reject(new VaniaWsError(code, message));
          }
          return;
        }
        if (this._dispatchLocal("error", payload, frame) === 0) {
          // Errors of fire-and-forget emits have nowhere else to go; do not lose them silently.
          console.warn(`vania-ws: server error ${code}: ${message}`);
        }
        return;
      }
    }
    this._onEvent(socket, frame, payload);
  }

  _onEvent(socket, frame, payload) {
    if (LOCAL_EVENTS.has(frame.event)) {
      // "state" is the client's own event; a server event of that name would be mistaken for it.
      console.warn(`vania-ws: ignoring server event "${frame.event}" (the name is reserved by the client)`);
      return;
    }
    const list = this._listeners.get(frame.event);
    const asksReply = isUnsignedInteger(frame.id);
    if (!list || list.length === 0) return; // a server request without a handler gets no reply
    const handlers = list.slice();
    let first;
    let firstThrew = false;
    handlers.forEach(({ handler }, index) => {
      try {
        const result = handler(payload, frame);
        if (index === 0) first = result;
      } catch (err) {
        if (index === 0) firstThrew = true;
        console.error(`vania-ws: a "${frame.event}" handler threw`, err);
      }
    });
    if (!asksReply || firstThrew) return;
    // The first handler answers the server's request (PROTOCOL §4). The ack must go out on the
    // connection the request came in on: server ids are per connection, so after a reconnect
    // the same id could name a different request.
    Promise.resolve(first).then(
      (value) => {
        if (this._socket !== socket || socket.readyState !== 1) return;
        let text;
        try {
          text = JSON.stringify({ event: "ack", id: frame.id, payload: value === undefined ? null : value });
        } catch (err) {
          console.error(`vania-ws: the "${frame.event}" handler's reply is not serializable to JSON`, err);
          return;
        }
        socket.send(text);
      },
      (err) => {
        // The protocol has no error reply from a client; sending nothing lets the server's call
        // fail with its timeout rather than succeed with a made-up value.
        console.error(`vania-ws: a "${frame.event}" handler rejected; no reply sent`, err);
      },
    );
  }

  _onConnected(socket, payload) {
    // `connected` is the first frame of a connection and comes once; a repeat must not start a
    // second rejoin or flush.
    if (this._connectedSocket === socket) return;
    this._connectedSocket = socket;
    // The greeting ends the connect timeout (see _startConnectTimer); the rejoins below are
    // governed by requestTimeoutMs.
    this._clearConnectTimer();
    this._sessionId = sessionIdOf(payload, this._vania);
    this._openedAt = Date.now();
    if (this._rooms.size === 0) {
      this._becomeOpen();
      return;
    }
    if (this._vania) {
      // A Vania server joins silently: the rejoin is the frames, sent before anything queued.
      for (const room of this._rooms) socket.send(JSON.stringify({ event: "join-room", room }));
      this._becomeOpen();
      return;
    }
    // Rejoin before "open" and before `ready`: the page's queued requests and its `ready`
    // continuation expect the same rooms as before the drop.
    const rooms = [...this._rooms];
    let remaining = rooms.length;
    const done = () => {
      remaining -= 1;
      if (remaining === 0 && this._socket === socket && this._state !== "closed") this._becomeOpen();
    };
    for (const room of rooms) {
      this._internalRequest(socket, { event: "join-room", room }).then(done, (err) => {
        if (err.code === "disconnected" || err.code === "closed") return; // the drop handler runs
        // The server refused (room_limit, forbidden) or did not answer: the room is lost. Forget
        // it so the next reconnect does not retry it forever, and tell the page.
        this._rooms.delete(room);
        this._dispatchLocal("error", { code: err.code, message: err.message, room }, null);
        done();
      });
    }
  }

  // A request the client makes for itself (a rejoin): sent at once, bypassing the queue,
  // because the queue is exactly what waits for it.
  _internalRequest(socket, frame) {
    const id = this._nextId++;
    const text = JSON.stringify({ ...frame, id });
    return new Promise((resolve, reject) => {
      const entry = { id, text, label: frame.event, resolve, reject, sent: false, timer: null };
      if (this._timeoutMs !== Infinity && this._timeoutMs <= MAX_TIMER_MS) {
        entry.timer = setTimeout(() => {
          this._settle(entry);
          reject(new VaniaWsError("timeout", `rejoin of "${frame.room}": no reply within ${this._timeoutMs} ms`));
        }, this._timeoutMs);
      }
      this._pending.set(id, entry);
      this._sendEntry(entry);
    });
  }

  _becomeOpen() {
    this._everOpen = true;
    this._state = "open";
    // Flush before telling anyone: a "state" listener or a `ready` continuation that sends
    // must not overtake frames that were queued earlier.
    const queue = this._queue;
    this._queue = [];
    this._queuedEmits = 0;
    for (const item of queue) {
      if (item.kind === "emit") this._socket.send(item.text);
      else this._sendEntry(item.entry);
    }
    this._dispatchLocal("state", "open", undefined);
    if (!this._ready.settled) {
      this._ready.settled = true;
      this._ready.resolve();
    }
  }

  // `cause` says why, when it is not the socket's close (the connect timeout).
  _onSocketGone(socket, detail, cause = `the connection closed (code ${detail.code})`) {
    this._clearConnectTimer();
    if (socket) detach(socket);
    this._socket = null;
    this._sessionId = null;
    const wasOpen = this._state === "open";
    // A connection that stayed up a while was healthy: start the backoff over. One that is
    // dropped soon after `connected` (a server that accepts then closes, e.g. with 1008) keeps
    // growing the delay instead of reconnecting in a tight loop.
    if (this._openedAt !== 0 && Date.now() - this._openedAt >= this._maxDelayMs) this._attempt = 0;
    this._openedAt = 0;

    // Requests already on the wire may or may not have run on the server; resending them could
    // run a handler twice, so they fail with "disconnected". Queued ones were never sent and
    // keep waiting (within their timeout).
    for (const entry of [...this._pending.values()]) {
      if (!entry.sent) continue;
      this._settle(entry);
      entry.reject(
        new VaniaWsError("disconnected", `${entry.label}: the connection dropped before the reply`),
      );
    }

    if (!this._reconnect) {
      this._shutdown(`${cause} and reconnect is off`, detail);
      return;
    }
    if (wasOpen) {
      this._ready = deferred();
    }
    if (this._everOpen) this._setState("reconnecting", detail);
    this._scheduleRetry();
  }

  _scheduleRetry() {
    // Exponential backoff with jitter, capped: base * 2^attempt, then a random point in its
    // upper half, so a server restart is not met by every client at the same instant and the
    // delay never collapses to zero.
    const exp = Math.min(this._maxDelayMs, this._delayMs * 2 ** Math.min(this._attempt, 30));
    const delay = exp / 2 + Math.random() * (exp / 2);
    this._attempt += 1;
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  // Ends the client for good: state "closed", everything pending rejected with "closed".
  _shutdown(why, detail) {
    this._clearConnectTimer();
    if (this._retryTimer !== null) {
      clearTimeout(this._retryTimer);
      this._retryTimer = null;
    }
    this._state = "closed";
    this._sessionId = null;
    for (const entry of [...this._pending.values()]) {
      this._settle(entry);
      entry.reject(new VaniaWsError("closed", `${entry.label}: ${why}`));
    }
    this._queue = [];
    this._queuedEmits = 0;
    this._rooms.clear();
    this._roomOps.clear();
    // `ready` means "the connection is usable": once closed it rejects, whether it was still
    // pending (closed before connecting) or had resolved for an earlier connection.
    if (this._ready.settled) this._ready = deferred();
    this._ready.settled = true;
    this._ready.reject(new VaniaWsError("closed", `vania-ws: ${why}`));
    this._dispatchLocal("state", "closed", detail);
  }
}

// The session id of the handshake frame. A Vania server's `connect` carries none (newer ones
// may carry a payload): then it is `session_id`, else `sessionId`, else null; only a string is
// an id.
function sessionIdOf(payload, lenient) {
  if (payload === null || typeof payload !== "object") return null;
  if (typeof payload.session_id === "string") return payload.session_id;
  if (lenient && typeof payload.sessionId === "string") return payload.sessionId;
  return null;
}

function detach(socket) {
  socket.onmessage = null;
  socket.onclose = null;
  // Keep a no-op error listener: a late error event on a detached socket must stay handled.
  socket.onerror = () => {};
}
