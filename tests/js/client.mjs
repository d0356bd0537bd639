// A socket.io-client 4.x test client driven by pytest (tests/realtime/clients.py).
//
// Usage: node client.mjs '<options JSON>'
//   options: {url, transports?, auth?, extraHeaders?, reconnection?}
// Writes one JSON object per line to stdout:
//   {"type": "connect", "id", "transport"} | {"type": "connect_error", "message", "data"}
//   {"type": "event", "event", "data"} | {"type": "ack", "id", "data"|"error"}
//   {"type": "disconnect", "reason"} | {"type": "upgrade", "transport"}
// Reads commands, one JSON object per line, from stdin:
//   {"cmd": "emit", "id", "event", "data"}  → emits with an acknowledgement, answers "ack"
//   {"cmd": "close"}                         → disconnects and exits
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const options = JSON.parse(process.argv[2] ?? "{}");
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const socket = io(options.url, {
  transports: options.transports ?? ["websocket", "polling"],
  auth: options.auth,
  extraHeaders: options.extraHeaders,
  reconnection: options.reconnection ?? false,
  reconnectionDelay: 100,
  forceNew: true,
  timeout: 5000,
});

socket.on("connect", () => {
  out({ type: "connect", id: socket.id, transport: socket.io.engine.transport.name });
});
socket.on("connect_error", (err) => {
  out({ type: "connect_error", message: err.message, data: err.data ?? null });
});
socket.on("disconnect", (reason) => out({ type: "disconnect", reason }));
socket.io.on("open", () => {
  socket.io.engine.on("upgrade", (t) => out({ type: "upgrade", transport: t.name }));
});
socket.onAny((event, data) => out({ type: "event", event, data: data ?? null }));

function shutdown() {
  socket.disconnect();
  // Let the close packet go out, then leave.
  setTimeout(() => process.exit(0), 20);
}

const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.cmd === "emit") {
    socket
      .timeout(5000)
      .emitWithAck(cmd.event, cmd.data)
      .then((data) => out({ type: "ack", id: cmd.id, data }))
      .catch((err) => out({ type: "ack", id: cmd.id, error: String(err) }));
  } else if (cmd.cmd === "close") {
    shutdown();
  }
});
commands.on("close", shutdown);
