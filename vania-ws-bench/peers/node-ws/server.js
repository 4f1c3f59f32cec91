// Node's `ws` package (v8) doing the suite's raw-dialect work, written as its users write it:
//   "J"          join the room: added to a Set, answer "J"
//   "B..."       room broadcast: sent to every member of the Set, sender included
//   anything else: echoed back
// Listens on 127.0.0.1:$APP_PORT with a backlog of 1024 and TCP_NODELAY. `ws` is found through
// NODE_PATH (the suite installs it into its cache folder).
"use strict";
const http = require("http");
const { WebSocketServer } = require("ws");

const port = Number(process.env.APP_PORT || 8000);
const room = new Set();
const server = http.createServer({ noDelay: true }, (req, res) => {
  res.writeHead(400).end("websocket only");
});
const wss = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 });

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    // `data` is a Buffer; sending it back as text does not decode or re-encode it.
    if (!isBinary && data.length === 1 && data[0] === 74 /* "J" */) {
      room.add(ws);
      ws.send("J");
    } else if (!isBinary && data[0] === 66 /* "B" */) {
      for (const member of room) member.send(data, { binary: false });
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on("close", () => room.delete(ws));
  ws.on("error", () => room.delete(ws));
});

server.listen({ host: "127.0.0.1", port, backlog: 1024 }, () => {
  console.log(`node-ws listening on 127.0.0.1:${port}`);
});
