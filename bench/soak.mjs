#!/usr/bin/env node
// `npm run soak -- --minutes N`: portico under mixed traffic for N minutes, and whether it gives
// back what it took.
//
//   node bench/soak.mjs [--minutes N] [--concurrency C] [--warmup SEC] [--settle SEC]
//                       [--out FILE] [--no-gc] [--seed S] [--snapshots DIR]
//
// It starts portico as its own process (`node bin/portico.js serve --config <tmp>/portico.toml
// --log-level warn`, on 127.0.0.1, an ephemeral port) with two plugins written into a temp dir:
// the SDK lab plugin (test/fixtures/v2/lab/plugin.mjs, protocol v2) at /lab and the raw nexo
// fixture (test/fixtures/raw-plugin.mjs, protocol v1) at /raw. Then:
//
//   1. warm-up: the traffic mix for --warmup seconds (default 10), then traffic stops;
//   2. start figures, once the daemon is idle (no request in flight, client sockets closed,
//      --settle seconds, a full GC): its RSS (/proc/PID/status VmRSS), V8 heap used (GET /metrics,
//      nodejs_heap_size_used_bytes), open fds (/proc/PID/fd) and child processes
//      (/proc/PID/task/*/children);
//   3. the traffic mix for N minutes with C workers (default 8), each running one exchange at a
//      time: small GETs and POSTs (v2 and v1, portico's own /health and 404), 1–8 MiB downloads
//      and uploads (length and CRC checked), SSE streams, WebSocket echo sessions, and the client
//      walking away: uploads abandoned half-way, downloads and /hold responses dropped mid-body;
//   4. end figures, taken as in 2; a table on stdout and in bench/SOAK.md (or --out FILE).
//
// Exit status 1 if RSS, heap or fds end more than 10 % over the start, if the daemon's children
// changed (a plugin crashed and was restarted, or one was left behind), if a plugin restarted, or
// if any exchange failed in a way it should not (disconnects the soak caused itself are counted
// apart, not as failures); 2 if it could not run at all.
//
// The full GC before each measurement goes through the daemon's inspector (node --inspect on
// 127.0.0.1, an ephemeral port; HeapProfiler.collectGarbage), so that garbage not yet collected
// does not pass for a leak; --no-gc leaves the inspector off and compares what is there.
//
// Every loop is bounded in count and time, the whole run has a hard deadline, and everything it
// started (portico and, through it or directly, its plugins) is stopped on exit, error or Ctrl-C.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import os from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { crc32 } from "node:zlib";
import WebSocket from "ws";
import { CHUNK, chunkOf, expected } from "../test/fixtures/v2/pattern.mjs";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const HOST = "127.0.0.1";
const LAB = join(ROOT, "test", "fixtures", "v2", "lab", "plugin.mjs");
const RAW = join(ROOT, "test", "fixtures", "raw-plugin.mjs");
const MiB = 1024 * 1024;
/** Growth allowed between the start and end figures. */
const TOLERANCE = 0.1;

const USAGE = `usage: node bench/soak.mjs [--minutes N] [--concurrency C] [--warmup SEC] [--settle SEC] [--out FILE] [--no-gc] [--seed S] [--snapshots DIR]
  --minutes N      traffic after the warm-up, in minutes (default 1; fractions allowed)
  --concurrency C  exchanges at once (default 8)
  --warmup SEC     warm-up traffic before the start figures (default 10)
  --settle SEC     idle time before each set of figures (default 5)
  --out FILE       the report (default bench/SOAK.md)
  --no-gc          no full GC (through the inspector) before the figures
  --snapshots DIR  write the daemon's heap at the start and end figures to DIR/{start,end}.heapsnapshot
  --seed S         seed of the traffic mix (default: random, printed)`;

// ───────────────────────────── arguments ─────────────────────────────

let args;
try {
  args = parseArgs({
    options: {
      minutes: { type: "string", default: "1" },
      concurrency: { type: "string", default: "8" },
      warmup: { type: "string", default: "10" },
      settle: { type: "string", default: "5" },
      out: { type: "string", default: join(ROOT, "bench", "SOAK.md") },
      "no-gc": { type: "boolean", default: false },
      snapshots: { type: "string" },
      seed: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  }).values;
} catch (err) {
  usageError(err.message);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const MINUTES = number(args.minutes, "--minutes", 0.05, 24 * 60);
const CONCURRENCY = Math.round(number(args.concurrency, "--concurrency", 1, 256));
const WARMUP_S = number(args.warmup, "--warmup", 0, 600);
const SETTLE_S = number(args.settle, "--settle", 0, 600);
const OUT = resolve(args.out);
const FORCE_GC = !args["no-gc"];
const SNAPSHOTS = args.snapshots === undefined ? undefined : resolve(args.snapshots);
const SEED = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Math.floor(number(args.seed, "--seed", 0, 2 ** 31));

function usageError(message) {
  process.stderr.write(`soak: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function number(s, name, min, max) {
  const n = Number(s);
  if (!Number.isFinite(n) || n < min || n > max) usageError(`${name} ${s}: expected a number from ${min} to ${max}`);
  return n;
}

// ───────────────────────────── processes ─────────────────────────────

/** Every pid this run started or found under the daemon: all of them are killed on the way out. */
const owned = new Set();
let daemon; // { proc, pid, url, port, logs, stderrTail, inspector }
let tmpDir;
let stopping = false;
/** Set when the daemon exits on its own: the traffic stops at once instead of spinning on refusals. */
let daemonGone = false;
let cleaningUp;

/** Direct children of `pid` (every thread's), from /proc. */
function childrenOf(pid) {
  const out = [];
  let tasks = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${t}/children`, "utf8").split(" ")) if (c.trim()) out.push(Number(c));
    } catch {
      // the thread ended meanwhile
    }
  }
  return [...new Set(out)].sort((a, b) => a - b);
}

/** `pid` and every descendant, parents first (bounded: a pid tree is finite, but /proc can race). */
function treeOf(pid) {
  const out = [pid];
  for (let i = 0; i < out.length && out.length < 10_000; i++) for (const c of childrenOf(out[i])) if (!out.includes(c)) out.push(c);
  return out;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z"; // a zombie is gone
  } catch {
    return false;
  }
}

/** Notes every process under the daemon, so that they can be killed even if the daemon dies first. */
function adoptTree() {
  if (daemon?.pid && alive(daemon.pid)) for (const p of treeOf(daemon.pid)) owned.add(p);
}

function killAllNow() {
  adoptTree();
  for (const pid of [...owned].reverse()) {
    if (!alive(pid)) continue;
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

function removeTmp() {
  if (!tmpDir) return;
  try {
    rmSync(tmpDir, { recursive: true, force: true });
  } catch {
    // best effort
  }
  tmpDir = undefined;
}

/**
 * The end of a run: SIGTERM to the daemon, as an operator stops it (it drains, sends its plugins
 * `shutdown`, exits 0). Returns how it went; whatever is left is cleanup()'s.
 */
async function stopDaemon(pluginPids) {
  stopping = true;
  daemon.inspector?.close();
  daemon.inspector = undefined;
  const t0 = Date.now();
  try {
    process.kill(daemon.pid, "SIGTERM");
  } catch {
    // gone already: the exit below says how
  }
  const r = await Promise.race([daemon.exited, sleep(15_000).then(() => undefined)]);
  const ms = Date.now() - t0;
  // portico waits for its plugins to exit before it does; give /proc a moment to agree.
  for (let i = 0; i < 40 && pluginPids.some(alive); i++) await sleep(50);
  return { exited: r !== undefined, code: r?.code, signal: r?.signal, ms, leftover: pluginPids.filter(alive) };
}

/** SIGTERM to the daemon (it stops its plugins), then SIGKILL to whatever is left after 15 s. */
function cleanup() {
  cleaningUp ??= (async () => {
    stopping = true;
    adoptTree();
    daemon?.inspector?.close();
    if (daemon?.pid && alive(daemon.pid)) {
      try {
        process.kill(daemon.pid, "SIGTERM");
      } catch {
        // gone meanwhile
      }
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline && [...owned].some(alive)) await sleep(50);
    }
    killAllNow();
    removeTmp();
  })();
  return cleaningUp;
}

process.on("exit", () => {
  killAllNow();
  removeTmp();
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    process.stderr.write(`\nsoak: ${sig}: stopping everything it started\n`);
    cleanup().finally(() => process.exit(130));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `p`, or a rejection naming `what` after `ms`. */
function within(p, ms, what) {
  let timer;
  return Promise.race([
    p,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ───────────────────────────── the daemon ─────────────────────────────

function manifest(id, prefix, script) {
  return `[plugin]
id = "${id}"
version = "0.1.0"
name = "${id}"
description = "soak test plugin"

[plugin.entrypoint]
command = ${JSON.stringify(process.execPath)}
args = ${JSON.stringify([script])}
env = { FIXTURE_ID = "${id}" }

[plugin.http]
mount_prefix = "${prefix}"
timeout_seconds = 30
`;
}

/**
 * Writes the plugin folders and portico.toml into a temp dir, starts the daemon and waits until it
 * listens and every plugin is ready. The plugins' scripts stay where they are, inside the
 * repository, so the lab's `import "portico/sdk"` resolves to dist/ by package self-reference; their
 * working directory (the folder with the manifest, which the SDK reads) is in the temp dir.
 */
async function startDaemon() {
  tmpDir = mkdtempSync(join(os.tmpdir(), "portico-soak-"));
  const plugins = join(tmpDir, "plugins");
  for (const [id, prefix, script] of [
    ["lab", "/lab", LAB],
    ["raw", "/raw", RAW],
  ]) {
    mkdirSync(join(plugins, id), { recursive: true });
    writeFileSync(join(plugins, id, "nexo-plugin.toml"), manifest(id, prefix, script));
  }
  const config = join(tmpDir, "portico.toml");
  writeFileSync(
    config,
    `listen = "${HOST}:0"\nplugins = ${JSON.stringify(plugins)}\nlog_level = "warn"\n\n[supervisor]\nshutdown_grace_ms = 3000\n`,
  );
  const nodeArgs = FORCE_GC ? [`--inspect=${HOST}:0`] : [];
  const proc = spawn(process.execPath, [...nodeArgs, join(ROOT, "bin", "portico.js"), "serve", "--config", config, "--log-level", "warn"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: daemonEnv(),
  });
  owned.add(proc.pid);
  daemon = {
    proc,
    pid: proc.pid,
    url: undefined,
    port: 0,
    /** Its log lines at warn and up: "level: msg" → { count, example } (at most 200 kinds kept). */
    logs: new Map(),
    stderrTail: [],
    inspectorUrl: undefined,
    inspector: undefined,
    exited: undefined,
  };
  const lines = (stream, onLine) => {
    let pending = "";
    stream.setEncoding("utf8");
    stream.on("data", (d) => {
      pending += d;
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      if (pending.length > 64 * 1024) pending = ""; // a runaway line: drop it, keep the memory bounded
    });
  };
  lines(proc.stdout, (line) => {
    let entry;
    try {
      entry = JSON.parse(line);
    } catch {
      entry = { level: 30, msg: line };
    }
    if (typeof entry.url === "string") daemon.url ??= entry.url;
    if (typeof entry.level !== "number" || entry.level < 40) return;
    const key = `${entry.level >= 50 ? "error" : "warn"}: ${String(entry.msg).slice(0, 80)}`;
    const seen = daemon.logs.get(key);
    if (seen) seen.count++;
    else if (daemon.logs.size < 200) daemon.logs.set(key, { count: 1, example: line.slice(0, 300) });
  });
  lines(proc.stderr, (line) => {
    const listening = /portico listening on (http:\/\/\S+)/.exec(line);
    if (listening) daemon.url ??= listening[1];
    const inspector = /Debugger listening on (ws:\/\/\S+)/.exec(line);
    if (inspector) daemon.inspectorUrl ??= inspector[1];
    daemon.stderrTail.push(line);
    if (daemon.stderrTail.length > 50) daemon.stderrTail.shift();
  });
  const exited = new Promise((r) => proc.once("exit", (code, signal) => r({ code, signal })));
  daemon.exited = exited;
  exited.then(({ code, signal }) => {
    daemonGone = true;
    if (!stopping) process.stderr.write(`soak: portico exited (${signal ?? code}) while the soak was running\n`);
  });

  const deadline = Date.now() + 30_000;
  while (!daemon.url || (FORCE_GC && !daemon.inspectorUrl)) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`portico exited at start:\n${daemon.stderrTail.join("\n")}`);
    if (Date.now() > deadline) throw new Error(`portico did not listen within 30 s:\n${daemon.stderrTail.join("\n")}`);
    await sleep(25);
  }
  const url = new URL(daemon.url);
  if (url.hostname !== HOST) throw new Error(`portico listens on ${daemon.url}, not on ${HOST}`);
  daemon.port = Number(url.port);
  for (;;) {
    const h = await health().catch(() => undefined);
    if (h?.plugins?.length === 2 && h.plugins.every((p) => p.state === "ready")) break;
    if (Date.now() > deadline) throw new Error(`plugins not ready within 30 s: ${JSON.stringify(h)}\n${daemon.stderrTail.join("\n")}`);
    await sleep(50);
  }
  if (FORCE_GC) {
    daemon.inspector = await Inspector.connect(daemon.inspectorUrl);
    // The first Runtime.evaluate sets up node's command line API in the daemon (~60 KiB that stay):
    // have that happen now, before the start figures, so it does not count as growth at the end.
    await heapSpaces();
  }
  adoptTree();
}

/** portico's environment (and so its plugins'): ours, minus what would change how node runs them. */
function daemonEnv() {
  const env = { ...process.env };
  for (const k of ["NODE_OPTIONS", "NODE_TEST_CONTEXT", "NODE_CHANNEL_FD"]) delete env[k];
  return env;
}

/** A minimal Chrome DevTools Protocol client over `ws`: enough to ask for a full GC. */
class Inspector {
  #ws;
  #next = 1;
  #waiting = new Map();
  /** Receives the inspector's notifications (method, params), e.g. heap snapshot chunks. */
  onEvent = () => {};

  static connect(url) {
    return within(
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { perMessageDeflate: false });
        ws.once("open", () => resolve(new Inspector(ws)));
        ws.once("error", reject);
      }),
      10_000,
      "the daemon's inspector",
    );
  }

  constructor(ws) {
    this.#ws = ws;
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data));
      if (msg.id === undefined) return this.onEvent(msg.method, msg.params);
      const w = this.#waiting.get(msg.id);
      if (!w) return;
      this.#waiting.delete(msg.id);
      if (msg.error) w.reject(new Error(`inspector: ${msg.error.message}`));
      else w.resolve(msg.result);
    });
    ws.on("error", () => {});
    ws.on("close", () => {
      for (const w of this.#waiting.values()) w.reject(new Error("inspector closed"));
      this.#waiting.clear();
    });
  }

  call(method, params = {}) {
    const id = this.#next++;
    const p = new Promise((resolve, reject) => this.#waiting.set(id, { resolve, reject }));
    this.#ws.send(JSON.stringify({ id, method, params }));
    return within(p, 30_000, method);
  }

  /** A heap snapshot of the daemon, written to `file` (open it in Chrome DevTools, Memory tab). */
  async snapshot(file) {
    const parts = [];
    this.onEvent = (method, params) => {
      if (method === "HeapProfiler.addHeapSnapshotChunk") parts.push(params.chunk);
    };
    try {
      await this.call("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    } finally {
      this.onEvent = () => {};
    }
    writeFileSync(file, parts.join(""));
  }

  close() {
    this.#ws.terminate();
  }
}

// ───────────────────────────── figures ─────────────────────────────

async function health() {
  const r = await plainGet("/health");
  return JSON.parse(r.body.toString());
}

/** From GET /metrics: the V8 heap used. */
async function heapUsed() {
  const text = (await plainGet("/metrics")).body.toString();
  const m = /^nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)$/m.exec(text);
  if (!m) throw new Error("no nodejs_heap_size_used_bytes in /metrics");
  return Number(m[1]);
}

/**
 * The heap used per V8 space, asked of the daemon through its inspector (/metrics does not split
 * it): whether growth sits in objects (old space, large objects) or in compiled code.
 */
async function heapSpaces() {
  if (!daemon.inspector) return {};
  const r = await daemon.inspector.call("Runtime.evaluate", {
    expression: "JSON.stringify(require('v8').getHeapSpaceStatistics().map((s) => [s.space_name, s.space_used_size]))",
    includeCommandLineAPI: true, // node's command line API has require()
    returnByValue: true,
  });
  try {
    return Object.fromEntries(JSON.parse(r.result.value));
  } catch {
    return {};
  }
}

function procStatus(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") };
}

/** The daemon once idle: no request in flight, then `SETTLE_S` of quiet and (unless --no-gc) full GCs. */
async function figures(what) {
  // Every exchange the soak made is over on its side: the daemon should count none in flight
  // (/health is portico's own, not counted). Those still counted after 30 s are stuck, a failure.
  const deadline = Date.now() + 30_000;
  let stuck = 0;
  for (;;) {
    if (daemonGone) throw new Error(`${what}: portico is gone`);
    const h = await health();
    stuck = h.plugins.reduce((n, p) => n + p.inFlight, 0);
    if (stuck === 0 || Date.now() > deadline) break;
    await sleep(100);
  }
  await sleep(SETTLE_S * 1000);
  // The heap: the median of 5 readings of /metrics, each after a full GC (unless --no-gc). Serving
  // /metrics itself allocates, so one reading can be a few hundred KiB off, 3-4 % of this heap.
  const readings = [];
  for (let i = 0; i < 5; i++) {
    if (daemon.inspector) {
      await daemon.inspector.call("HeapProfiler.collectGarbage");
      await sleep(200);
    }
    readings.push(await heapUsed());
  }
  const heap = readings.sort((a, b) => a - b)[2];
  const spaces = await heapSpaces();
  const { rss, hwm } = procStatus(daemon.pid);
  if (SNAPSHOTS && daemon.inspector) {
    mkdirSync(SNAPSHOTS, { recursive: true });
    await daemon.inspector.snapshot(join(SNAPSHOTS, `${what}.heapsnapshot`)); // after the figures: it allocates
  }
  const fds = readdirSync(`/proc/${daemon.pid}/fd`).length;
  const children = childrenOf(daemon.pid);
  const h = await health();
  return {
    at: new Date().toISOString(),
    rss,
    hwm,
    heap,
    spaces,
    stuck,
    fds,
    children,
    plugins: h.plugins.map((p) => ({ id: p.id, state: p.state, pid: p.pid, restarts: p.restarts, inFlight: p.inFlight })),
  };
}

// ───────────────────────────── HTTP client ─────────────────────────────

/** The keep-alive pool the traffic uses (destroyed before each set of figures, so no socket of ours stays open). */
let agent;
function newAgent() {
  agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY * 2, maxFreeSockets: CONCURRENCY });
}

/** A GET on its own connection, the whole body buffered (small answers: /health, /metrics). */
function plainGet(path) {
  return exchange({ path, agent: false, timeoutMs: 10_000 }).then((r) => {
    if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
    return r;
  });
}

/**
 * One HTTP exchange, bounded by `timeoutMs`. `body`: a Buffer, or { bytes, chunked } for a
 * generated body (pattern chunks, written as the socket takes them). `read`: "buffer" (default,
 * bodies up to 1 MiB), or "crc" (length and CRC-32 only). `abortAfterBytes`: the client goes away
 * once it has sent (`side: "request"`) or received (`side: "response"`) that many body bytes.
 * Resolves { status, body?, bytes, crc, complete, aborted } or rejects with the error (its `code`
 * set when node gave one).
 */
function exchange({ method = "GET", path, headers = {}, body, read = "buffer", agent: useAgent, timeoutMs, abortAfterBytes, side }) {
  return new Promise((resolve, reject) => {
    let settled = false;
    let aborted = false;
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const h = { ...headers };
    const generated = body && !Buffer.isBuffer(body) ? body : undefined;
    if (Buffer.isBuffer(body)) h["content-length"] = String(body.length);
    if (generated && !generated.chunked) h["content-length"] = String(generated.bytes);
    const req = request({ host: HOST, port: daemon.port, method, path, headers: h, agent: useAgent ?? agent });
    const abort = () => {
      aborted = true;
      req.destroy();
      finish(resolve, { status: 0, bytes: 0, crc: 0, complete: false, aborted: true });
    };
    const timer = setTimeout(() => {
      req.destroy(Object.assign(new Error(`no complete answer within ${timeoutMs} ms`), { code: "TIMEOUT" }));
    }, timeoutMs);
    req.on("error", (err) => finish(reject, err));
    req.on("response", (res) => {
      const parts = [];
      let bytes = 0;
      let crc = 0;
      res.on("data", (c) => {
        bytes += c.length;
        if (read === "crc") crc = crc32(c, crc);
        else if (bytes <= MiB) parts.push(c);
        if (side === "response" && abortAfterBytes !== undefined && bytes >= abortAfterBytes && !aborted) abort();
      });
      res.on("end", () =>
        finish(resolve, { status: res.statusCode, headers: res.headers, body: Buffer.concat(parts), bytes, crc, complete: true }),
      );
      res.on("error", (err) => finish(reject, err));
      res.on("close", () => {
        if (!res.complete)
          finish(reject, Object.assign(new Error("response cut short"), { code: "TRUNCATED", status: res.statusCode, bytes }));
      });
    });
    if (!generated) {
      req.end(body);
      return;
    }
    // A generated body, written with backpressure; abandoned half-way when asked to: then it stops
    // at `abortAfterBytes` (less than the whole), so the server can never have seen all of it.
    const stopAt = side === "request" && abortAfterBytes !== undefined ? Math.min(abortAfterBytes, generated.bytes - 1) : generated.bytes;
    (async () => {
      let sent = 0;
      for (let i = 0; sent < stopAt && !settled && i < 1_000_000; i++) {
        const n = Math.min(CHUNK, stopAt - sent);
        sent += n;
        if (!req.write(chunkOf(i, n))) await drainOf(req);
      }
      if (settled) return;
      if (stopAt < generated.bytes) {
        await sleep(20); // let the bytes go out, then walk away
        abort();
      } else {
        req.end();
      }
    })().catch((err) => finish(reject, err));
  });
}

/** Resolves when `req` can take more, or is gone. */
function drainOf(req) {
  return new Promise((resolve) => {
    const done = () => {
      req.off("drain", done);
      req.off("close", done);
      resolve();
    };
    req.on("drain", done);
    req.on("close", done);
  });
}

// ───────────────────────────── traffic ─────────────────────────────

/** Small, seeded PRNG (mulberry32), so a run's mix can be replayed with --seed. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Tally: per scenario, exchanges done, answered as expected, disconnects we caused; failures by kind. */
class Tally {
  /** In the order of SCENARIOS, so that reports line up. */
  scenarios = new Map(SCENARIOS.map((s) => [s.name, { done: 0, ok: 0, walkedAway: 0, failed: 0 }]));
  failures = new Map(); // kind → { count, examples }
  startedAt = Date.now();
  bytesDown = 0;
  bytesUp = 0;
  wsMessages = 0;
  sseEvents = 0;

  of(name) {
    let s = this.scenarios.get(name);
    if (!s) {
      s = { done: 0, ok: 0, walkedAway: 0, failed: 0 };
      this.scenarios.set(name, s);
    }
    return s;
  }

  fail(scenario, kind, detail) {
    this.of(scenario).failed++;
    const key = `${scenario}: ${kind}`;
    let f = this.failures.get(key);
    if (!f) {
      f = { count: 0, examples: [] };
      this.failures.set(key, f);
    }
    f.count++;
    if (f.examples.length >= 3) return;
    const at = `${((Date.now() - this.startedAt) / 1000).toFixed(1)} s`;
    f.examples.push(`at ${at}: ${String(detail).slice(0, 300)}`);
    process.stdout.write(`soak: failed at ${at}: ${key}: ${String(detail).slice(0, 300)}\n`);
  }

  get total() {
    let n = 0;
    for (const s of this.scenarios.values()) n += s.done;
    return n;
  }

  get failed() {
    let n = 0;
    for (const f of this.failures.values()) n += f.count;
    return n;
  }
}

/** The kind of an error, for the tally: node's code, or our own. */
const kindOf = (err) => err?.code ?? err?.name ?? "error";

/** Thrown by a scenario for an answer that is not the expected one. */
class Unexpected extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function expect(cond, kind, message) {
  if (!cond) throw new Unexpected(kind, message);
}

const between = (r, lo, hi) => lo + Math.floor(r() * (hi - lo + 1));

/**
 * The scenarios: name, weight, and run(r, worker, tally), which resolves "ok" or "walked-away"
 * (the client went away on purpose, as planned) and throws on anything else.
 */
const SCENARIOS = [
  {
    name: "small GET (v2)",
    weight: 30,
    async run() {
      const r = await exchange({ path: "/lab/pid", timeoutMs: 15_000 });
      expect(r.status === 200, "status", `GET /lab/pid: ${r.status}`);
      expect(Number.isInteger(JSON.parse(r.body.toString()).pid), "body", `GET /lab/pid: ${r.body}`);
      return "ok";
    },
  },
  {
    name: "small GET (v1)",
    weight: 10,
    async run(r) {
      const q = `n=${between(r, 0, 1e6)}`;
      const res = await exchange({ path: `/raw/echo?${q}`, timeoutMs: 15_000 });
      expect(res.status === 200, "status", `GET /raw/echo: ${res.status}`);
      expect(JSON.parse(res.body.toString()).query === q, "body", `GET /raw/echo: ${res.body.toString().slice(0, 200)}`);
      return "ok";
    },
  },
  {
    name: "small POST echo (v2)",
    weight: 10,
    async run(r, worker) {
      const body = Buffer.alloc(between(r, 0, 64 * 1024), 0x61 + (worker % 26));
      const res = await exchange({ method: "POST", path: `/lab/echo?tag=w${worker}`, body, timeoutMs: 15_000 });
      expect(res.status === 200, "status", `POST /lab/echo: ${res.status}`);
      expect(res.body.equals(Buffer.concat([Buffer.from(`w${worker}:`), body])), "body", `POST /lab/echo: ${res.bytes} bytes back`);
      return "ok";
    },
  },
  {
    name: "portico's own (/health, 404)",
    weight: 5,
    async run(r) {
      if (r() < 0.5) {
        const res = await exchange({ path: "/health", timeoutMs: 15_000 });
        expect(res.status === 200, "status", `GET /health: ${res.status}`);
      } else {
        const res = await exchange({ path: "/no/such/prefix", timeoutMs: 15_000 });
        expect(res.status === 404, "status", `GET /no/such/prefix: ${res.status}`);
      }
      return "ok";
    },
  },
  {
    name: "download 1-8 MiB",
    weight: 8,
    async run(r, worker, tally) {
      const bytes = between(r, 1, 8) * MiB - between(r, 0, CHUNK);
      const cl = r() < 0.5 ? "&cl=1" : "";
      const res = await exchange({ path: `/lab/download?bytes=${bytes}&tag=w${worker}${cl}`, read: "crc", timeoutMs: 60_000 });
      tally.bytesDown += res.bytes;
      expect(res.status === 200, "status", `download: ${res.status}`);
      const want = expected(bytes);
      expect(res.bytes === want.bytes && res.crc === want.crc, "body", `download of ${bytes}: got ${res.bytes} bytes, crc ${res.crc}`);
      return "ok";
    },
  },
  {
    name: "upload 1-8 MiB",
    weight: 8,
    async run(r, worker, tally) {
      const bytes = between(r, 1, 8) * MiB - between(r, 0, CHUNK);
      const res = await exchange({
        method: "POST",
        path: `/lab/upload?tag=w${worker}`,
        headers: { "content-type": "application/octet-stream" },
        body: { bytes, chunked: r() < 0.5 },
        timeoutMs: 60_000,
      });
      tally.bytesUp += bytes;
      expect(res.status === 200, "status", `upload: ${res.status} ${res.body?.toString().slice(0, 200)}`);
      const got = JSON.parse(res.body.toString());
      const want = expected(bytes);
      expect(got.bytes === want.bytes && got.crc === want.crc, "body", `upload of ${bytes}: plugin saw ${JSON.stringify(got)}`);
      return "ok";
    },
  },
  {
    name: "SSE stream",
    weight: 8,
    async run(r, _worker, tally) {
      const n = between(r, 3, 10);
      const res = await exchange({ path: `/lab/sse?n=${n}&ms=${between(r, 10, 60)}`, timeoutMs: 30_000 });
      expect(res.status === 200, "status", `SSE: ${res.status}`);
      expect(/^text\/event-stream/.test(res.headers["content-type"] ?? ""), "headers", `SSE: content-type ${res.headers["content-type"]}`);
      const events = res.body.toString().split("\n\n").filter(Boolean);
      tally.sseEvents += events.length;
      expect(events.length === n, "body", `SSE: ${events.length} events of ${n}`);
      for (const [i, e] of events.entries()) expect(e.startsWith(`id: ${i}\n`), "body", `SSE: event ${i} is ${JSON.stringify(e)}`);
      return "ok";
    },
  },
  {
    name: "WebSocket echo",
    weight: 8,
    async run(r, _worker, tally) {
      const messages = between(r, 1, 30);
      const ws = new WebSocket(`ws://${HOST}:${daemon.port}/lab/ws`, ["lab.v2"], { perMessageDeflate: false });
      try {
        await within(
          new Promise((resolve, reject) => {
            const want = [];
            let got = 0;
            const sendNext = () => {
              const binary = r() < 0.5;
              const size = r() < 0.1 ? between(r, 16 * 1024, 256 * 1024) : between(r, 0, 200);
              const data = binary ? Buffer.alloc(size, want.length) : "x".repeat(size);
              want.push({ binary, data });
              ws.send(data);
            };
            ws.on("open", sendNext);
            ws.on("message", (data, isBinary) => {
              const w = want[got++];
              tally.wsMessages++;
              if (!w || w.binary !== isBinary || !Buffer.from(data).equals(Buffer.from(w.data))) {
                reject(new Unexpected("echo", `message ${got - 1} came back different`));
                return;
              }
              if (want.length < messages) sendNext();
              else ws.close(1000, "soak done");
            });
            ws.on("unexpected-response", (_req, res) => reject(new Unexpected("status", `upgrade answered ${res.statusCode}`)));
            ws.on("error", reject);
            ws.on("close", (code) => {
              if (got === messages && code === 1000) resolve();
              else reject(new Unexpected("close", `closed ${code} after ${got} of ${messages} echoes`));
            });
          }),
          30_000,
          "WebSocket session",
        );
      } finally {
        ws.terminate();
      }
      return "ok";
    },
  },
  {
    name: "upload abandoned half-way",
    weight: 4,
    async run(r, worker) {
      const bytes = between(r, 2, 8) * MiB;
      const res = await exchange({
        method: "POST",
        path: `/lab/upload?tag=a${worker}`,
        body: { bytes, chunked: r() < 0.5 },
        abortAfterBytes: Math.floor(bytes * (0.1 + 0.8 * r())),
        side: "request",
        timeoutMs: 60_000,
      });
      expect(res.aborted, "answered", `an upload abandoned half-way was answered ${res.status}`);
      return "walked-away";
    },
  },
  {
    name: "download dropped mid-body",
    weight: 4,
    async run(r, worker) {
      const bytes = 8 * MiB;
      const res = await exchange({
        path: `/lab/download?bytes=${bytes}&tag=d${worker}`,
        read: "crc",
        abortAfterBytes: between(r, 1, 7 * MiB),
        side: "response",
        timeoutMs: 60_000,
      });
      expect(res.aborted, "complete", `a download meant to be dropped completed (${res.status}, ${res.bytes} bytes)`);
      return "walked-away";
    },
  },
  {
    name: "/hold dropped mid-response",
    weight: 4,
    async run(r, worker) {
      // /hold ticks every 100 ms ("tick N\n", ~7 bytes): walk away after a few ticks.
      const res = await exchange({
        path: `/lab/hold?tag=h${worker}`,
        read: "crc",
        abortAfterBytes: between(r, 1, 30),
        side: "response",
        timeoutMs: 30_000,
      });
      expect(res.aborted, "complete", `/hold completed (${res.status})`);
      return "walked-away";
    },
  },
];

const TOTAL_WEIGHT = SCENARIOS.reduce((n, s) => n + s.weight, 0);

function pick(r) {
  let x = r() * TOTAL_WEIGHT;
  for (const s of SCENARIOS) {
    x -= s.weight;
    if (x < 0) return s;
  }
  return SCENARIOS[SCENARIOS.length - 1];
}

/** `CONCURRENCY` workers, each running one exchange at a time until `ms` have passed. */
async function traffic(ms, tally, seed) {
  newAgent();
  const deadline = Date.now() + ms;
  const worker = async (w) => {
    const r = rng(seed + w * 7919);
    // Bounded in count too: no exchange takes less than ~50 µs, so this is never the limit that counts.
    for (let i = 0; i < 50_000_000 && Date.now() < deadline && !stopping && !daemonGone; i++) {
      const s = pick(r);
      const t = tally.of(s.name);
      t.done++;
      try {
        const outcome = await within(s.run(r, w, tally), 120_000, s.name);
        if (outcome === "walked-away") t.walkedAway++;
        else t.ok++;
      } catch (err) {
        if (stopping || daemonGone) return;
        tally.fail(s.name, err instanceof Unexpected ? err.kind : kindOf(err), err?.message ?? err);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, w) => worker(w)));
  agent.destroy(); // no keep-alive socket of ours stays open through the figures
}

/**
 * RSS, heap and fds every 5 s while traffic runs, to show a trend and not only two points. With the
 * inspector, each sample follows a full GC (a few ms on a heap this size), so that a steady climb
 * of what survives collection shows, and not the sawtooth of garbage.
 */
function sampler(samples, startedAt) {
  let timer;
  let busy = false;
  const tick = async () => {
    if (busy || stopping || samples.length >= 100_000) return;
    busy = true;
    try {
      if (daemon.inspector) await daemon.inspector.call("HeapProfiler.collectGarbage");
      const { rss } = procStatus(daemon.pid);
      const heap = await heapUsed();
      samples.push({ s: Math.round((Date.now() - startedAt) / 1000), rss, heap, fds: readdirSync(`/proc/${daemon.pid}/fd`).length });
    } catch {
      // a sample missed: the next one will do
    } finally {
      busy = false;
    }
  };
  timer = setInterval(tick, 5000);
  return () => clearInterval(timer);
}

// ───────────────────────────── report ─────────────────────────────

const mib = (n) => `${(n / MiB).toFixed(1)} MiB`;
const pct = (a, b) => `${b >= a ? "+" : ""}${(((b - a) / a) * 100).toFixed(1)} %`;

function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(" | ")} |`;
  return [line(rows[0]), `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`, ...rows.slice(1).map(line)].join("\n");
}

function verdicts(start, end, tally) {
  const out = [];
  const grow = (name, a, b, show, whole = false) => {
    const limit = whole ? Math.floor(a * (1 + TOLERANCE)) : a * (1 + TOLERANCE);
    out.push({ name, start: show(a), end: show(b), change: pct(a, b), ok: b <= limit, rule: `≤ ${show(limit)} (+10 %)` });
  };
  grow("RSS", start.rss, end.rss, mib);
  grow("V8 heap used", start.heap, end.heap, mib);
  grow("open fds", start.fds, end.fds, String, true);
  const same = start.children.join(",") === end.children.join(",");
  out.push({
    name: "child processes",
    start: `${start.children.length} (${start.children.join(", ")})`,
    end: `${end.children.length} (${end.children.join(", ")})`,
    change: same ? "same" : "changed",
    ok: same,
    rule: "the same pids",
  });
  const restarts = (f) => f.plugins.reduce((n, p) => n + p.restarts, 0);
  out.push({
    name: "plugin restarts",
    start: String(restarts(start)),
    end: String(restarts(end)),
    change: restarts(end) === restarts(start) ? "none" : `+${restarts(end) - restarts(start)}`,
    ok: restarts(end) === restarts(start) && end.plugins.every((p) => p.state === "ready"),
    rule: "none, all ready",
  });
  out.push({
    name: "in flight when idle",
    start: String(start.stuck),
    end: String(end.stuck),
    change: "",
    ok: start.stuck === 0 && end.stuck === 0,
    rule: "none (after 30 s)",
  });
  out.push({
    name: "failed exchanges",
    start: "-",
    end: String(tally.failed),
    change: "",
    ok: tally.failed === 0,
    rule: "none",
  });
  return out;
}

function report({ start, end, tally, warmupTally, samples, runSeconds, checks, daemonLogs }) {
  const pass = checks.every((c) => c.ok);
  const figures = table([
    ["", "start", "end", "change", "pass if", "ok"],
    ...checks.map((c) => [c.name, c.start, c.end, c.change, c.rule, c.ok ? "yes" : "NO"]),
  ]);
  const exchanges = table([
    ["exchange", "done", "answered as expected", "client walked away (on purpose)", "failed"],
    ...[...tally.scenarios.entries()].map(([name, s]) => [name, s.done, s.ok, s.walkedAway, s.failed]),
    [
      "total",
      tally.total,
      [...tally.scenarios.values()].reduce((n, s) => n + s.ok, 0),
      [...tally.scenarios.values()].reduce((n, s) => n + s.walkedAway, 0),
      tally.failed,
    ],
  ]);
  const failures = tally.failures.size
    ? table([
        ["failure", "count", "examples"],
        ...[...tally.failures.entries()].map(([k, f]) => [k, f.count, f.examples.join(" / ").replace(/\|/g, "\\|")]),
      ])
    : "none";
  const trend = samples.length
    ? table([
        ["t (s)", "RSS", FORCE_GC ? "heap used (after a full GC)" : "heap used", "fds"],
        ...thin(samples, 12).map((s) => [s.s, mib(s.rss), mib(s.heap), s.fds]),
      ])
    : "(no samples)";
  const logs = daemonLogs.size
    ? table([
        ["daemon log line (warn and up)", "count", "first one"],
        ...[...daemonLogs.entries()]
          .sort((a, b) => b[1].count - a[1].count)
          .slice(0, 15)
          .map(([k, v]) => [k, v.count, `\`${v.example.replace(/\|/g, "\\|").replace(/`/g, "'")}\``]),
      ])
    : "none";
  const rate = (n) => (n / runSeconds).toFixed(1);
  return `# portico soak

${pass ? "**PASS**" : "**FAIL**"}: ${MINUTES} min of mixed traffic (after ${WARMUP_S} s of warm-up), ${CONCURRENCY} exchanges at once, seed ${SEED}.
Run ${start.at} → ${end.at} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}.
Command: \`node bench/soak.mjs --minutes ${MINUTES} --concurrency ${CONCURRENCY} --warmup ${WARMUP_S} --settle ${SETTLE_S} --seed ${SEED}${FORCE_GC ? "" : " --no-gc"}\`.

The daemon (\`node bin/portico.js serve --config … --log-level warn\`, on ${HOST}) with two plugins: the SDK lab
plugin (protocol v2) at /lab and the raw nexo fixture (protocol v1) at /raw. Figures are taken with the
daemon idle (nothing in flight, the soak's sockets closed, ${SETTLE_S} s of quiet${FORCE_GC ? ", then a full GC through its inspector" : ", no forced GC"}):
"start" after the warm-up, "end" after the traffic.

## Figures

${figures}

Peak RSS (VmHWM) over the whole run: ${mib(end.hwm)}.

The V8 heap used, by space (v8.getHeapSpaceStatistics() in the daemon, through its inspector;
\`code_space\` is compiled code, which grows as the JIT optimizes more paths, not as objects are kept):

${spacesTable(start, end)}

## Exchanges

${exchanges}

${tally.total} exchanges in ${runSeconds.toFixed(0)} s (${rate(tally.total)}/s); ${mib(tally.bytesDown)} downloaded and ${mib(tally.bytesUp)}
uploaded in full; ${tally.wsMessages} WebSocket messages echoed; ${tally.sseEvents} SSE events. Warm-up: ${warmupTally.total}
exchanges, ${warmupTally.failed} failed.

## Failures

${failures}

## While the traffic ran (sampled every 5 s; thinned to 12 rows)

${trend}

## Daemon log (warn and up, during the whole run)

${logs}
`;
}

function spacesTable(start, end) {
  const names = [...new Set([...Object.keys(start.spaces), ...Object.keys(end.spaces)])];
  if (names.length === 0) return "(not measured: --no-gc runs without the inspector)";
  const kib = (n) => (n === undefined ? "-" : `${(n / 1024).toFixed(0)} KiB`);
  return table([
    ["space", "start", "end", "change"],
    ...names.map((n) => [n, kib(start.spaces[n]), kib(end.spaces[n]), kib((end.spaces[n] ?? 0) - (start.spaces[n] ?? 0))]),
  ]);
}

/** At most `n` samples, evenly spread, the last one included. */
function thin(samples, n) {
  if (samples.length <= n) return samples;
  const out = [];
  for (let i = 0; i < n; i++) out.push(samples[Math.round((i * (samples.length - 1)) / (n - 1))]);
  return out;
}

// ───────────────────────────── main ─────────────────────────────

async function main() {
  const cli = join(ROOT, "dist", "cli", "main.js");
  const sdk = join(ROOT, "dist", "sdk", "index.js");
  for (const f of [cli, sdk]) {
    try {
      statSync(f);
    } catch {
      throw Object.assign(new Error(`${relative(ROOT, f)} is missing: run \`npm run build\` first`), { setup: true });
    }
  }
  // Hard deadline for the whole run: traffic, warm-up, two settles, start-up and shutdown, with room.
  const hardMs = (MINUTES * 60 + WARMUP_S + 2 * SETTLE_S + 180) * 1000;
  const hard = setTimeout(() => {
    process.stderr.write(`soak: over the hard time limit (${Math.round(hardMs / 1000)} s): stopping\n`);
    cleanup().finally(() => process.exit(1));
  }, hardMs);

  const say = (s) => process.stdout.write(`soak: ${s}\n`);
  say(`seed ${SEED}; ${MINUTES} min after ${WARMUP_S} s of warm-up; ${CONCURRENCY} at once`);
  await startDaemon();
  say(
    `portico pid ${daemon.pid} on ${daemon.url}, plugins ${childrenOf(daemon.pid).join(", ")}${FORCE_GC ? " (inspector on for GC)" : ""}`,
  );

  const warmupTally = new Tally();
  if (WARMUP_S > 0) await traffic(WARMUP_S * 1000, warmupTally, SEED);
  if (daemonGone) throw new Error(`portico exited during the warm-up:\n${daemon.stderrTail.join("\n")}`);
  say(`warm-up done: ${warmupTally.total} exchanges, ${warmupTally.failed} failed; settling`);
  const start = await figures("start");
  say(`start: RSS ${mib(start.rss)}, heap ${mib(start.heap)}, ${start.fds} fds, children ${start.children.join(", ")}`);

  const tally = new Tally();
  const samples = [];
  const startedAt = Date.now();
  const stopSampling = sampler(samples, startedAt);
  const progress = setInterval(() => {
    const rss = daemonGone ? "-" : mib(procStatus(daemon.pid).rss);
    say(`${Math.round((Date.now() - startedAt) / 1000)} s: ${tally.total} exchanges, ${tally.failed} failed, daemon RSS ${rss}`);
  }, 30_000);
  try {
    await traffic(MINUTES * 60_000, tally, SEED + 1);
  } finally {
    clearInterval(progress);
    stopSampling();
  }
  const runSeconds = (Date.now() - startedAt) / 1000;
  if (daemonGone) throw new Error(`portico exited during the traffic:\n${daemon.stderrTail.join("\n")}`);
  say(`traffic done: ${tally.total} exchanges, ${tally.failed} failed; settling`);
  const end = await figures("end");

  const checks = verdicts(start, end, tally);
  say("stopping portico (SIGTERM)");
  const shutdown = await stopDaemon(end.children);
  checks.push({
    name: "graceful stop (SIGTERM)",
    start: "-",
    end: shutdown.exited ? `exit ${shutdown.signal ?? shutdown.code} in ${shutdown.ms} ms` : `still running after ${shutdown.ms} ms`,
    change: shutdown.leftover.length ? `plugins left: ${shutdown.leftover.join(", ")}` : "plugins gone",
    ok: shutdown.exited && shutdown.code === 0 && shutdown.leftover.length === 0,
    rule: "exit 0, plugins gone, within 15 s",
  });
  const text = report({ start, end, tally, warmupTally, samples, runSeconds, checks, daemonLogs: daemon.logs });
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, text);
  process.stdout.write(`\n${text}\n`);
  say(`report written to ${OUT.startsWith(`${process.cwd()}/`) ? relative(process.cwd(), OUT) : OUT}`);
  await cleanup();
  clearTimeout(hard);
  return checks.every((c) => c.ok) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak: ${err?.stack ?? err}\n`);
    cleanup().finally(() => process.exit(err?.setup ? 2 : 1));
  },
);
