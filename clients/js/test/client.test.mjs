// Tests of the browser client against the real server: `js-test-server` (tests/src/bin), a
// vania-ws app whose events exercise every part of the client. Run with `npm test`
// (node --experimental-websocket --test test/).
//
// Every assertion waits on a reply from the server (an ack orders everything the server sent
// before it on that connection), not on sleeps; the only waits are polls for a state change
// with a deadline, and one short pause where the thing asserted is that nothing happens.

import { test as nodeTest, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { connect, VaniaWsError } from "../vania-ws.js";
import { nextEvent } from "./helpers.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, "../../..");

function serverBinary() {
  if (process.env.VANIA_WS_JS_TEST_SERVER) return process.env.VANIA_WS_JS_TEST_SERVER;
  const targetDir = process.env.CARGO_TARGET_DIR
    ? path.resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : path.join(repoRoot, "target");
  return path.join(targetDir, "debug", "js-test-server");
}

const servers = new Set();
const clients = new Set();

// Starts js-test-server (on `port`, 0 for a free one) and resolves once it prints
// `listening on HOST:PORT`, i.e. once it accepts connections.
function startServer({ port = 0, env = {} } = {}) {
  const bin = serverBinary();
  if (!existsSync(bin)) {
    throw new Error(
      `js-test-server not found at ${bin}; build it with \`cargo build -p vania-ws-tests --bin js-test-server\` ` +
        "(or point VANIA_WS_JS_TEST_SERVER at it)",
    );
  }
  const proc = spawn(bin, [], {
    env: { ...process.env, APP_PORT: String(port), WS_ALLOWED_ORIGINS: "*", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const server = { proc, port: 0, url: "" };
  servers.add(server);
  let stderr = "";
  proc.stderr.on("data", (chunk) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(() => reject(new Error(`js-test-server did not start in 10 s: ${stderr}`)), 10000);
    proc.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`js-test-server exited (${code ?? signal}) before listening: ${stderr}`));
    });
    proc.stdout.on("data", (chunk) => {
      stdout += chunk;
      const match = /listening on ([\d.]+):(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        server.port = Number(match[2]);
        server.url = `ws://${match[1]}:${server.port}/ws`;
        resolve(server);
      }
    });
  });
}

function killServer(server) {
  return new Promise((resolve) => {
    servers.delete(server);
    if (server.proc.exitCode !== null || server.proc.signalCode !== null) return resolve();
    server.proc.once("exit", () => resolve());
    server.proc.kill("SIGKILL");
  });
}

function client(url, options) {
  const ws = connect(url, options);
  clients.add(ws);
  return ws;
}


// Polls `condition` until it holds; only for things no reply can signal (a state change).
async function waitFor(condition, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Counts the sockets the client opens, per URL: the way to see that it retries (or does not)
// when nothing else is observable. The client looks up globalThis.WebSocket on each attempt.
// It also keeps what the latest socket of each URL received, to see the order of frames against
// the client's own promises. Its listener is added first, so it sees a frame before the client.
const socketsOpened = new Map();
const framesReceived = new Map();
const NativeWebSocket = globalThis.WebSocket;
globalThis.WebSocket = class CountingWebSocket extends NativeWebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    const key = String(url);
    socketsOpened.set(key, (socketsOpened.get(key) ?? 0) + 1);
    const frames = [];
    framesReceived.set(key, frames);
    this.addEventListener("message", (message) => frames.push(JSON.parse(message.data)));
  }
};

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Whether a promise has settled, without waiting for it.
async function isSettled(promise) {
  const marker = Symbol("pending");
  const result = await Promise.race([promise.then(() => true, () => true), Promise.resolve(marker)]);
  return result !== marker;
}

// A per-test deadline: a broken client must fail its test, not hang the run.
const test = (name, fn) => nodeTest(name, { timeout: 15000 }, fn);

let shared;

before(async () => {
  shared = await startServer();
});

after(async () => {
  for (const ws of clients) ws.close();
  await Promise.all([...servers].map(killServer));
});

test("ready resolves on `connected`; sessionId and state; whoami agrees", async () => {
  const ws = client(shared.url);
  assert.equal(ws.state, "connecting");
  assert.equal(ws.sessionId, null);
  await ws.ready;
  assert.match(ws.sessionId, /^ws:[0-9a-f-]{36}$/);
  assert.equal(ws.state, "open");
  const me = await ws.request("whoami", null);
  assert.equal(me.session_id, ws.sessionId);
  assert.deepEqual(me.rooms, []);
  // Request ids are the client's own counter, from 1.
  assert.deepEqual(
    framesReceived.get(shared.url).filter((f) => f.event === "ack").map((f) => f.id),
    [1],
  );
});

test("request: echo returns the payload; error frames reject with code and message", async () => {
  const ws = client(shared.url);
  await ws.ready;
  assert.deepEqual(await ws.request("echo", { a: [1, 2], b: "x" }), { a: [1, 2], b: "x" });
  assert.equal(await ws.request("echo", "a string"), "a string");
  assert.equal(await ws.request("echo", null), null);
  assert.equal(await ws.request("echo"), null); // a missing payload is null

  const failed = await ws.request("fail").then(
    () => assert.fail("fail resolved"),
    (err) => err,
  );
  assert.ok(failed instanceof Error);
  assert.ok(failed instanceof VaniaWsError);
  assert.equal(failed.code, "handler_error");
  assert.equal(failed.message, "requested failure");

  await assert.rejects(ws.request("no-such-event", 1), (err) => {
    assert.equal(err.code, "unknown_event");
    assert.match(err.message, /no-such-event/);
    return true;
  });
  // The connection survives errors (PROTOCOL §5).
  assert.equal(await ws.request("echo", 7), 7);
});

test("request timeout: rejects with `timeout`, the connection stays usable", async () => {
  const ws = client(shared.url, { requestTimeoutMs: 10000 });
  await ws.ready;
  const started = Date.now();
  await assert.rejects(ws.request("slow", 800, { timeoutMs: 150 }), (err) => {
    assert.equal(err.code, "timeout");
    assert.ok(err instanceof VaniaWsError);
    return true;
  });
  assert.ok(Date.now() - started < 700, "the per-call timeout applies");
  // The late ack of the timed-out request is ignored; the next request works (it runs once
  // `slow` is done, as the server handles one connection's events in order).
  assert.equal(await ws.request("echo", "still here"), "still here");
  assert.equal(ws.state, "open");

  const short = client(shared.url, { requestTimeoutMs: 100 });
  await short.ready;
  await assert.rejects(short.request("slow", 500), { code: "timeout" }); // the client-wide default
});

test("on/off: a server event reaches the handler with (payload, frame); not after off()", async () => {
  const ws = client(shared.url);
  await ws.ready;
  const seen = [];
  const off = ws.on("ping-back", (payload, frame) => seen.push({ payload, frame }));
  const also = [];
  const offAlso = ws.on("ping-back", (payload) => also.push(payload));

  // Fire-and-forget: the server's `emit` event sends `ping-back` to us.
  const first = nextEvent(ws, "ping-back");
  ws.emit("emit", { event: "ping-back", payload: { n: 1 } });
  await first;
  assert.deepEqual(seen.map((s) => s.payload), [{ n: 1 }]);
  assert.equal(seen[0].frame.event, "ping-back");
  assert.deepEqual(seen[0].frame.payload, { n: 1 });
  assert.deepEqual(also, [{ n: 1 }]);

  off();
  off(); // idempotent
  // The ack of `emit` comes after the event it emitted, so once it resolves the event is in.
  assert.equal(await ws.request("emit", { event: "ping-back", payload: { n: 2 } }), null);
  assert.equal(seen.length, 1, "an unsubscribed handler does not run");
  assert.deepEqual(also, [{ n: 1 }, { n: 2 }], "the other registration still runs");
  offAlso();
});

test("error frames without id go to `error` listeners", async () => {
  const ws = client(shared.url);
  await ws.ready;
  const error = nextEvent(ws, "error");
  ws.emit("no-such-event", 1);
  const { payload } = await error;
  assert.equal(payload.code, "unknown_event");
  assert.equal(typeof payload.message, "string");
});

test("join/leave: room messages arrive while joined, not after leave; whoami agrees", async () => {
  const a = client(shared.url);
  const b = client(shared.url);
  await Promise.all([a.ready, b.ready]);

  assert.deepEqual(await a.join("room-1"), { room: "room-1" });
  assert.deepEqual((await a.request("whoami")).rooms, ["room-1"]);

  // b is not a member; a is.
  const got = nextEvent(a, "news");
  await b.request("to-room", { room: "room-1", event: "news", payload: { text: "hi" } });
  assert.deepEqual((await got).payload, { text: "hi" });

  await b.join("room-1");
  const late = [];
  a.on("news", (p) => late.push(p));
  assert.deepEqual(await a.leave("room-1"), { room: "room-1" });
  const bGot = nextEvent(b, "news");
  await b.request("to-room", { room: "room-1", event: "news", payload: "after leave" });
  assert.equal((await bGot).payload, "after leave"); // the sender is a member: it gets it
  // b's send finished before a's whoami was sent, so a message for a would precede this reply.
  assert.deepEqual((await a.request("whoami")).rooms, []);
  assert.deepEqual(late, [], "a left room-1 and got nothing more");
});

test("server requests: the first handler's value (or promise) is the ack", async (t) => {
  const ws = client(shared.url);
  await ws.ready;
  const secondCalls = [];
  ws.on("question", (p) => p + 1);
  ws.on("question", (p) => {
    secondCalls.push(p);
    return "ignored";
  });
  assert.equal(await ws.request("ask", { event: "question", payload: 41 }), 42);
  assert.deepEqual(secondCalls, [41], "every handler runs; only the first one answers");

  ws.on("slow-question", async (p) => {
    await sleep(20);
    return { doubled: p * 2 };
  });
  assert.deepEqual(await ws.request("ask", { event: "slow-question", payload: 21 }), { doubled: 42 });

  ws.on("void-question", () => {});
  assert.equal(await ws.request("ask", { event: "void-question", payload: 1 }), null);

  // No handler: no reply, so the server's call times out.
  await assert.rejects(ws.request("ask", { event: "nobody-listens", payload: 1, timeout_ms: 200 }), (err) => {
    assert.equal(err.code, "handler_error");
    return true;
  });

  // A throwing / rejecting handler: nothing is sent (and logged), the client keeps working.
  const logged = t.mock.method(console, "error", () => {});
  ws.on("throws", () => {
    throw new Error("boom");
  });
  ws.on("rejects", async () => {
    throw new Error("async boom");
  });
  await assert.rejects(ws.request("ask", { event: "throws", payload: 1, timeout_ms: 200 }), {
    code: "handler_error",
  });
  await assert.rejects(ws.request("ask", { event: "rejects", payload: 1, timeout_ms: 200 }), {
    code: "handler_error",
  });
  assert.equal(logged.mock.callCount(), 2);
  assert.equal(await ws.request("echo", "alive"), "alive");
});

test("frames sent before the connection opens are queued and sent in order", async () => {
  const ws = client(shared.url);
  assert.equal(ws.state, "connecting");
  const early = nextEvent(ws, "early");
  ws.emit("emit", { event: "early", payload: 1 });
  const joined = ws.join("queued-room");
  const reply = ws.request("whoami");
  assert.equal(ws.state, "connecting");
  assert.equal((await early).payload, 1);
  assert.deepEqual(await joined, { room: "queued-room" });
  assert.deepEqual((await reply).rooms, ["queued-room"], "the join went out before whoami");
});

test("bad arguments throw TypeError synchronously", async () => {
  const ws = client(shared.url);
  await ws.ready;
  assert.throws(() => ws.emit(42, null), TypeError);
  assert.throws(() => ws.emit("", null), TypeError);
  assert.throws(() => ws.request(undefined), TypeError);
  assert.throws(() => ws.request("echo", null, { timeoutMs: -1 }), TypeError);
  assert.throws(() => ws.request("echo", 1n), TypeError); // not serializable to JSON
  assert.throws(() => ws.emit("join-room", { room: "x" }), TypeError); // use join()
  assert.throws(() => ws.request("ack", null), TypeError);
  assert.throws(() => ws.join(""), TypeError);
  assert.throws(() => ws.join(5), TypeError);
  assert.throws(() => ws.join("é".repeat(128)), TypeError); // 256 bytes of UTF-8
  assert.throws(() => ws.leave(null), TypeError);
  assert.throws(() => ws.on("x", "not a function"), TypeError);
  assert.throws(() => ws.on(3, () => {}), TypeError);
  assert.throws(() => ws.on("ack", () => {}), TypeError);
  assert.throws(() => connect(42), TypeError);
  assert.throws(() => connect(shared.url, { reconnectDelayMs: 0 }), TypeError);
  // The longest valid room name works.
  assert.deepEqual(await ws.join("é".repeat(127) + "x"), { room: "é".repeat(127) + "x" });
});

test("reconnect after the server dies: new session, rooms rejoined, queued requests sent", async () => {
  // Its own server, since it is killed; a room limit of 2 lets a join fail for real.
  const server = await startServer({ env: { WS_MAX_ROOMS_PER_CLIENT: "2" } });
  const ws = client(server.url, { reconnectDelayMs: 50, reconnectMaxDelayMs: 400 });
  const states = [];
  ws.on("state", (state, detail) => states.push({ state, detail }));
  const firstReady = ws.ready;
  await firstReady;
  const firstSession = ws.sessionId;

  await ws.join("a");
  await ws.join("b");
  await assert.rejects(ws.join("c"), { code: "room_limit" }); // refused: not rejoined later
  await ws.leave("b"); // left: not rejoined later
  const racing = ws.join("x");
  ws.leave("x"); // before the join's ack: the ack must not put "x" back into the rejoin set
  await racing;
  assert.deepEqual((await ws.request("whoami")).rooms, ["a"]);

  // Sent at once (the client is open); it fails when the socket closes, which may come before
  // the server's exit is reported, so the assertion is attached first.
  const inFlight = assert.rejects(ws.request("slow", 5000), { code: "disconnected" }); // not resent
  await killServer(server);
  await inFlight;
  await waitFor(() => ws.state === "reconnecting", 'state "reconnecting"');
  assert.equal(states.at(-1).state, "reconnecting");
  assert.equal(typeof states.at(-1).detail.code, "number");
  assert.equal(ws.sessionId, null);

  assert.notEqual(ws.ready, firstReady, "a new ready promise while reconnecting");
  const readyAgain = ws.ready;
  assert.equal(await isSettled(readyAgain), false);
  const queued = ws.request("whoami"); // made while reconnecting: waits for the connection
  const queuedEmit = nextEvent(ws, "queued-emit", 8000);
  ws.emit("emit", { event: "queued-emit", payload: "x" });

  // Let a few attempts fail against the dead port before the server comes back.
  const attempts = socketsOpened.get(server.url);
  await waitFor(() => socketsOpened.get(server.url) >= attempts + 2, "two failed attempts");
  assert.equal(ws.state, "reconnecting");
  const restarted = await startServer({ port: server.port, env: { WS_MAX_ROOMS_PER_CLIENT: "2" } });
  await readyAgain;
  assert.equal(ws.state, "open");
  assert.ok(
    framesReceived.get(server.url).some((f) => f.event === "ack" && f.payload?.room === "a"),
    "ready resolved after the rejoin's ack arrived",
  );
  assert.match(ws.sessionId, /^ws:/);
  assert.notEqual(ws.sessionId, firstSession);
  assert.deepEqual(
    states.map((s) => s.state),
    ["open", "reconnecting", "open"],
  );

  const me = await queued;
  assert.equal(me.session_id, ws.sessionId);
  assert.deepEqual(me.rooms, ["a"], "rooms are rejoined before queued requests are sent");
  assert.equal((await queuedEmit).payload, "x");

  const other = client(restarted.url);
  await other.ready;
  const news = nextEvent(ws, "news");
  await other.request("to-room", { room: "a", event: "news", payload: "back" });
  assert.equal((await news).payload, "back");
  ws.close();
  other.close();
  await killServer(restarted);
});

test("a rejoin the new server refuses is reported on `error` and forgotten", async () => {
  const server = await startServer();
  const ws = client(server.url, { reconnectDelayMs: 50, reconnectMaxDelayMs: 400 });
  await ws.ready;
  await ws.join("r1");
  await ws.join("r2");
  const errors = [];
  ws.on("error", (payload) => errors.push(payload));
  await killServer(server);
  await waitFor(() => ws.state === "reconnecting", 'state "reconnecting"');
  // The server comes back allowing one room per client: the second rejoin is refused.
  const restarted = await startServer({ port: server.port, env: { WS_MAX_ROOMS_PER_CLIENT: "1" } });
  await ws.ready;
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, "room_limit");
  assert.equal(errors[0].room, "r2");
  assert.deepEqual((await ws.request("whoami")).rooms, ["r1"]);

  // The next reconnect rejoins only r1: no more errors.
  ws.request("close", 4000).catch(() => {});
  await waitFor(() => ws.state === "reconnecting", 'state "reconnecting"');
  await ws.ready;
  assert.deepEqual((await ws.request("whoami")).rooms, ["r1"]);
  assert.equal(errors.length, 1);
  ws.close();
  await killServer(restarted);
});

test("emits queued while not open are bounded: the oldest are dropped", async (t) => {
  const warned = t.mock.method(console, "warn", () => {});
  const ws = client(shared.url, { maxQueuedEmits: 2 });
  const got = [];
  ws.on("q", (p) => got.push(p));
  for (const n of [1, 2, 3]) ws.emit("emit", { event: "q", payload: n });
  assert.equal(warned.mock.callCount(), 1);
  await ws.ready;
  await ws.request("echo", "sync"); // after the queued emits, so their events are in
  assert.deepEqual(got, [2, 3]);
});

for (const code of [4000, 1008, 1000]) {
  test(`a server close with ${code} reconnects`, async () => {
    const ws = client(shared.url, { reconnectDelayMs: 50 });
    await ws.ready;
    await ws.join("kept");
    const before = ws.sessionId;
    const states = [];
    ws.on("state", (state, detail) => states.push({ state, detail }));
    // Its own ack may or may not precede the close; either is fine.
    ws.request("close", code).catch(() => {});
    await waitFor(() => states.length > 0, "a state change");
    assert.equal(states[0].state, "reconnecting");
    assert.equal(states[0].detail.code, code);
    await ws.ready;
    assert.notEqual(ws.sessionId, before);
    assert.deepEqual((await ws.request("whoami")).rooms, ["kept"]);
  });
}

test("close(): state closed, pending requests reject with `closed`, no reconnection", async () => {
  const url = `${shared.url}?close-test`;
  const ws = client(url, { reconnectDelayMs: 20 });
  await ws.ready;
  const states = [];
  ws.on("state", (s) => states.push(s));
  const pending = ws.request("slow", 2000);
  ws.close();
  assert.equal(ws.state, "closed");
  assert.deepEqual(states, ["closed"]);
  await assert.rejects(pending, { code: "closed" });
  await assert.rejects(ws.ready, { code: "closed" });
  await assert.rejects(ws.request("echo", 1), { code: "closed" });
  await assert.rejects(ws.join("r"), { code: "closed" });
  assert.throws(() => ws.emit("echo", 1), { code: "closed" });
  ws.close(); // idempotent
  // Nothing to wait on for "nothing happens": give a reconnect several backoff periods.
  await sleep(300);
  assert.equal(ws.state, "closed");
  assert.deepEqual(states, ["closed"]);
  assert.equal(ws.sessionId, null);
  assert.equal(socketsOpened.get(url), 1, "no socket opened after close()");
});

test("close() before the connection opens rejects ready and queued requests with `closed`", async () => {
  const ws = client(shared.url);
  const queued = ws.request("echo", 1);
  ws.close();
  await assert.rejects(ws.ready, (err) => {
    assert.ok(err instanceof VaniaWsError);
    assert.equal(err.code, "closed");
    return true;
  });
  await assert.rejects(queued, { code: "closed" });
  assert.equal(ws.state, "closed");
});

test("reconnect: false: a drop ends in `closed`", async () => {
  const ws = client(shared.url, { reconnect: false });
  await ws.ready;
  const states = [];
  ws.on("state", (s, detail) => states.push({ s, detail }));
  ws.request("close", 4001).catch(() => {});
  await waitFor(() => ws.state === "closed", 'state "closed"');
  assert.deepEqual(states.map((x) => x.s), ["closed"]);
  assert.equal(states[0].detail.code, 4001);
  await assert.rejects(ws.ready, { code: "closed" });
  await assert.rejects(ws.request("echo", 1), { code: "closed" });
});

test("reconnect: false: a failed first connection ends in `closed`", async () => {
  // An unregistered path: the upgrade is refused with 404 (PROTOCOL §1), no socket opens.
  const url = shared.url.replace(/\/ws$/, "/nope?no-reconnect");
  const ws = client(url, { reconnect: false });
  await assert.rejects(ws.ready, { code: "closed" });
  assert.equal(ws.state, "closed");
  assert.equal(socketsOpened.get(url), 1);
});

test("a refused handshake keeps retrying while reconnect is on", async () => {
  const url = shared.url.replace(/\/ws$/, "/nope?retry");
  const ws = client(url, { reconnectDelayMs: 20, reconnectMaxDelayMs: 40 });
  const states = [];
  ws.on("state", (s) => states.push(s));
  await waitFor(() => socketsOpened.get(url) >= 3, "three connection attempts");
  assert.equal(ws.state, "connecting", "never open: still connecting, not reconnecting");
  assert.deepEqual(states, []);
  assert.equal(await isSettled(ws.ready), false);
  ws.close(); // between two attempts: the pending retry is cancelled
  await assert.rejects(ws.ready, { code: "closed" });
  const attempts = socketsOpened.get(url);
  await sleep(150); // several retry periods
  assert.equal(socketsOpened.get(url), attempts, "no attempt after close()");
});
