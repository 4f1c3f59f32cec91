// The chat page in a real headless Chromium, against a real example-chat server: two pages
// in one room see each other's messages and typing, a third in another room sees none of it,
// private messages reach only their target, the member list follows joins and leaves, a
// restarted server is reconnected to and the rooms rejoined, requests get their ack or their
// error, and /metrics follows the traffic. A screenshot of the page is saved under target/.
//
// Run: `npm test` here, after `cargo build -p example-chat` (or set EXAMPLE_CHAT_BIN).
// Chromium is Debian's (`apt-get install chromium`), or CHROMIUM=/path/to/chromium.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, statSync, mkdirSync } from "node:fs";
import * as path from "node:path";
const { dirname, resolve } = path;
const pathJoin = path.join;
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, "../../../..");
const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : pathJoin(repo, "target");
const binary = process.env.EXAMPLE_CHAT_BIN ?? pathJoin(target, "debug", "example-chat");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TIMEOUT = 10_000;

let server;
let browser;
let base;
const pages = [];
const pageErrors = [];

/** Starts example-chat on `port` (0: a free one) and resolves once it listens. */
function startServer(port = 0) {
  if (!existsSync(binary)) {
    throw new Error(`no example-chat binary at ${binary}: run \`cargo build -p example-chat\` first (or set EXAMPLE_CHAT_BIN)`);
  }
  const child = spawn(binary, [], {
    env: { ...process.env, APP_HOST: "127.0.0.1", APP_PORT: String(port), RUST_LOG: "info", NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`example-chat did not start in time:\n${log}`)), 20_000);
    const onData = (chunk) => {
      log += chunk;
      const listening = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(log);
      if (listening) {
        clearTimeout(timer);
        child.stdout.off("data", onData);
        resolvePromise({ child, port: Number(listening[1]), log: () => log });
      }
    };
    child.stdout.setEncoding("utf8").on("data", onData);
    child.stderr.setEncoding("utf8").on("data", (chunk) => (log += chunk));
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`example-chat exited (${code}) before listening:\n${log}`));
    });
  });
}

function stopServer(running) {
  return new Promise((resolvePromise) => {
    if (running.child.exitCode !== null) return resolvePromise();
    running.child.once("exit", () => resolvePromise());
    running.child.kill("SIGTERM");
  });
}

/** Opens the chat as `name` and waits until its client is connected. */
async function openChat(name) {
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => pageErrors.push(`${name}: ${error.message}`));
  await page.goto(base);
  await page.fill("#name", name);
  await page.click("#login button[type=submit]");
  await page.waitForSelector('#state[data-state="open"]');
  // The room list comes with the first request after connecting.
  await page.waitForSelector('#rooms li[data-room="general"]');
  assert.ok(await page.locator("#login").isHidden(), "the name form gives way to the chat");
  page.sessionId = () => page.evaluate(() => window.chat.ws.sessionId);
  pages.push(page);
  return page;
}

async function join(page, room) {
  await page.click(`#rooms li[data-room="${room}"] button`);
  await page.waitForSelector(`#joined button[data-room="${room}"]`);
  await page.waitForSelector(`#members li[data-id="${await page.sessionId()}"]`);
}

async function leave(page, room) {
  await page.click(`#rooms li[data-room="${room}"] button`);
  await page.waitForSelector(`#joined button[data-room="${room}"]`, { state: "detached" });
}

/** Sends `text` to the page's current room and waits until it is shown there. */
async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
  await seesMessage(page, text);
}

const seesMessage = (page, text) =>
  page.waitForFunction(
    (text) => [...document.querySelectorAll("#messages li.message .text")].some((li) => li.textContent === text),
    text,
  );

/** Resolves once every frame sent to `page` before now has been handled by it: frames are
 * handled in order, so the answer to a request comes after them. */
const settled = (page) => page.evaluate(() => window.chat.ws.request("rooms", null));

const text = (page, selector) => page.locator(selector).innerText();

async function metrics() {
  const response = await fetch(`${base}/metrics`);
  assert.equal(response.status, 200);
  return response.text();
}

function sample(metricsText, series) {
  const line = metricsText.split("\n").find((line) => line.startsWith(`${series} `));
  assert.ok(line, `no ${series} in /metrics:\n${metricsText}`);
  return Number(line.slice(series.length + 1));
}

before(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: install Debian's (\`apt-get install chromium\`) or set CHROMIUM`);
  }
  server = await startServer();
  base = `http://127.0.0.1:${server.port}`;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  if (server) await stopServer(server);
  assert.deepEqual(pageErrors, [], "no page threw");
});

let alice;
let bob;
let carol;
let says = 0;

test("two pages in one room see each other's messages and typing; a third room sees none", async () => {
  alice = await openChat("alice");
  bob = await openChat("bob");
  carol = await openChat("carol");
  await join(alice, "general");
  await join(bob, "general");
  await join(carol, "random");

  // Typing shows on the other member's page only.
  await alice.type("#text", "hel");
  await bob.waitForFunction(() => document.querySelector("#typing").textContent === "alice is typing…");
  assert.equal(await text(alice, "#typing"), "", "one's own typing is not shown");

  await say(alice, "hello from alice");
  says += 1;
  await seesMessage(bob, "hello from alice");
  // The message ends alice's typing on bob's page.
  await bob.waitForFunction(() => document.querySelector("#typing").textContent === "");
  await say(bob, "hi alice");
  says += 1;
  await seesMessage(alice, "hi alice");

  await settled(carol);
  const carolSees = await text(carol, "#messages");
  assert.ok(!carolSees.includes("hello from alice") && !carolSees.includes("hi alice"), carolSees);
  assert.equal(await text(carol, "#typing"), "");
  await say(carol, "anyone in random?");
  says += 1;
  await settled(alice);
  assert.ok(!(await text(alice, "#messages")).includes("anyone in random?"));
});

test("the member list follows joins and leaves", async () => {
  const [aliceId, bobId, carolId] = [await alice.sessionId(), await bob.sessionId(), await carol.sessionId()];
  await alice.waitForSelector(`#members li[data-id="${bobId}"]`);
  assert.equal(await alice.locator(`#members li[data-id="${carolId}"]`).count(), 0);

  await join(carol, "general");
  await alice.waitForSelector(`#members li[data-id="${carolId}"]`);
  await bob.waitForSelector(`#members li[data-id="${carolId}"]`);
  // Carol's own list has everyone, replayed with the room's history.
  await carol.waitForSelector(`#members li[data-id="${aliceId}"]`);
  await seesMessage(carol, "hello from alice");

  await leave(carol, "general");
  await alice.waitForSelector(`#members li[data-id="${carolId}"]`, { state: "detached" });
  await bob.waitForSelector(`#members li[data-id="${carolId}"]`, { state: "detached" });
});

test("a private message reaches only its target", async () => {
  const bobId = await bob.sessionId();
  await alice.selectOption("#private-to", bobId);
  await alice.fill("#private-text", "psst, bob");
  await alice.click("#private button[type=submit]");
  await bob.waitForFunction(() => document.querySelector("#private-log").innerText.includes("psst, bob"));
  assert.match(await text(bob, "#private-log"), /from alice/);
  await alice.waitForFunction(() => document.querySelector("#private-log").innerText.includes("to bob"));
  await settled(carol);
  assert.equal(await text(carol, "#private-log"), "");
});

test("a request gets its ack, and a failing one rejects with the error's code", async () => {
  const rooms = await alice.evaluate(() => window.chat.ws.request("rooms", null));
  const general = rooms.find((room) => room.name === "general");
  assert.equal(general.members, 2, JSON.stringify(rooms));

  const refused = await alice.evaluate(async () => {
    try {
      await window.chat.ws.request("say", { room: "not-joined", text: "hi" });
      return { resolved: true };
    } catch (error) {
      return { code: error.code, message: error.message, isError: error instanceof Error };
    }
  });
  assert.deepEqual(refused, { code: "handler_error", message: "join `not-joined` first", isError: true });
});

test("/metrics follows the traffic", async () => {
  const now = await metrics();
  assert.equal(sample(now, "vania_ws_connections"), 3);
  assert.equal(sample(now, 'vania_ws_handler_duration_seconds_count{route="/chat",event="say"}'), says + 1);
  assert.equal(sample(now, 'vania_ws_handler_duration_seconds_count{route="/chat",event="private"}'), 1);
  assert.equal(sample(now, 'vania_ws_errors_total{code="handler_error"}'), 1);
  assert.ok(sample(now, "vania_ws_rooms") >= 2);
  assert.ok(sample(now, "vania_ws_messages_in_total") > says);
  assert.ok(sample(now, "vania_ws_messages_out_total") > says);
});

test("the screenshot of the chat page is saved under target/", async () => {
  mkdirSync(target, { recursive: true });
  const shot = pathJoin(target, "chat-screenshot.png");
  await alice.screenshot({ path: shot, fullPage: true });
  assert.ok(statSync(shot).size > 10_000, "a real picture");
});

test("after a server restart the pages reconnect and rejoin by themselves", async () => {
  await stopServer(server);
  for (const page of [alice, bob, carol]) {
    await page.waitForSelector('#state[data-state="reconnecting"]');
  }
  assert.equal(await text(alice, "#state"), "reconnecting…");
  server = await startServer(server.port);
  for (const page of [alice, bob, carol]) {
    await page.waitForSelector('#state[data-state="open"]');
  }
  // New sessions, rejoined and re-announced: each sees the other's new id in the room.
  const [aliceId, bobId] = [await alice.sessionId(), await bob.sessionId()];
  await alice.waitForSelector(`#members li[data-id="${bobId}"]`);
  await bob.waitForSelector(`#members li[data-id="${aliceId}"]`);
  await say(alice, "back again");
  await seesMessage(bob, "back again");
  await settled(carol);
  assert.ok(!(await text(carol, "#messages")).includes("back again"));
});
