// Bun's WebSocket server (uWebSockets inside) doing the suite's raw-dialect work:
//   "J<room>"         join: subscribe to topic <room>, answer with the same text
//   "B..."            room broadcast: server.publish("bench", msg), sender included
//   "R<room>|<text>"  server.publish(<room>, <text>) to the room's subscribers
//   "N<name>"         name this socket (answered with the same text)
//   "D<name>|<text>"  send <text> to the socket named <name>
//   anything else: echoed back
// Listens on 127.0.0.1:$APP_PORT. Started by the suite (vania-ws-bench/src/bin/suite).
const port = Number(process.env.APP_PORT || 8000);
const named = new Map();

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    if (server.upgrade(req, { data: { name: null } })) return undefined;
    return new Response("websocket only", { status: 400 });
  },
  websocket: {
    perMessageDeflate: false,
    // Seconds without traffic before Bun closes a socket (120 by default): the idle
    // scenario holds silent connections, so the longest allowed value.
    idleTimeout: 960,
    // Bun pings idle sockets by default; the load generator answers, but no pings during a run.
    sendPings: false,
    maxPayloadLength: 64 * 1024,
    message(ws, msg) {
      switch (msg.charCodeAt(0)) {
        case 66 /* B */:
          server.publish("bench", msg);
          break;
        case 82 /* R */: {
          const bar = msg.indexOf("|");
          server.publish(msg.slice(1, bar), msg.slice(bar + 1));
          break;
        }
        case 68 /* D */: {
          const bar = msg.indexOf("|");
          const to = named.get(msg.slice(1, bar));
          if (to) to.send(msg.slice(bar + 1));
          break;
        }
        case 74 /* J */:
          ws.subscribe(msg.slice(1));
          ws.send(msg);
          break;
        case 78 /* N */:
          ws.data.name = msg.slice(1);
          named.set(ws.data.name, ws);
          ws.send(msg);
          break;
        default:
          ws.send(msg);
      }
    },
    close(ws) {
      if (ws.data.name !== null && named.get(ws.data.name) === ws) named.delete(ws.data.name);
    },
  },
});
console.log(`bun listening on 127.0.0.1:${server.port}`);
