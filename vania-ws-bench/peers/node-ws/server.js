// Node's `ws` package (v8) doing the suite's raw-dialect work, written as its users write it:
//   "J<room>"         join: added to the room's Set, answered with the same text
//   "B..."            room broadcast to "bench", sender included
//   "R<room>|<text>"  <text> to every member of <room>
//   "N<name>"         name this socket (answered with the same text)
//   "D<name>|<text>"  <text> to the socket named <name>
//   anything else: echoed back
// Listens on 127.0.0.1:$APP_PORT with a backlog of 1024 and TCP_NODELAY. `ws` is found through
// NODE_PATH (the suite installs it into its cache folder).
"use strict";
const http = require("http");
const { WebSocketServer } = require("ws");

const port = Number(process.env.APP_PORT || 8000);
const rooms = new Map();
const named = new Map();
const server = http.createServer({ noDelay: true }, (req, res) => {
  res.writeHead(400).end("websocket only");
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 });

function toRoom(name, data) {
  const room = rooms.get(name);
  if (room) for (const member of room) member.send(data, { binary: false });
}

wss.on("connection", (ws) => {
  const joined = [];
  let name = null;
  ws.on("message", (data, isBinary) => {
    if (isBinary) return ws.send(data, { binary: true });
    switch (data[0]) {
      case 66 /* B */:
        // `data` is a Buffer; sending it as text does not decode or re-encode it.
        return toRoom("bench", data);
      case 82 /* R */: {
        const bar = data.indexOf(124 /* | */);
        return toRoom(data.toString("latin1", 1, bar), data.subarray(bar + 1));
      }
      case 68 /* D */: {
        const bar = data.indexOf(124 /* | */);
        const to = named.get(data.toString("latin1", 1, bar));
        if (to) to.send(data.subarray(bar + 1), { binary: false });
        return;
      }
      case 74 /* J */: {
        const room = data.toString("latin1", 1);
        if (!rooms.has(room)) rooms.set(room, new Set());
        rooms.get(room).add(ws);
        joined.push(room);
        return ws.send(data, { binary: false });
      }
      case 78 /* N */:
        name = data.toString("latin1", 1);
        named.set(name, ws);
        return ws.send(data, { binary: false });
      default:
        ws.send(data, { binary: false });
    }
  });
  const leave = () => {
    for (const room of joined) {
      const members = rooms.get(room);
      if (members && members.delete(ws) && members.size === 0) rooms.delete(room);
    }
    joined.length = 0;
    if (name !== null && named.get(name) === ws) named.delete(name);
  };
  ws.on("close", leave);
  ws.on("error", leave);
});

server.listen({ host: "127.0.0.1", port, backlog: 1024 }, () => {
  console.log(`node-ws listening on 127.0.0.1:${port}`);
});
