// The reference of bench/events.py: a stock Node socket.io 4.8 server that answers the same
// writes as the daemon and emits the same payloads (the seed's Node implementation, in short).
//
// Usage: node reference-server.mjs '<options JSON>'
//   options: {port, models: [rows], providers: [rows], modelTemplate: row}
// Prints {"port": n} on stdout once listening. Routes (JSON):
//   POST /api/models {id, name}            → 201 {model}, then models:updated (items grow)
//   POST /api/providers/:id/(enable|disable) → 200 {provider}, then providers:updated
//   GET  /api/events/stats                  → {lastSeq}
import { createServer } from "node:http";
import { Server } from "socket.io";

const options = JSON.parse(process.argv[2] ?? "{}");
const models = options.models ?? [];
const providers = options.providers ?? [];
const template = options.modelTemplate ?? {};
const instance = "node-reference";
let seq = 0;

const http = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => handle(req, res, body));
});
// As in the seed's src/index.js.
const io = new Server(http, {
  cors: { origin: "*", methods: ["GET", "POST"], credentials: true },
  transports: ["websocket", "polling"],
});
io.on("connection", (socket) => {
  socket.emit("proxy:status", { status: "stopped", seq, instance, timestamp: new Date().toISOString() });
});

function reply(res, status, obj) {
  const text = JSON.stringify(obj);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}

function handle(req, res, body) {
  const url = new URL(req.url, "http://localhost");
  const now = new Date();
  if (req.method === "POST" && url.pathname === "/api/models") {
    const data = JSON.parse(body || "{}");
    const stamp = Math.floor(now.getTime() / 1000);
    const row = { ...template, id: data.id, name: data.name, created_at: stamp, updated_at: stamp };
    models.push(row);
    reply(res, 201, { model: row });
    // The seed emits after the response has been sent.
    seq += 1;
    io.emit("models:updated", {
      action: "created", modelId: row.id, items: models, total: models.length,
      timestamp: now.toISOString(), seq, instance,
    });
    return;
  }
  const toggle = url.pathname.match(/^\/api\/providers\/([^/]+)\/(enable|disable)$/);
  if (req.method === "POST" && toggle) {
    const provider = providers.find((p) => p.id === toggle[1]);
    if (!provider) return reply(res, 404, { error: { code: "provider_not_found" } });
    provider.enabled = toggle[2] === "enable";
    reply(res, 200, { provider });
    seq += 1;
    io.emit("providers:updated", {
      action: toggle[2] + "d", providerId: provider.id, items: providers, total: providers.length,
      enabled: providers.filter((p) => p.enabled).length, timestamp: now.toISOString(), seq, instance,
    });
    return;
  }
  if (req.method === "GET" && url.pathname === "/api/events/stats") {
    return reply(res, 200, { lastSeq: seq, instance });
  }
  reply(res, 404, { error: { code: "route_not_found" } });
}

http.listen(options.port ?? 0, "127.0.0.1", () => {
  process.stdout.write(JSON.stringify({ port: http.address().port }) + "\n");
});
process.on("SIGTERM", () => process.exit(0));
