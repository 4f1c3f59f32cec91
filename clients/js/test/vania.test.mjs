// Tests of the client's `protocol: "vania"` mode against a fake Vania server: a Node WebSocket
// server (the `ws` package, a devDependency) that behaves like Vania's Dart handler
// (vania-dart/framework, lib/src/websocket/web_socket_handler.dart): it sends
// `{"event":"connect"}` on upgrade, joins and leaves rooms silently on `join-room` /
// `left-room`, never acks and never looks at `id`, and answers only through handlers that emit
// `{"event": name, "payload": value}` frames. Run with `npm test`.
//
// The fake server records every frame each connection sent it, so the tests assert on exactly
// what went over the wire. With no acks, ordering comes from the sockets: frames on one
// connection arrive in the order they were sent, so an echo on a socket marks that the server
// has handled everything that socket sent before it, and that everything the server sent to
// that socket before the echo has arrived.

import { test as nodeTest, afterEach } from "node:test";
import assert from "node:assert/strict";
import { WebSocketServer } from "ws";
import { connect, VaniaWsError } from "../vania-ws.js";
import { nextPayload, trackForCleanup } from "./helpers.mjs";

// A fake Vania server on a free port. Every path is a WebSocket route (Vania upgrades any path);
// a few paths change the handshake or add a failing middleware, to test the client's variants:
//   /guarded             every frame is refused by a middleware: {"event":"error","payload":{"message":…}}
//   /connect-with-id     the handshake is {"event":"connect","payload":{"sessionId":"ws:fake-id"}}
//   /connected           the handshake is vania-ws's {"event":"connected","payload":{"session_id":"ws:fake-id"}}
// Events its handlers know (anything else is ignored, as Vania does):
//   message       emit("message", payload) back to the sender
//   room-message  payload {room, message}: {"event":"room-message","payload":message} to every member of room
async function startFakeVania() {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve, reject) => {
    wss.once("listening", resolve);
    wss.once("error", reject);
  });
  const rooms = new Map(); // room -> Set of sockets
  const connections = []; // { url, socket, frames }, in connection order
  const send = (socket, event, payload) => socket.send(JSON.stringify({ event, payload: payload ?? null }));

  wss.on("connection", (socket, req) => {
    const conn = { url: req.url, socket, frames: [] };
    connections.push(conn);
    const path = new URL(req.url, "http://fake").pathname;
    if (path === "/connect-with-id") send(socket, "connect", { sessionId: "ws:fake-id" });
    else if (path === "/connected") send(socket, "connected", { session_id: "ws:fake-id" });
    else socket.send(JSON.stringify({ event: "connect" })); // Vania's own: no payload at all

    socket.on("message", (data) => {
      const frame = JSON.parse(data.toString());
      conn.frames.push(frame);
      if (path === "/guarded") {
        send(socket, "error", { message: "Unauthorized" });
        return;
      }
      switch (frame.event) {
        case "join-room":
          if (typeof frame.room === "string" && frame.room !== "") {
            if (!rooms.has(frame.room)) rooms.set(frame.room, new Set());
            rooms.get(frame.room).add(socket);
          }
          return; // silently: Vania sends nothing back
        case "left-room":
          rooms.get(frame.room)?.delete(socket);
          return;
        case "message":
          send(socket, "message", frame.payload);
          return;
        case "room-message": {
          const { room, message } = frame.payload ?? {};
          for (const member of rooms.get(room) ?? []) send(member, "room-message", message);
          return;
        }
        default:
          return; // no handler: ignored, no error frame
      }
    });
    socket.on("close", () => {
      for (const members of rooms.values()) members.delete(socket);
    });
  });

  const { port } = wss.address();
  return {
    url: (path = "/ws") => `ws://127.0.0.1:${port}${path}`,
    connections,
    // The connections whose request URL (path and query) is `url`, in order.
    connectionsOf: (url) => connections.filter((c) => c.url === url),
    rooms,
    close: () =>
      new Promise((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  };
}

const track = trackForCleanup(afterEach);

const fakeServer = async () => track.server(await startFakeVania());

const client = (url, options = {}) => track.client(connect(url, { protocol: "vania", ...options }));

const nextEvent = nextPayload;

// Emits "message" and waits for the fake server's echo: once it is back, the server has handled
// every frame this client sent before, and every frame it sent this client before has arrived.
async function echo(ws, value) {
  const back = nextEvent(ws, "message");
  ws.emit("message", value);
  assert.deepEqual(await back, value);
}

// Resolves when the client's state next becomes `state`, or rejects after `ms`.
function nextState(ws, state, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no state "${state}" within ${ms} ms`));
    }, ms);
    const off = ws.on("state", (s) => {
      if (s !== state) return;
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

function assertNoIds(frames) {
  for (const frame of frames) assert.equal("id" in frame, false, `a frame carried an id: ${JSON.stringify(frame)}`);
}

// A per-test deadline: a broken client must fail its test, not hang the run.
const test = (name, fn) => nodeTest(name, { timeout: 10000 }, fn);

test("vania: ready resolves on `connect`; sessionId is null; `connect` is not listenable", async () => {
  const server = await fakeServer();
  const ws = client(server.url());
  assert.equal(ws.state, "connecting");
  await ws.ready;
  assert.equal(ws.state, "open");
  assert.equal(ws.sessionId, null, "Vania's connect frame carries no session id");
  assert.throws(() => ws.on("connect", () => {}), TypeError);
  assert.throws(() => ws.on("connected", () => {}), TypeError);
});

test("vania: a `connect` with a payload, or a `connected` frame, gives the sessionId", async () => {
  const server = await fakeServer();
  const withId = client(server.url("/connect-with-id"));
  const connected = client(server.url("/connected"));
  await Promise.all([withId.ready, connected.ready]);
  assert.equal(withId.sessionId, "ws:fake-id"); // payload.sessionId
  assert.equal(connected.sessionId, "ws:fake-id"); // payload.session_id
  assert.equal(connected.state, "open");
});

test("vania: emit reaches the server's handler and on() receives what it emits back", async () => {
  const server = await fakeServer();
  const ws = client(server.url());
  await ws.ready;
  const seen = [];
  ws.on("message", (payload, frame) => seen.push({ payload, frame }));
  const back = nextEvent(ws, "message");
  ws.emit("message", { text: "hi", n: [1, 2] });
  assert.deepEqual(await back, { text: "hi", n: [1, 2] });
  assert.deepEqual(seen[0].frame, { event: "message", payload: { text: "hi", n: [1, 2] } });
  await echo(ws, "a string payload");
  assert.deepEqual(server.connections[0].frames, [
    { event: "message", payload: { text: "hi", n: [1, 2] } },
    { event: "message", payload: "a string payload" },
  ]);
});

test("vania: join, then another client's room-message arrives; after leave it does not", async () => {
  const server = await fakeServer();
  const a = client(server.url("/ws?a"));
  const b = client(server.url("/ws?b"));
  await Promise.all([a.ready, b.ready]);

  // join resolves once the frame is handed to the socket (no ack); echo marks it handled.
  assert.deepEqual(await a.join("room-1"), { room: "room-1" });
  await echo(a, "joined");
  const got = nextEvent(a, "room-message");
  b.emit("room-message", { room: "room-1", message: { text: "hello" } });
  assert.deepEqual(await got, { text: "hello" });

  // b joins too, as the proof that a room-message went out: it gets its own message.
  await b.join("room-1");
  const late = [];
  a.on("room-message", (p) => late.push(p));
  assert.deepEqual(await a.leave("room-1"), { room: "room-1" });
  await echo(a, "left"); // the server has handled a's left-room
  const bGot = nextEvent(b, "room-message");
  b.emit("room-message", { room: "room-1", message: "after leave" });
  assert.equal(await bGot, "after leave"); // the server has handled the room-message
  await echo(a, "sync"); // anything the server sent a before this echo has arrived
  assert.deepEqual(late, [], "a left room-1 and got nothing more");

  const [aConn] = server.connectionsOf("/ws?a");
  assert.deepEqual(aConn.frames, [
    { event: "join-room", room: "room-1" },
    { event: "message", payload: "joined" },
    { event: "left-room", room: "room-1" },
    { event: "message", payload: "left" },
    { event: "message", payload: "sync" },
  ]);
  assertNoIds(server.connectionsOf("/ws?b")[0].frames);
});

test("vania: join/leave/emit made before `connect` are sent once connected, in call order", async () => {
  const server = await fakeServer();
  const ws = client(server.url());
  const joined = ws.join("q1");
  ws.emit("typing", 1); // an event the server has no handler for: ignored, as Vania does
  const joined2 = ws.join("q2");
  const left = ws.leave("q2");
  assert.equal(ws.state, "connecting");
  assert.deepEqual(await joined, { room: "q1" });
  assert.deepEqual(await joined2, { room: "q2" });
  assert.deepEqual(await left, { room: "q2" });
  await echo(ws, "end");
  assert.deepEqual(server.connections[0].frames, [
    { event: "join-room", room: "q1" },
    { event: "typing", payload: 1 },
    { event: "join-room", room: "q2" },
    { event: "left-room", room: "q2" },
    { event: "message", payload: "end" },
  ]);
});

test("vania: request rejects at once with `unsupported` and sends nothing", async () => {
  const server = await fakeServer();
  const ws = client(server.url());
  await ws.ready;
  const started = Date.now();
  const err = await ws.request("message", 1).then(
    () => assert.fail("request resolved"),
    (e) => e,
  );
  assert.ok(Date.now() - started < 500, "rejected at once, not after a timeout");
  assert.ok(err instanceof VaniaWsError);
  assert.equal(err.code, "unsupported");
  assert.match(err.message, /Vania server does not answer requests/);
  assert.match(err.message, /emit/);
  // Also before the connection opens, and bad arguments are still TypeErrors.
  const early = client(server.url("/ws?early"));
  await assert.rejects(early.request("x"), { code: "unsupported" });
  assert.throws(() => ws.request(42), TypeError);
  await echo(ws, "after");
  assert.deepEqual(server.connections[0].frames, [{ event: "message", payload: "after" }]);
});

test("vania: error frames without id (a failing middleware) go to `error` listeners", async () => {
  const server = await fakeServer();
  const ws = client(server.url("/guarded"));
  await ws.ready;
  const error = nextEvent(ws, "error");
  ws.emit("message", 1);
  assert.deepEqual(await error, { message: "Unauthorized" });
  assert.equal(ws.state, "open");
});

test("vania: after the server drops the socket the client reconnects and rejoins its rooms", async () => {
  const server = await fakeServer();
  const path = "/ws?a";
  const ws = client(server.url(path), { reconnectDelayMs: 50, reconnectMaxDelayMs: 400 });
  const states = [];
  ws.on("state", (state) => states.push(state));
  const firstReady = ws.ready;
  await firstReady;
  await ws.join("kept");
  await ws.join("gone");
  await ws.leave("gone"); // left: not rejoined
  await echo(ws, "before");

  const dropped = nextState(ws, "reconnecting");
  server.connectionsOf(path)[0].socket.terminate(); // no close frame: the client sees a 1006
  await dropped;
  assert.equal(ws.state, "reconnecting");
  assert.notEqual(ws.ready, firstReady, "a new ready promise while reconnecting");
  const queuedBack = nextEvent(ws, "message");
  ws.emit("message", "queued"); // made while reconnecting: sent after the rejoin
  await ws.ready;
  assert.equal(ws.state, "open");
  assert.equal(ws.sessionId, null);
  assert.deepEqual(states, ["open", "reconnecting", "open"]);
  assert.equal(await queuedBack, "queued"); // its echo: the server has handled what came before

  const [first, second] = server.connectionsOf(path);
  assert.ok(second, "the fake server saw a second connection");
  assert.deepEqual(first.frames, [
    { event: "join-room", room: "kept" },
    { event: "join-room", room: "gone" },
    { event: "left-room", room: "gone" },
    { event: "message", payload: "before" },
  ]);
  assert.deepEqual(
    second.frames,
    [
      { event: "join-room", room: "kept" },
      { event: "message", payload: "queued" },
    ],
    "the room is rejoined first, then the queued emit goes out",
  );
  assertNoIds([...first.frames, ...second.frames]);

  // The rejoined membership works: another client's room-message reaches it.
  const other = client(server.url("/ws?other"));
  await other.ready;
  const got = nextEvent(ws, "room-message");
  other.emit("room-message", { room: "kept", message: "back" });
  assert.equal(await got, "back");
});

test("protocol: a value other than \"vania-ws\" or \"vania\" is a TypeError at connect()", async () => {
  const server = await fakeServer();
  // A client that connect() wrongly returns is closed at once, so a regression fails here
  // rather than leave a socket open that keeps the test process alive.
  const connectOrClose = (options) => () => connect(server.url(), options).close();
  for (const protocol of ["bogus", "Vania", "", null, 1]) {
    assert.throws(connectOrClose({ protocol }), TypeError, `protocol ${String(protocol)}`);
  }
  assert.throws(connectOrClose({ protocol: "bogus" }), /protocol must be "vania-ws" or "vania"/);
  // A valid client connected after them is the only connection the server ever saw.
  await client(server.url("/ws?valid")).ready;
  assert.deepEqual(server.connections.map((c) => c.url), ["/ws?valid"], "no socket was opened for them");
});

test("the default protocol (vania-ws) does not take Vania's `connect` for the handshake", async () => {
  const server = await fakeServer();
  const ws = track.client(connect(server.url(), { protocol: undefined })); // undefined: the default
  assert.deepEqual(await nextEvent(ws, "connect"), null, "an ordinary event for vania-ws");
  assert.equal(ws.state, "connecting", "still waiting for `connected`");
});
