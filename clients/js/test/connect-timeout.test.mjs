// Tests of the client's connect timeout (`connectTimeoutMs`) against fake servers that accept a
// connection and then stay silent: a WebSocket server (the `ws` package, a devDependency) whose
// behaviour each test picks per connection (greet or not, ack the rejoins or not), and a plain
// TCP server that never answers the upgrade. Run with `npm test`.
//
// The fake servers record what each connection sent and how the client closed it, so the tests
// wait on those (a connection arriving, a close frame, an echo), not on sleeps; the only sleeps
// are where the thing asserted is that nothing happens.

import { test as nodeTest, afterEach } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import net from "node:net";
import { WebSocketServer } from "ws";
import { connect, VaniaWsError } from "../vania-ws.js";
import { nextPayload, trackForCleanup } from "./helpers.mjs";

// A WebSocket server on a free port that does nothing by itself: `onConnection(conn)` decides
// what each connection gets (see `serve`). `conn` is { index, socket, frames, closed }, where
// `frames` is what the client sent and `closed` resolves with the { code, reason } of the
// client's close frame (1005 for none, 1006 for a dropped TCP connection).
async function startFake(onConnection) {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  const connections = [];
  const waiters = []; // { index, resolve }: waiting for the index-th connection
  wss.on("connection", (socket) => {
    const conn = { index: connections.length, socket, frames: [], onFrame: null };
    conn.closed = new Promise((resolve) =>
      socket.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      conn.frames.push(frame);
      if (conn.onFrame) conn.onFrame(frame);
    });
    connections.push(conn);
    onConnection(conn);
    for (const waiter of waiters.filter((w) => w.index === conn.index)) waiter.resolve(conn);
  });
  const { port } = wss.address();
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    connections,
    // Resolves with the index-th connection (from 0) once the server has accepted it.
    connection: (index) =>
      connections[index]
        ? Promise.resolve(connections[index])
        : new Promise((resolve) => waiters.push({ index, resolve })),
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

// Makes `conn` a working server connection: it greets (vania-ws's `connected` with the session
// id `ws:fake-<index>`, or Vania's `connect`), echoes `message` events back, and, for vania-ws,
// acks every frame that carries an id (join-room/left-room with `{ room }`, the rest with their
// payload) unless `ackJoins` is false, in which case join-room frames are never answered.
function serve(conn, { protocol = "vania-ws", ackJoins = true } = {}) {
  const send = (frame) => conn.socket.send(JSON.stringify(frame));
  if (protocol === "vania") send({ event: "connect" });
  else send({ event: "connected", payload: { session_id: `ws:fake-${conn.index}` } });
  conn.onFrame = (frame) => {
    if (frame.event === "message") send({ event: "message", payload: frame.payload ?? null });
    if (protocol === "vania" || frame.id === undefined) return;
    if (frame.event === "join-room" && !ackJoins) return;
    const payload = frame.event === "join-room" || frame.event === "left-room" ? { room: frame.room } : frame.payload;
    send({ event: "ack", id: frame.id, payload: payload ?? null });
  };
}

// A TCP server that accepts connections and never answers: the upgrade request hangs. It keeps
// its sockets, so a test can see the client drop each one.
async function startSilentTcp() {
  const sockets = [];
  const waiters = [];
  const server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.resume(); // read (and drop) the upgrade request, so the client's FIN is seen
    socket.gone = new Promise((resolve) => socket.on("close", resolve));
    sockets.push(socket);
    for (const waiter of waiters.filter((w) => w.index === sockets.length - 1)) waiter.resolve(socket);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    sockets,
    socket: (index) =>
      sockets[index] ? Promise.resolve(sockets[index]) : new Promise((resolve) => waiters.push({ index, resolve })),
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

// The sockets the client opens, per URL, each with `opened`, a promise of its `open` event:
// on the client's side a socket opens a little after the server accepted the upgrade, and a
// close() before that fails the connection instead of closing it with a close frame. The
// client looks up globalThis.WebSocket on each attempt.
const socketsOf = new Map();
const NativeWebSocket = globalThis.WebSocket;
globalThis.WebSocket = class RecordingWebSocket extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.opened = new Promise((resolve) => this.addEventListener("open", resolve));
    const key = String(url);
    if (!socketsOf.has(key)) socketsOf.set(key, []);
    socketsOf.get(key).push(this);
  }
};

const track = trackForCleanup(afterEach);

const fake = async (onConnection) => track.server(await startFake(onConnection));

const client = (url, options = {}) => track.client(connect(url, options));

const nextEvent = nextPayload;

// Fast retries, so a test spends its time in the timeouts it is about.
const FAST = { reconnectDelayMs: 20, reconnectMaxDelayMs: 40 };

// The connect timeout of the tests where it must let an attempt through: one that is greeted
// (the greeting is sent as soon as the server accepts the upgrade), or one whose socket must
// have opened before the timeout fires, so that its close carries 4000. On a loaded machine
// either can take a while; a second is ample, and the attempts meant to time out are the
// silent ones, so the tests do not wait for it longer than once or twice.
const CONNECT_MS = 1000;

// A per-test deadline: a broken client must fail its test, not hang the run.
const test = (name, fn) => nodeTest(name, { timeout: 15000 }, fn);

for (const protocol of ["vania-ws", "vania"]) {
  test(`${protocol}: an attempt the server never greets times out and is retried; queued frames wait for the greeted one`, async () => {
    // The first connection is accepted and never greeted; the second one is served.
    const server = await fake((conn) => {
      if (conn.index > 0) serve(conn, { protocol });
    });
    const started = Date.now();
    const ws = client(server.url, { protocol, connectTimeoutMs: CONNECT_MS, ...FAST });
    const states = [];
    ws.on("state", (state, detail) => states.push({ state, detail }));
    const firstReady = ws.ready;
    // Made before ready: queued, and they must survive the abandoned attempt.
    const echoed = nextEvent(ws, "message", 8000);
    ws.emit("message", "queued");
    const requested = protocol === "vania-ws" ? ws.request("whoami", "queued request", { timeoutMs: 8000 }) : null;

    const silent = await server.connection(0);
    const closed = await silent.closed;
    assert.deepEqual(closed, { code: 4000, reason: "connect timeout" }, "the client abandoned the attempt");
    assert.ok(Date.now() - started >= CONNECT_MS - 10, "after the connect timeout, not at once");
    assert.deepEqual(silent.frames, [], "nothing was sent on the attempt that was never greeted");

    await ws.ready;
    assert.equal(ws.ready, firstReady, "the same ready promise: the client was never open");
    assert.equal(ws.state, "open");
    assert.equal(ws.sessionId, protocol === "vania-ws" ? "ws:fake-1" : null);
    assert.equal(await echoed, "queued");
    if (requested) assert.equal(await requested, "queued request");
    assert.deepEqual(
      states.map((s) => s.state),
      ["open"],
      "like any failed first attempt, the timeout changed no state",
    );
    const second = server.connections[1];
    assert.deepEqual(
      second.frames.map(({ event, payload }) => ({ event, payload })),
      protocol === "vania-ws"
        ? [
            { event: "message", payload: "queued" },
            { event: "whoami", payload: "queued request" },
          ]
        : [{ event: "message", payload: "queued" }],
      "the queued frames went out once, in call order, on the greeted connection",
    );
    assert.equal(server.connections.length, 2);
  });
}

test("connectTimeoutMs: a value that is not a positive number (or Infinity) is a TypeError at connect()", async () => {
  const server = await fake(() => {}); // never greets
  // A client that connect() wrongly returns is closed at once, so a regression fails here
  // rather than leave a socket open.
  const connectOrClose = (connectTimeoutMs) => () => connect(server.url, { connectTimeoutMs }).close();
  for (const bad of [0, -1, -Infinity, NaN, "200", null, true, {}]) {
    assert.throws(connectOrClose(bad), TypeError, `connectTimeoutMs ${String(bad)}`);
  }
  assert.throws(connectOrClose(0), {
    name: "TypeError",
    message: "connectTimeoutMs must be a positive number (or Infinity), got 0",
  });
  assert.throws(connectOrClose("200"), { message: 'connectTimeoutMs must be a positive number (or Infinity), got "200"' });

  // Infinity, and a delay too long for setTimeout (which would fire it at once), mean never.
  const never = client(server.url, { connectTimeoutMs: Infinity, ...FAST });
  const huge = client(server.url, { connectTimeoutMs: 2 ** 32, ...FAST });
  await server.connection(1);
  // Nothing to wait on for "nothing happens": give a short timeout several times over.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(server.connections.length, 2, "no socket was opened for the bad values, and no retry");
  assert.equal(never.state, "connecting");
  assert.equal(huge.state, "connecting");
});

// Counts the timers of one delay the client starts (it looks up globalThis.setTimeout on each
// call): how many were started, how many are still pending, how many fired.
function spyTimers(delay) {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const pending = new Set();
  const counts = { started: 0, fired: 0 };
  globalThis.setTimeout = function (fn, ms, ...args) {
    if (ms !== delay) return realSet(fn, ms, ...args);
    counts.started += 1;
    const handle = realSet(() => {
      pending.delete(handle);
      counts.fired += 1;
      fn(...args);
    }, ms);
    pending.add(handle);
    return handle;
  };
  globalThis.clearTimeout = function (handle) {
    pending.delete(handle);
    return realClear(handle);
  };
  return {
    counts,
    get pending() {
      return pending.size;
    },
    restore() {
      globalThis.setTimeout = realSet;
      globalThis.clearTimeout = realClear;
    },
  };
}

test("close() during a pending attempt clears the connect timer: nothing fires, nothing keeps the process alive", async () => {
  const server = await fake(() => {}); // accepts the upgrade, never greets
  const PENDING_MS = 4321; // a delay no other timer of this test uses
  const timers = spyTimers(PENDING_MS);
  try {
    const ws = client(server.url, { connectTimeoutMs: PENDING_MS });
    const conn = await server.connection(0);
    await socketsOf.get(server.url).at(-1).opened; // the attempt is pending: upgraded, not greeted
    assert.equal(timers.counts.started, 1, "the attempt has a connect timer");
    assert.equal(timers.pending, 1);
    ws.close();
    assert.equal(timers.pending, 0, "close() cleared it");
    assert.equal(ws.state, "closed");
    await assert.rejects(ws.ready, { code: "closed" });
    assert.deepEqual(await conn.closed, { code: 1000, reason: "client closed" }, "close()'s own close, not a timeout");
    assert.equal(timers.counts.fired, 0);
  } finally {
    timers.restore();
  }

  // The same in a process of its own with the default timeout (10 s): once close() is called,
  // it exits by itself, long before the timer would have fired. The client is closed as soon
  // as its socket opens (the server accepted the upgrade, the greeting is still awaited).
  const script = `
    import { connect } from ${JSON.stringify(new URL("../vania-ws.js", import.meta.url).href)};
    const Native = globalThis.WebSocket;
    let ws;
    globalThis.WebSocket = class extends Native {
      constructor(url, protocols) {
        super(url, protocols);
        this.addEventListener("open", () => {
          ws.close();
          console.log("closed while waiting for the greeting");
        });
      }
    };
    ws = connect(${JSON.stringify(server.url)});
  `;
  const child = spawn(process.execPath, ["--experimental-websocket", "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (chunk) => (output += chunk));
  child.stderr.on("data", (chunk) => (output += chunk));
  const started = Date.now();
  const exited = await new Promise((resolve) => {
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      resolve("still running after 5 s");
    }, 5000);
    child.on("exit", (code) => {
      clearTimeout(deadline);
      resolve(code);
    });
  });
  assert.equal(exited, 0, `the child process exits by itself (output: ${output})`);
  assert.match(output, /closed while waiting for the greeting/);
  assert.ok(Date.now() - started < 5000);
});

test("a greeted attempt is not abandoned: its connect timer is cleared at the greeting", async () => {
  const server = await fake((conn) => serve(conn));
  const GREETED_MS = 1234; // ample for a greeting, and a delay no other timer of this test uses
  const timers = spyTimers(GREETED_MS);
  try {
    const ws = client(server.url, { connectTimeoutMs: GREETED_MS, ...FAST });
    assert.equal(timers.pending, 1, "the attempt has a connect timer");
    await ws.ready;
    assert.equal(timers.pending, 0, "cleared once greeted");
    // Nothing to wait on for "nothing happens": let the timeout pass, with some to spare.
    await new Promise((r) => setTimeout(r, GREETED_MS + 300));
    const back = nextEvent(ws, "message");
    ws.emit("message", "still open");
    assert.equal(await back, "still open");
    assert.equal(ws.state, "open");
    assert.equal(timers.counts.fired, 0);
    assert.equal(server.connections.length, 1, "the connection was kept");
  } finally {
    timers.restore();
  }
});

test("reconnect: false: an attempt that times out closes the client; ready and queued requests say why", async () => {
  const server = await fake(() => {}); // never greets
  // CONNECT_MS, not less: the 4000 close below needs the socket to have opened by then.
  const ws = client(server.url, { reconnect: false, connectTimeoutMs: CONNECT_MS });
  const states = [];
  ws.on("state", (state, detail) => states.push({ state, detail }));
  const queued = ws.request("whoami", null, { timeoutMs: 8000 });
  const err = await ws.ready.then(
    () => assert.fail("ready resolved"),
    (e) => e,
  );
  assert.ok(err instanceof VaniaWsError);
  assert.equal(err.code, "closed", "as for any failed first attempt with reconnect off");
  assert.equal(err.message, `vania-ws: the server did not greet within ${CONNECT_MS} ms and reconnect is off`);
  await assert.rejects(queued, {
    code: "closed",
    message: `request("whoami"): the server did not greet within ${CONNECT_MS} ms and reconnect is off`,
  });
  assert.equal(ws.state, "closed");
  assert.deepEqual(states, [
    {
      state: "closed",
      detail: { code: 1006, reason: `connect timeout: the server did not greet within ${CONNECT_MS} ms` },
    },
  ]);
  assert.deepEqual(await server.connections[0].closed, { code: 4000, reason: "connect timeout" });
  assert.equal(server.connections.length, 1, "no retry");
});

test("the connect timeout ends at the greeting: a rejoin never acked times out by requestTimeoutMs, the room is dropped, the client opens", async () => {
  // 0: served. 1: greets but never acks a join-room. Any later one: served (a client that
  // gave up on 1 would open there instead).
  const server = await fake((conn) => serve(conn, { ackJoins: conn.index !== 1 }));
  // A connect timeout shorter than the request timeout: were the rejoin's wait counted by the
  // connect timeout, the attempt would be abandoned before the rejoin timed out by itself.
  // Both leave ample time for what is meant to happen in them (a greeting, an ack).
  const REQUEST_MS = 2 * CONNECT_MS;
  const ws = client(server.url, { connectTimeoutMs: CONNECT_MS, requestTimeoutMs: REQUEST_MS, ...FAST });
  await ws.ready;
  assert.deepEqual(await ws.join("lost"), { room: "lost" });
  const states = [];
  ws.on("state", (state, detail) => states.push({ state, detail }));
  const errors = [];
  ws.on("error", (payload, frame) => errors.push({ payload, frame }));

  server.connections[0].socket.terminate();
  const stuck = await server.connection(1);
  const queuedBack = nextEvent(ws, "message", 8000);
  ws.emit("message", "queued"); // made while reconnecting: waits for the rejoin
  const reopened = nextEvent(ws, "state", 8000);
  const rejoinSent = Date.now(); // about when: the rejoin goes out on the greeting
  assert.equal(await reopened, "open");
  assert.ok(Date.now() - rejoinSent >= REQUEST_MS - 100, "after the rejoin's own timeout");
  await ws.ready;
  assert.equal(ws.state, "open");
  assert.equal(ws.sessionId, "ws:fake-1", "open on the connection whose rejoin was never acked");
  assert.equal(await queuedBack, "queued");
  assert.deepEqual(
    errors,
    [
      {
        payload: { code: "timeout", message: `rejoin of "lost": no reply within ${REQUEST_MS} ms`, room: "lost" },
        frame: null,
      },
    ],
    "the room is reported lost, as for any failed rejoin",
  );
  assert.deepEqual(
    stuck.frames.map(({ event, room, payload }) => ({ event, room, payload })),
    [
      { event: "join-room", room: "lost", payload: undefined },
      { event: "message", room: undefined, payload: "queued" },
    ],
    "the rejoin went out first, the queued emit once the client opened",
  );
  assert.deepEqual(
    states.map((s) => s.state),
    ["reconnecting", "open"],
  );
  assert.equal(server.connections.length, 2, "one connection after the reconnect, not several");
  assert.equal(stuck.socket.readyState, 1, "and it is still open");

  // The room is forgotten: the next reconnect does not rejoin it.
  const dropped = nextEvent(ws, "state", 8000);
  stuck.socket.terminate();
  assert.equal(await dropped, "reconnecting");
  await ws.ready;
  assert.equal(ws.sessionId, "ws:fake-2");
  const back = nextEvent(ws, "message", 8000);
  ws.emit("message", "after");
  assert.equal(await back, "after");
  assert.deepEqual(
    server.connections[2].frames.map(({ event }) => event),
    ["message"],
    "no rejoin of the dropped room",
  );
});

test("an attempt whose upgrade is never answered (TCP accepted) times out and is retried", async () => {
  const server = track.server(await startSilentTcp());
  const ws = client(server.url, { connectTimeoutMs: 200, ...FAST });
  const first = await server.socket(0);
  await first.gone; // the client dropped the connection it was upgrading
  await server.socket(1); // and tried again
  assert.equal(ws.state, "connecting");
  assert.equal(await Promise.race([ws.ready.then(() => "ready"), Promise.resolve("pending")]), "pending");
  ws.close();
  await assert.rejects(ws.ready, { code: "closed" });
});
