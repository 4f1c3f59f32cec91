// What both test files of the client share.

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
