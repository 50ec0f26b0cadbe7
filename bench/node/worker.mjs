// Load-test worker: real socket.io-client sockets, driven by bench/nodeworkers.py.
//
// Commands arrive as JSON lines on stdin; answers leave as JSON lines on stdout.
// Measurements stay in memory and leave in one summary line per command, so the
// worker's own output never competes with the stream it is timing.
//
// Clock: `now()` is performance.timeOrigin + performance.now(), milliseconds since the
// epoch with microsecond resolution (Date.now() has 1 ms). The Python side calibrates
// it against its own time.time() with the `clock` command.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";

const HERE = dirname(fileURLToPath(import.meta.url));

// bench/node/node_modules when `npm ci` ran here, else the test suite's copy (same pin).
function loadClient() {
  for (const base of [HERE, join(HERE, "..", "..", "tests", "node")]) {
    try {
      return createRequire(join(base, "resolve.js"))("socket.io-client");
    } catch (err) {
      if (err.code !== "MODULE_NOT_FOUND") throw err;
    }
  }
  throw new Error("socket.io-client not found: run `npm ci` in bench/node or tests/node");
}

const { io } = loadClient();
const now = () => performance.timeOrigin + performance.now();
const out = (msg) => process.stdout.write(JSON.stringify(msg) + "\n");
const groups = new Map(); // name -> {recs: [], armed: null}
let flowsRun = null;

// ── sockets ────────────────────────────────────────────────────────────────

function frameBytes(packet) {
  // Engine.IO v4 over websocket: one packet per frame, "<type digit><data>", unmasked
  // server-to-client frames with a 2, 4 or 10 byte header.
  const data = typeof packet.data === "string" ? Buffer.byteLength(packet.data) : 0;
  const payload = 1 + data;
  return payload + (payload < 126 ? 2 : payload < 65536 ? 4 : 10);
}

function tcpBytes(socket) {
  return socket.io.engine?.transport?.ws?._socket?.bytesRead ?? 0;
}

function open(url, options, timeoutMs) {
  return new Promise((resolve) => {
    const socket = io(url, {
      reconnection: false,
      forceNew: true,
      timeout: timeoutMs,
      ...options,
    });
    const done = (error) => {
      socket.off("connect", onConnect);
      socket.off("connect_error", onError);
      resolve({ socket, error });
    };
    const onConnect = () => done(null);
    const onError = (err) => done(err.message || "connect_error");
    socket.on("connect", onConnect);
    socket.on("connect_error", onError);
  });
}

async function inBatches(items, parallel, action) {
  const results = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await action(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, items.length) }, lane));
  return results;
}

function countInto(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

// ── room scenarios: connect, arm, send, done ───────────────────────────────

function onRoomEvent(group, rec, event, data) {
  rec.events += 1;
  const armed = group.armed;
  if (!armed || !rec.recording || data?.sequence !== armed.sequence) return;
  const t = now();
  if (event === "ai-token") {
    rec.tokens += 1;
    if (armed.times) rec.times[data.tokenIndex] = t;
  } else if (event === "ai-complete") {
    rec.recording = false;
    rec.completeAt = t;
    rec.completeServerTs = Date.parse(data.timestamp);
    rec.tcp = tcpBytes(rec.socket) - rec.tcp0;
    armed.pending -= 1;
    if (armed.pending === 0) reportRoom(group, false);
  }
}

async function connectGroup(cmd) {
  const { group: name, url, path, tokens, count, partial, conversationId } = cmd;
  const group = groups.get(name) ?? { name, recs: [], armed: null };
  groups.set(name, group);
  const errors = {};
  let messageCount = null;
  const started = now();
  const specs = Array.from({ length: count }, (_, i) => tokens[i % tokens.length]);
  await inBatches(specs, cmd.parallel ?? 50, async (token) => {
    const auth = partial === false ? { token, partial: false } : { token };
    const { socket, error } = await open(
      url, { path, auth, transports: cmd.transports ?? ["websocket"] }, cmd.timeoutMs ?? 20000);
    if (error) {
      countInto(errors, error);
      socket.close();
      return;
    }
    const rec = {
      socket, events: 0, tokens: 0, recording: false, times: null,
      tcp0: 0, tcp: 0, frames: 0, completeAt: null, completeServerTs: null,
    };
    socket.onAny((event, data) => onRoomEvent(group, rec, event, data));
    socket.io.engine.on("packet", (packet) => {
      if (rec.recording) rec.frames += frameBytes(packet);
    });
    if (conversationId) {
      try {
        const ack = await socket.timeout(cmd.timeoutMs ?? 20000)
          .emitWithAck("join-conversation", conversationId);
        if (!ack.success) {
          countInto(errors, ack.code ?? "JOIN_FAILED");
          socket.close();
          return;
        }
        messageCount = ack.messageCount;
      } catch {
        countInto(errors, "JOIN_TIMEOUT");
        socket.close();
        return;
      }
    }
    group.recs.push(rec);
  });
  out({
    type: "ready", group: name, connected: group.recs.length, errors, messageCount,
    seconds: (now() - started) / 1000,
  });
}

async function joinGroup(cmd) {
  const group = groups.get(cmd.group);
  const errors = {};
  let messageCount = null;
  await inBatches(group.recs, cmd.parallel ?? 50, async (rec) => {
    try {
      const ack = await rec.socket.timeout(cmd.timeoutMs ?? 20000)
        .emitWithAck("join-conversation", cmd.conversationId);
      if (ack.success) messageCount = ack.messageCount;
      else countInto(errors, ack.code ?? "JOIN_FAILED");
    } catch {
      countInto(errors, "JOIN_TIMEOUT");
    }
  });
  out({ type: "joined", group: cmd.group, errors, messageCount });
}

function arm(cmd) {
  const group = groups.get(cmd.group);
  group.armed = { sequence: cmd.sequence, times: !!cmd.times, pending: group.recs.length };
  for (const rec of group.recs) {
    rec.tokens = 0;
    rec.frames = 0;
    rec.tcp0 = tcpBytes(rec.socket);
    rec.tcp = 0;
    rec.completeAt = null;
    rec.completeServerTs = null;
    rec.times = cmd.times ? [] : null;
    rec.recording = true;
  }
  clearTimeout(group.timer);
  group.timer = setTimeout(() => reportRoom(group, true), cmd.timeoutMs ?? 120000);
  out({ type: "armed", group: cmd.group, clients: group.recs.length });
}

function reportRoom(group, timedOut) {
  clearTimeout(group.timer);
  const armed = group.armed;
  if (!armed) return;
  group.armed = null;
  const recs = group.recs;
  for (const rec of recs) rec.recording = false;
  out({
    type: "done",
    group: group.name,
    timedOut,
    clients: recs.length,
    completed: recs.filter((r) => r.completeAt !== null).length,
    tokens: recs.map((r) => r.tokens),
    tcpBytes: recs.map((r) => r.tcp),
    frameBytes: recs.map((r) => r.frames),
    completeAt: recs.map((r) => r.completeAt),
    completeServerTs: recs.map((r) => r.completeServerTs),
    times: armed.times ? recs.map((r) => r.times) : null,
  });
}

function send(cmd) {
  const rec = groups.get(cmd.group).recs[cmd.index ?? 0];
  const sentAt = now();
  rec.socket.timeout(cmd.timeoutMs ?? 120000).emit(
    "send-message", { content: cmd.content }, (err, ack) => {
      out({ type: "sent", group: cmd.group, sentAt, ackAt: now(), ack: err ? null : ack });
    });
}

function closeGroup(cmd) {
  const group = groups.get(cmd.group);
  if (group) {
    clearTimeout(group.timer);
    for (const rec of group.recs) rec.socket.disconnect();
    groups.delete(cmd.group);
  }
  out({ type: "closed", group: cmd.group });
}

// ── flows: the whole protocol per client (REST, socket, send, edit) ────────

class Inbox {
  constructor(socket, stats) {
    this.waiters = [];
    socket.onAny((event, data) => {
      stats.events += 1;
      if (event === "ai-token") stats.tokens += 1;
      const t = now();
      this.waiters = this.waiters.filter((w) => {
        if (w.event !== event || !w.pred(data)) return true;
        clearTimeout(w.timer);
        w.resolve(t);
        return false;
      });
    });
  }

  wait(event, pred, timeoutMs) {
    return new Promise((resolve, reject) => {
      const waiter = { event, pred, resolve, reject };
      waiter.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`TIMEOUT_${event}`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  failAll(code) {
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(new Error(code));
    }
    this.waiters = [];
  }
}

async function rest(base, method, path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(base + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  return { status: response.status, json };
}

async function signIn(cfg, user) {
  let r = await rest(cfg.url, "POST", "/api/auth/register", user);
  if (r.status === 409) r = await rest(cfg.url, "POST", "/api/auth/login", user);
  if (r.status !== 200 && r.status !== 201) throw new Error(r.json?.code ?? `HTTP_${r.status}`);
  return r.json.token;
}

function ackOf(socket, event, payload, timeoutMs, inbox) {
  return new Promise((resolve, reject) => {
    socket.timeout(timeoutMs).emit(event, payload, (err, ack) => {
      if (err) {
        inbox.failAll("ACK_TIMEOUT");
        reject(new Error("ACK_TIMEOUT"));
      } else if (!ack.success) {
        const code = ack.code ?? "UNKNOWN";
        inbox.failAll(code);
        reject(new Error(code));
      } else resolve(ack);
    });
  });
}

async function setupClient(cfg, user, stats) {
  const token = await signIn(cfg, user);
  const created = await rest(cfg.url, "POST", "/api/conversations",
    { title: "load", model: cfg.model }, token);
  if (created.status !== 201) throw new Error(created.json?.code ?? `HTTP_${created.status}`);
  const { socket, error } = await open(
    cfg.url, { path: cfg.path, auth: { token }, transports: cfg.transports }, cfg.stepTimeoutMs);
  if (error) {
    socket.close();
    throw new Error(`CONNECT: ${error}`);
  }
  const inbox = new Inbox(socket, stats);
  await ackOf(socket, "join-conversation", created.json.id, cfg.stepTimeoutMs, inbox);
  return { socket, inbox };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function round(cfg, client, r, stats) {
  const { socket, inbox } = client;
  const T = cfg.stepTimeoutMs;
  const t0 = now();
  const first = inbox.wait("ai-token", () => true, T);
  const complete = inbox.wait("ai-complete", () => true, T);
  const ack = ackOf(socket, "send-message",
    { content: `${cfg.content} (round ${r})`, clientMsgId: `${cfg.runId}-${r}-${client.n}` },
    T, inbox);
  const [tFirst, tComplete] = await Promise.all([first, complete, ack]);
  stats.firstToken.push(tFirst - t0);
  stats.complete.push(tComplete - t0);
  if (!cfg.edit) return;
  const t1 = now();
  const truncated = inbox.wait("conversation-truncated", () => true, T);
  const regenerated = inbox.wait("ai-complete", (d) => d?.sequence === 2, T);
  const editAck = ackOf(socket, "edit-message",
    { sequence: 1, newContent: `${cfg.editContent} (round ${r})` }, T, inbox);
  const [tTrunc] = await Promise.all([truncated, editAck]);
  stats.truncate.push(tTrunc - t1);
  await regenerated;
}

async function runClient(cfg, client, stats, deadline) {
  await sleep(Math.random() * cfg.startSpreadMs);
  for (let r = 0; r < cfg.rounds && now() < deadline && !flowsRun.stopped; r++) {
    try {
      await round(cfg, client, r, stats);
      stats.rounds += 1;
    } catch (err) {
      countInto(stats.errors, err.message);
      client.inbox.failAll("ABANDONED");
      await sleep(50); // let a failed reply finish before the next send
    }
    if (cfg.thinkMs > 0) await sleep(Math.random() * 2 * cfg.thinkMs);
  }
}

function flowReport() {
  const run = flowsRun;
  if (!run || run.reported) return;
  run.reported = true;
  clearInterval(run.progress);
  clearTimeout(run.hardStop);
  const { stats } = run;
  out({
    type: "flows", ...stats, startedAt: run.startedAt, endedAt: now(), stopped: run.stopped,
  });
  for (const c of run.clients) c.socket.disconnect();
}

async function flowsSetup(cfg) {
  const stats = {
    firstToken: [], complete: [], truncate: [], rounds: 0, events: 0, tokens: 0,
    errors: {}, setupErrors: {},
  };
  flowsRun = { cfg, stats, clients: [], stopped: false, reported: false };
  const started = now();
  await inBatches(cfg.users, cfg.parallel ?? 20, async (user, n) => {
    try {
      const client = await setupClient(cfg, user, stats);
      client.n = n;
      flowsRun.clients.push(client);
    } catch (err) {
      countInto(stats.setupErrors, err.message);
    }
  });
  stats.events = 0;
  stats.tokens = 0;
  out({
    type: "setup", ready: flowsRun.clients.length, errors: stats.setupErrors,
    seconds: (now() - started) / 1000,
  });
}

async function flowsGo() {
  const run = flowsRun;
  const { cfg, stats } = run;
  run.startedAt = now();
  const deadline = run.startedAt + cfg.durationMs;
  run.hardStop = setTimeout(() => { run.stopped = true; flowReport(); }, cfg.durationMs + 2000);
  run.progress = setInterval(() => out({
    type: "progress", rounds: stats.rounds, errors: Object.values(stats.errors)
      .reduce((a, b) => a + b, 0),
  }), cfg.progressMs ?? 500);
  await Promise.all(run.clients.map((c) => runClient(cfg, c, stats, deadline)));
  flowReport();
}

// ── command loop ───────────────────────────────────────────────────────────

const handlers = {
  clock: (cmd) => out({ type: "clock", req: cmd.req, t: now() }),
  connect: connectGroup,
  join: joinGroup,
  arm,
  send,
  close: closeGroup,
  flows: flowsSetup,
  go: flowsGo,
  stop: () => { if (flowsRun) { flowsRun.stopped = true; flowReport(); } },
  exit: () => {
    for (const group of groups.values()) for (const rec of group.recs) rec.socket.disconnect();
    process.exit(0);
  },
};

const rl = createInterface({ input: process.stdin });
rl.on("line", (line) => {
  let cmd;
  try { cmd = JSON.parse(line); } catch { return out({ type: "error", message: "bad JSON" }); }
  const handler = handlers[cmd.op];
  if (!handler) return out({ type: "error", message: `unknown op ${cmd.op}` });
  Promise.resolve()
    .then(() => handler(cmd))
    .catch((err) => out({ type: "error", op: cmd.op, message: String(err?.stack ?? err) }));
});
rl.on("close", () => process.exit(0));
