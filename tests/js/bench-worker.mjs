// A client worker of bench/events.py: many socket.io-client 4.x clients in one process.
//
// Usage: node bench-worker.mjs '<options JSON>'   options: {url, transports?}
// Commands on stdin, one JSON per line; one JSON answer per command on stdout:
//   {"cmd": "connect", "n"}          → {"clients"} once all n more are connected and greeted
//   {"cmd": "wait", "seq", "timeout"} → {"received"}: clients that have seq (waits for all)
//   {"cmd": "collect"}               → {"receipts": {seq: [ns, ...]}, "drops": {reason: n}}
//                                       and forgets them (drops: clients the server or the
//                                       connection ended, by socket.io-client's reason)
//   {"cmd": "disconnect"}            → {"clients": 0}
// Receipt times are process.hrtime (CLOCK_MONOTONIC, the same clock as Python's
// time.monotonic_ns), taken after socket.io-client decoded the event.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const options = JSON.parse(process.argv[2] ?? "{}");
const sockets = [];
let receipts = new Map(); // seq → [ns]
let waiters = [];
let drops = {}; // reason → clients that lost their connection without asking to

function received(seq) {
  const t = process.hrtime.bigint();
  let times = receipts.get(seq);
  if (!times) receipts.set(seq, (times = []));
  times.push(t.toString());
  if (waiters.length) settle();
}

// Answer the waits whose event every connected client has now.
function settle() {
  waiters = waiters.filter((w) => {
    const have = receipts.get(w.seq)?.length ?? 0;
    if (have >= sockets.length) {
      w.resolve(have);
      return false;
    }
    return true;
  });
}

function connectOne() {
  return new Promise((resolve, reject) => {
    const socket = io(options.url, {
      transports: options.transports ?? ["websocket"],
      reconnection: false,
      forceNew: true,
      timeout: 60000,
    });
    const onEvent = (data) => received(data.seq);
    socket.on("models:updated", onEvent);
    socket.on("providers:updated", onEvent);
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") return;
      drops[reason] = (drops[reason] ?? 0) + 1;
      const i = sockets.indexOf(socket); // no longer waited for (reconnection is off)
      if (i >= 0) sockets.splice(i, 1);
      settle();
    });
    socket.once("proxy:status", () => resolve(socket));
    socket.once("connect_error", (err) => reject(err));
    sockets.push(socket);
  });
}

const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function run(cmd) {
  if (cmd.cmd === "connect") {
    for (let todo = cmd.n; todo > 0; todo -= 50) {
      await Promise.all(Array.from({ length: Math.min(todo, 50) }, connectOne));
    }
    out({ clients: sockets.length });
  } else if (cmd.cmd === "wait") {
    const have = receipts.get(cmd.seq)?.length ?? 0;
    if (have >= sockets.length) return out({ received: have });
    const got = await new Promise((resolve) => {
      const waiter = { seq: cmd.seq, resolve };
      waiters.push(waiter);
      setTimeout(() => resolve(receipts.get(cmd.seq)?.length ?? 0), (cmd.timeout ?? 30) * 1000);
    });
    out({ received: got });
  } else if (cmd.cmd === "collect") {
    out({ receipts: Object.fromEntries(receipts), drops });
    receipts = new Map();
    drops = {};
  } else if (cmd.cmd === "disconnect") {
    for (const socket of sockets) socket.disconnect();
    sockets.length = 0;
    out({ clients: 0 });
  }
}

let chain = Promise.resolve();
createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  chain = chain.then(() => run(cmd)).catch((err) => out({ error: String(err) }));
}).on("close", () => {
  for (const socket of sockets) socket.disconnect();
  setTimeout(() => process.exit(0), 50);
});
