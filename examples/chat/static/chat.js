// The chat page: everything goes through the browser client (/vania-ws.js), which reconnects
// by itself and rejoins this page's rooms; the page only redraws from the events it gets.
import { connect } from "/vania-ws.js";

const $ = (id) => document.getElementById(id);

/** The page's whole state; the DOM is redrawn from it. */
const chat = {
  ws: null,
  name: "",
  /** room name -> { lines: [], members: Map(id -> name), typing: Map(id -> {name, timer}) } */
  rooms: new Map(),
  current: null,
  /** The room list from the server: [{ name, members }]. */
  available: [],
};
// For the console and the browser tests.
window.chat = chat;

function showError(error) {
  $("error").textContent = error ? `${error.code ?? "error"}: ${error.message}` : "";
}

function wsUrl(name) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/chat?name=${encodeURIComponent(name)}`;
}

function setState(state) {
  const el = $("state");
  el.dataset.state = state;
  el.textContent = {
    connecting: "connecting…",
    open: `connected as ${chat.name}`,
    reconnecting: "reconnecting…",
    closed: "disconnected",
  }[state] ?? state;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

// ---- drawing -------------------------------------------------------------------------------

function drawRooms() {
  const names = new Set(chat.available.map((room) => room.name));
  for (const room of chat.rooms.keys()) names.add(room);
  const counts = new Map(chat.available.map((room) => [room.name, room.members]));
  $("rooms").replaceChildren(
    ...[...names].map((room) => {
      const joined = chat.rooms.has(room);
      const count = joined ? chat.rooms.get(room).members.size : counts.get(room) ?? 0;
      return el(
        "li",
        { dataset: { room } },
        el("span", {}, room, el("span", { className: "count" }, `(${count})`)),
        el("button", {
          type: "button",
          textContent: joined ? "Leave" : "Join",
          onclick: () => (joined ? leave(room) : join(room)),
        }),
      );
    }),
  );
  $("joined").replaceChildren(
    ...[...chat.rooms.keys()].map((room) =>
      el("button", {
        type: "button",
        textContent: `#${room}`,
        ariaCurrent: String(room === chat.current),
        dataset: { room },
        onclick: () => select(room),
      }),
    ),
  );
}

function drawRoom() {
  const room = chat.current && chat.rooms.get(chat.current);
  $("members-room").textContent = room ? `in #${chat.current}` : "";
  $("text").disabled = !room;
  $("send").querySelector("button").disabled = !room;
  $("text").placeholder = room ? `Message #${chat.current}` : "Join a room to talk";
  if (!room) {
    $("messages").replaceChildren();
    $("members").replaceChildren();
    $("typing").textContent = "";
    return;
  }
  $("messages").replaceChildren(...room.lines.map(drawLine));
  $("messages").scrollTop = $("messages").scrollHeight;
  $("members").replaceChildren(
    ...[...room.members].map(([id, name]) =>
      el(
        "li",
        { dataset: { id } },
        el("span", {}, id === chat.ws.sessionId ? `${name} (you)` : name),
        id === chat.ws.sessionId
          ? ""
          : el("button", {
              type: "button",
              textContent: "✉",
              title: `private message to ${name}`,
              onclick: () => {
                $("private-to").value = id;
                $("private-text").focus();
              },
            }),
      ),
    ),
  );
  const typing = [...room.typing.values()].map((who) => who.name);
  $("typing").textContent =
    typing.length === 0 ? "" : `${typing.join(", ")} ${typing.length === 1 ? "is" : "are"} typing…`;
  drawPrivateTargets();
}

function drawLine(line) {
  if (line.system) return el("li", { className: "system" }, line.text);
  const mine = line.id === chat.ws.sessionId;
  return el(
    "li",
    { className: mine ? "message me" : "message", dataset: { from: line.id } },
    el("span", { className: "who" }, line.name),
    el("span", { className: "text" }, line.text),
  );
}

function drawPrivateTargets() {
  const select = $("private-to");
  const chosen = select.value;
  const members = new Map();
  for (const room of chat.rooms.values()) {
    for (const [id, name] of room.members) if (id !== chat.ws.sessionId) members.set(id, name);
  }
  select.replaceChildren(
    ...[...members].map(([id, name]) => el("option", { value: id, textContent: name })),
  );
  if (members.has(chosen)) select.value = chosen;
}

function redraw() {
  drawRooms();
  drawRoom();
}

// ---- actions -------------------------------------------------------------------------------

async function refreshRooms() {
  chat.available = await chat.ws.request("rooms", null);
  drawRooms();
}

/** Lines that arrived for a room while its `entered` was on its way: said after the server
 * read the history, they come before the reply and must not be lost. */
const arriving = new Map();
const lineKey = (line) => `${line.id}\u0000${line.at}\u0000${line.text}`;

/** Tells the room this client is in it, and loads its history and members. */
async function enter(room) {
  const early = [];
  arriving.set(room, early);
  try {
    const state = await chat.ws.request("entered", room);
    const inHistory = new Set(state.history.map(lineKey));
    chat.rooms.set(room, {
      lines: [...state.history, ...early.filter((line) => !inHistory.has(lineKey(line)))],
      members: new Map(state.members.map((member) => [member.id, member.name])),
      typing: new Map(),
    });
    chat.current ??= room;
  } finally {
    arriving.delete(room);
  }
}

async function join(room) {
  try {
    showError(null);
    await chat.ws.join(room);
    await enter(room);
    chat.current = room;
    redraw();
    await refreshRooms();
  } catch (error) {
    showError(error);
  }
}

async function leave(room) {
  try {
    showError(null);
    await chat.ws.leave(room);
    chat.rooms.delete(room);
    if (chat.current === room) chat.current = chat.rooms.keys().next().value ?? null;
    redraw();
    await chat.ws.request("left", room);
    await refreshRooms();
  } catch (error) {
    showError(error);
  }
}

function select(room) {
  chat.current = room;
  redraw();
}

let typingSince = null;
let typingTimer = null;

/** Says "typing" once per burst of keystrokes, and "stopped" 2 s after the last one. */
function typed() {
  const room = chat.current;
  if (!room) return;
  if (typingSince !== room) {
    typingSince = room;
    chat.ws.emit("typing", { room, typing: true });
  }
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, 2000);
}

function stopTyping() {
  clearTimeout(typingTimer);
  if (typingSince !== null && chat.rooms.has(typingSince)) {
    chat.ws.emit("typing", { room: typingSince, typing: false });
  }
  typingSince = null;
}

async function say(event) {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !chat.current) return;
  try {
    showError(null);
    stopTyping();
    await chat.ws.request("say", { room: chat.current, text });
    $("text").value = "";
  } catch (error) {
    showError(error);
  }
}

async function sendPrivate(event) {
  event.preventDefault();
  const to = $("private-to").value;
  const text = $("private-text").value.trim();
  if (!to || !text) return;
  try {
    showError(null);
    const sent = await chat.ws.request("private", { to, text });
    $("private-log").append(
      el("li", { className: "private sent" }, el("span", { className: "who" }, `to ${sent.name}`), text),
    );
    $("private-text").value = "";
  } catch (error) {
    showError(error);
  }
}

// ---- events from the server ----------------------------------------------------------------

function listen(ws) {
  let opened = false;
  ws.on("state", async (state) => {
    setState(state);
    if (state === "reconnecting") {
      // The typing seen so far belongs to the old connection.
      for (const room of chat.rooms.values()) room.typing.clear();
      drawRoom();
    }
    if (state !== "open") return;
    if (!opened) {
      opened = true;
      return;
    }
    // Open again after a reconnect: the client has rejoined every room (with a new session
    // id); tell the rooms, and reload their history and members.
    try {
      for (const room of [...chat.rooms.keys()]) await enter(room);
      await refreshRooms();
      redraw();
    } catch (error) {
      showError(error);
    }
  });
  ws.on("message", (line) => {
    arriving.get(line.room)?.push(line);
    const room = chat.rooms.get(line.room);
    if (!room) return;
    room.lines.push(line);
    room.typing.delete(line.id);
    if (line.room === chat.current) drawRoom();
  });
  ws.on("member-joined", ({ room, id, name }) => {
    const joined = chat.rooms.get(room);
    if (!joined) return;
    if (!joined.members.has(id) && id !== ws.sessionId) {
      joined.lines.push({ system: true, text: `${name} joined` });
    }
    joined.members.set(id, name);
    redraw();
  });
  ws.on("member-left", ({ room, id, name }) => {
    const joined = chat.rooms.get(room);
    if (!joined || !joined.members.delete(id)) return;
    joined.typing.delete(id);
    joined.lines.push({ system: true, text: `${name} left` });
    redraw();
  });
  ws.on("typing", ({ room, id, name, typing }) => {
    const joined = chat.rooms.get(room);
    if (!joined || id === ws.sessionId) return;
    clearTimeout(joined.typing.get(id)?.timer);
    if (typing) {
      // A tab closed mid-word never says "stopped": forget it after a while.
      const timer = setTimeout(() => {
        joined.typing.delete(id);
        drawRoom();
      }, 5000);
      joined.typing.set(id, { name, timer });
    } else {
      joined.typing.delete(id);
    }
    if (room === chat.current) drawRoom();
  });
  ws.on("private", ({ name, text }) => {
    $("private-log").append(
      el("li", { className: "private received" }, el("span", { className: "who" }, `from ${name}`), text),
    );
  });
  ws.on("error", (error) => showError(error));
}

async function start(event) {
  event.preventDefault();
  const name = $("name").value.trim();
  if (!name) return;
  chat.name = name;
  $("login").hidden = true;
  $("chat").hidden = false;
  const ws = connect(wsUrl(name), { reconnect: true, requestTimeoutMs: 10000 });
  chat.ws = ws;
  listen(ws);
  setState(ws.state);
  try {
    await ws.ready;
    await refreshRooms();
    redraw();
    // Member counts of rooms this page is not in change without an event to this page.
    setInterval(() => ws.state === "open" && refreshRooms().catch(() => {}), 15_000);
  } catch (error) {
    showError(error);
  }
}

$("login").addEventListener("submit", start);
$("send").addEventListener("submit", say);
$("text").addEventListener("input", typed);
$("private").addEventListener("submit", sendPrivate);
$("new-room").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = $("new-room-name").value.trim();
  if (room) join(room);
  $("new-room-name").value = "";
});
