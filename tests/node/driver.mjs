// Drives real socket.io-client sockets for the Python tests.
// Commands arrive as JSON lines on stdin; everything a socket sees leaves as JSON lines on stdout.
import { io } from "socket.io-client";
import { createInterface } from "node:readline";

const sockets = new Map();
const out = (msg) => process.stdout.write(JSON.stringify(msg) + "\n");

function connect({ id, url, options }) {
  const socket = io(url, { reconnection: false, forceNew: true, timeout: 10000, ...options });
  sockets.set(id, socket);
  socket.on("connect", () =>
    out({ type: "connect", id, sid: socket.id, transport: socket.io.engine.transport.name }));
  socket.on("connect_error", (err) =>
    out({ type: "connect_error", id, message: err.message, data: err.data ?? null }));
  socket.on("disconnect", (reason) => out({ type: "disconnect", id, reason }));
  // Every engine (the first and each one a reconnection opens) reports its upgrade.
  let watched = null;
  const watchUpgrade = () => {
    const engine = socket.io.engine;
    if (!engine || engine === watched) return;
    watched = engine;
    engine.on("upgrade", (t) => out({ type: "upgrade", id, transport: t.name }));
  };
  watchUpgrade();
  socket.io.on("open", watchUpgrade);
  socket.io.on("reconnect_attempt", (attempt) => out({ type: "reconnect_attempt", id, attempt }));
  socket.onAny((event, ...args) => out({ type: "event", id, event, args, t: Date.now() }));
}

function emit({ id, event, args, ack, req, timeoutMs }) {
  const socket = sockets.get(id);
  if (!socket) return out({ type: "ack_error", req, message: "no such socket" });
  if (!ack) {
    socket.emit(event, ...(args ?? []));
    return out({ type: "sent", req });
  }
  socket.timeout(timeoutMs ?? 30000).emit(event, ...(args ?? []), (err, ...resp) => {
    if (err) out({ type: "ack_timeout", req });
    else out({ type: "ack", req, args: resp, t: Date.now() });
  });
}

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { return out({ type: "bad_command", line }); }
  if (cmd.op === "connect") connect(cmd);
  else if (cmd.op === "emit") emit(cmd);
  else if (cmd.op === "disconnect") { sockets.get(cmd.id)?.disconnect(); sockets.delete(cmd.id); }
  else if (cmd.op === "exit") { for (const s of sockets.values()) s.disconnect(); process.exit(0); }
});
rl.on("close", () => { for (const s of sockets.values()) s.disconnect(); process.exit(0); });
