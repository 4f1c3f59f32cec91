// Bun's WebSocket server (uWebSockets inside) doing the suite's raw-dialect work:
//   "J"          join: subscribe to topic "bench", answer "J"
//   "B..."       room broadcast: server.publish("bench", msg) to every subscriber, sender included
//   anything else: echoed back
// Listens on 127.0.0.1:$APP_PORT. Started by the suite (vania-ws-bench/src/bin/suite).
const port = Number(process.env.APP_PORT || 8000);

const server = Bun.serve({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    if (server.upgrade(req)) return undefined;
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
      if (msg === "J") {
        ws.subscribe("bench");
        ws.send("J");
      } else if (msg.charCodeAt(0) === 66 /* "B" */) {
        server.publish("bench", msg);
      } else {
        ws.send(msg);
      }
    },
  },
});
console.log(`bun listening on 127.0.0.1:${server.port}`);
