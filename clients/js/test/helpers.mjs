// What the test files of the client share.

// Resolves with the first `event` the client receives, as `{ payload, frame }`, or rejects
// after `ms`.
export function nextEvent(ws, event, ms = 3000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no "${event}" within ${ms} ms`));
    }, ms);
    const off = ws.on(event, (payload, frame) => {
      clearTimeout(timer);
      off();
      resolve({ payload, frame });
    });
  });
}

// The payload of the first `event` the client receives.
export const nextPayload = (ws, event, ms) => nextEvent(ws, event, ms).then(({ payload }) => payload);

// Servers and clients a test file starts, closed after each test (`afterEach` is the file's
// own, from node:test): `track.server(s)` and `track.client(ws)` return what they are given.
export function trackForCleanup(afterEach) {
  const servers = new Set();
  const clients = new Set();
  afterEach(async () => {
    for (const ws of clients) ws.close();
    clients.clear();
    await Promise.all([...servers].map((s) => s.close()));
    servers.clear();
  });
  return {
    server(server) {
      servers.add(server);
      return server;
    },
    client(ws) {
      clients.add(ws);
      return ws;
    },
  };
}
