#!/usr/bin/env node
// `npm run bench`: the same plugin logic served four ways, compared in one run.
//
//   node bench/run.mjs [--quick] [--rounds N] [--duration SEC] [--warmup SEC]
//                      [--workloads id,id] [--targets id,id] [--no-build] [--settle SEC]
//                      [--no-gib] [--no-nats] [--no-python] [--profile[=DIR]] [--out FILE] [--json FILE]
//
// Targets (all serve bench/plugins/logic.mjs, on 127.0.0.1 only):
//   portico-v2  portico → bench/plugins/v2/bench-v2: the logic as a fetch handler on portico's SDK,
//               protocol v2 (binary frames, streamed bodies, WebSockets);
//   portico-v1  portico → bench/plugins/v1/bench-v1: the same plugin forced to protocol v1, nexo's
//               wire (JSON lines, base64 bodies, buffered);
//   seed        nexo's design itself (bench/seed-model/gateway.mjs) → the same v1 plugin: what a
//               nexo plugin costs under the host it was written for;
//   nginx       nginx (Debian package, started here with a generated config) → the logic on a
//               plain node:http server (bench/direct-server.mjs) on its own port;
//   direct      another bench/direct-server.mjs, hit directly (the baseline).
// Each portico target has its own daemon, so memory and CPU are per protocol.
//
// What it does:
//   1. `npm run build`; starts the services; waits until each answers; checks every route it will
//      load answers what the logic says (status and body).
//   2. Runs every (workload × target): wrk for small requests and 1 MiB bodies, bench/load-client.mjs
//      (a separate process) for 64 MiB bodies (MB/s), SSE timing and WebSocket echo. ROUNDS rounds
//      interleaved (round 1 of everything, then round 2, …) after a discarded warm-up, so drift
//      hits all targets alike; the median is reported. A pair whose warm-up (or any round) moves
//      nothing at all is reported as failing, with the error, and not run again.
//   3. Per run: server CPU per request from /proc (proxy = portico daemon or nginx master+workers,
//      app = the plugin process or node:http upstream) and peak RSS (VmHWM, reset through
//      /proc/PID/clear_refs before each run, so the peak is that workload's).
//   4. 1 GiB: a fresh portico v2 daemon (nothing earlier inflates its VmHWM) moves one 1 GiB
//      download and one 1 GiB upload; its peak RSS is checked against the issue's 100 MiB target.
//   5. States the issue's targets with PASS/MISS and the measured ratios, writes bench/RESULTS.md
//      (unless --profile without --out) and prints the tables.
// Everything it started (nginx included) is stopped on exit, error or Ctrl-C, and the whole run has
// a hard time limit.
//
// Extending: a service (a process to start) goes in SERVICES, a target (a service, the prefix it
// serves the logic under and the pids that are its "proxy" and its "app") in TARGETS, a workload
// (a path, a kind and a run(ctx) that returns a Measurement) in WORKLOADS.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  accessSync,
  closeSync,
  existsSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { natsBench } from "./nats.mjs";
import { nginxConfig } from "./nginx-config.mjs";
import { SMALL_BODY } from "./plugins/logic.mjs";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, "..");
const HOST = "127.0.0.1";
const CLIENT = join(BENCH_DIR, "load-client.mjs");
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

// ───────────────────────────── services ─────────────────────────────

/**
 * A service is a process the benchmark starts. start(ctx, services) resolves to
 * { baseUrl, proc, … }; `needs` names services that must be started first.
 */
const SERVICES = {
  direct: {
    label: "node:http server with the logic (bench/direct-server.mjs), hit directly",
    start: (ctx) => startDirectServer(ctx, "direct"),
  },
  upstream: {
    label: "node:http server with the logic (bench/direct-server.mjs), nginx's upstream",
    start: (ctx) => startDirectServer(ctx, "upstream"),
  },
  nginx: {
    label: "nginx (generated config, 127.0.0.1) → upstream",
    needs: ["upstream"],
    start: (ctx, services) => startNginx(ctx, services.upstream),
  },
  seed: {
    label: "nexo's design: bench/seed-model/gateway.mjs serving bench/plugins/v1/bench-v1",
    start: (ctx) => startSeed(ctx),
  },
  "portico-v2": {
    label: "portico serve --plugins bench/plugins/v2 (access log on, to a file)",
    start: (ctx) => startPortico(ctx, "portico-v2", join(BENCH_DIR, "plugins", "v2")),
  },
  "portico-v1": {
    label: "portico serve --plugins bench/plugins/v1 (access log on, to a file)",
    start: (ctx) => startPortico(ctx, "portico-v1", join(BENCH_DIR, "plugins", "v1")),
  },
  // --before DIR: the same two daemons from another checkout (its own bin, dist and bench plugins,
  // so its SDK too), measured in the same run: a before/after that shares the machine's moment.
  "portico-v2-before": {
    label: "portico serve --plugins bench/plugins/v2 of the --before checkout (access log on, to a file)",
    start: (ctx) => startPortico(ctx, "portico-v2-before", join(BEFORE.dir, "bench", "plugins", "v2"), BEFORE.dir),
  },
  "portico-v1-before": {
    label: "portico serve --plugins bench/plugins/v1 of the --before checkout (access log on, to a file)",
    start: (ctx) => startPortico(ctx, "portico-v1-before", join(BEFORE.dir, "bench", "plugins", "v1"), BEFORE.dir),
  },
};

async function startDirectServer(ctx, name) {
  const proc = ctx.spawnChild(
    name,
    process.execPath,
    [join(BENCH_DIR, "direct-server.mjs"), "--port", "0", "--host", HOST, "--prefix", "/app"],
    {
      stdio: ["pipe", "pipe", "pipe"],
    },
  );
  const port = await waitForLine(proc, /^listening (\d+)$/m, 10_000, `${name} server`).then((m) => Number(m[1]));
  return { baseUrl: `http://${HOST}:${port}`, port, proc };
}

/** nexo's design (bench/seed-model): the same nexo plugin as portico-v1, under its own host. */
async function startSeed(ctx) {
  const port = await freePort();
  const plugin = join(BENCH_DIR, "plugins", "v1", "bench-v1");
  const proc = ctx.spawnChild("seed", process.execPath, [join(BENCH_DIR, "seed-model", "gateway.mjs"), `${HOST}:${port}`, plugin], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "pipe"],
  });
  const baseUrl = `http://${HOST}:${port}`;
  // It opens its port once the plugin is initialized, and has no /health.
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await fetch(`${baseUrl}/v1/small`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`the seed gateway did not start\n${proc.stderrTail.join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { baseUrl, proc, refresh: async () => undefined, health: async () => undefined };
}

async function startPortico(ctx, name, pluginsDir, root = ROOT) {
  const port = await freePort();
  const env = { ...process.env };
  if (ctx.profileDir) {
    // NODE_OPTIONS reaches the Node plugins too (portico passes its environment on), but it
    // refuses --cpu-prof: a preload starts V8's profiler instead and writes on exit.
    env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --require ${join(BENCH_DIR, "cpu-prof-preload.cjs")}`.trim();
    env.PORTICO_BENCH_PROFILE_DIR = ctx.profileDir;
  }
  // nexo's design sends a 64 MiB body as one ~90 MB JSON line, over portico's default
  // max_line_bytes (32 MiB): raised here so the seed design can be measured at all.
  const config = join(mkdtempSync(join(os.tmpdir(), "portico-bench-")), "portico.toml");
  writeFileSync(config, "[limits]\nmax_line_bytes = 268435456\n");
  const args = [
    join(root, "bin", "portico.js"),
    "serve",
    "--config",
    config,
    "--plugins",
    pluginsDir,
    "--listen",
    `${HOST}:${port}`,
    "--log-level",
    "info",
  ];
  // The access log on, as nginx's is: one JSON line per request, to a file (not a pipe the bench
  // would have to drain).
  const logFd = openSync(join(dirname(config), "portico.log"), "a");
  const proc = ctx.spawnChild(name, process.execPath, args, { cwd: root, env, stdio: ["ignore", logFd, "pipe"] });
  closeSync(logFd);
  const baseUrl = `http://${HOST}:${port}`;
  const health = await waitForHealth(proc, `${baseUrl}/health`, 30_000);
  const svc = {
    baseUrl,
    proc,
    plugins: new Map(), // id → pid
    protocols: new Map(), // id → protocol
    health: () => getJson(`${baseUrl}/health`).catch(() => undefined),
    /** Plugin pids can change (a crash restarts the plugin): re-read them before each run. */
    async refresh() {
      const h = await svc.health();
      for (const p of h?.plugins ?? []) {
        if (p.pid && svc.plugins.get(p.id) !== p.pid) {
          svc.plugins.set(p.id, p.pid);
          ctx.adopt(p.pid);
        }
        if (p.protocol) svc.protocols.set(p.id, p.protocol);
      }
      return h;
    },
  };
  for (const p of health.plugins ?? []) {
    if (p.pid) svc.plugins.set(p.id, p.pid);
    if (p.protocol) svc.protocols.set(p.id, p.protocol);
  }
  for (const pid of svc.plugins.values()) ctx.adopt(pid);
  if (svc.plugins.size === 0) throw new Error(`${name}: /health reports no plugin pid: ${JSON.stringify(health)}`);
  return svc;
}

/** nginx's binary: PORTICO_BENCH_NGINX if set (a path), else the first on PATH or in the sbin folders. */
function findNginx() {
  if (process.env.PORTICO_BENCH_NGINX !== undefined) {
    try {
      accessSync(process.env.PORTICO_BENCH_NGINX, fsConstants.X_OK);
      return process.env.PORTICO_BENCH_NGINX;
    } catch {
      return undefined;
    }
  }
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"]) {
    if (!dir) continue;
    const p = join(dir, "nginx");
    try {
      accessSync(p, fsConstants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

async function startNginx(ctx, upstream) {
  const bin = findNginx();
  const dir = join(tmpDir, "nginx");
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, nginxConfig({ dir, host: HOST, port, upstreamPort: upstream.port }));
  const errorLog = join(dir, "error.log");
  const proc = ctx.spawnChild("nginx", bin, ["-p", `${dir}/`, "-c", conf, "-e", errorLog], { stdio: ["ignore", "pipe", "pipe"] });
  const baseUrl = `http://${HOST}:${port}`;
  const logTail = () =>
    `${proc.stderrTail.join("\n")}\n${safe(() => readFileSync(errorLog, "utf8").split("\n").slice(-20).join("\n")) ?? ""}`;
  let exited;
  proc.on("exit", (code, signal) => (exited = signal ?? code));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (exited !== undefined) throw new Error(`nginx exited (${exited}) before it was ready (config ${conf}):\n${logTail()}`);
    try {
      const r = await fetch(`${baseUrl}/app/small`, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) break;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`nginx did not answer within 10 s (config ${conf}):\n${logTail()}`);
    await sleep(100);
  }
  return { baseUrl, proc, port, logTail };
}

// ───────────────────────────── targets ─────────────────────────────

/**
 * What is loaded: a service, the prefix it serves the logic under, and which pids are its
 * "proxy" (what stands between client and logic) and its "app" (the process running the logic).
 */
const TARGETS = [
  {
    id: "direct",
    label: "direct (node:http)",
    service: "direct",
    prefix: "/app",
    baseline: true,
    roles: (s) => ({ app: [s.proc.pid] }),
  },
  {
    id: "nginx",
    label: "nginx → node:http",
    service: "nginx",
    prefix: "/app",
    roles: (s, all) => ({ proxy: treeOf(s.proc.pid), app: [all.upstream.proc.pid] }),
  },
  {
    id: "portico-v2",
    label: "portico v2 → SDK plugin",
    service: "portico-v2",
    plugin: "bench_v2",
    protocol: 2,
    prefix: "/v2",
    roles: (s) => ({ proxy: [s.proc.pid], app: treeOf(s.plugins.get("bench_v2")) }),
  },
  {
    id: "seed",
    label: "nexo's design (seed model) → same nexo plugin as portico v1",
    service: "seed",
    prefix: "/v1",
    roles: (s) => ({ proxy: [s.proc.pid], app: treeOf(s.proc.pid).slice(1) }),
    notApplicable: {
      "ws-echo": "n/a: nexo's design cannot carry a WebSocket",
    },
  },
  {
    id: "portico-v1",
    label: "portico v1 → same plugin on nexo's wire",
    service: "portico-v1",
    plugin: "bench_v1",
    protocol: 1,
    prefix: "/v1",
    roles: (s) => ({ proxy: [s.proc.pid], app: treeOf(s.plugins.get("bench_v1")) }),
    notApplicable: {
      "ws-echo": "n/a: protocol v1 cannot carry a WebSocket (portico passes the upgrade on as a plain request; the plugin answers 426)",
    },
  },
];

// ───────────────────────────── workloads ─────────────────────────────

const SSE_EVENTS = 100;
const SSE_INTERVAL_MS = 10;
const WS_CLIENTS = 16;
const WS_MESSAGE_BYTES = 64;

/**
 * kind: "rps" (req/s or messages/s is the figure), "bulk" (MB/s of body bytes is the figure),
 * "sse" (timing of one event stream). `check` is the sanity check run once per target first.
 */
const WORKLOADS = [
  {
    id: "get-small-c64",
    label: "GET small (21 B), 64 conn",
    kind: "rps",
    path: "/small",
    check: { expectBody: SMALL_BODY },
    run: (ctx) => runWrk(ctx, { connections: 64 }),
  },
  {
    id: "get-small-c1",
    label: "GET small (21 B), 1 conn",
    kind: "rps",
    path: "/small",
    check: { expectBody: SMALL_BODY },
    run: (ctx) => runWrk(ctx, { connections: 1 }),
  },
  {
    id: "get-1m",
    label: "GET 1 MiB, 4 conn",
    kind: "bulk",
    size: MiB,
    path: "/bytes?n=1048576",
    check: { expectLength: MiB },
    run: (ctx) => runWrk(ctx, { connections: 4 }),
  },
  {
    id: "post-1m-echo",
    label: "POST 1 MiB echo, 4 conn",
    kind: "bulk",
    size: MiB,
    path: "/echo",
    check: { method: "POST", body: "y".repeat(4096), expectBody: "y".repeat(4096) },
    run: (ctx) =>
      runWrk(ctx, {
        connections: 4,
        lua: ['wrk.method = "POST"', `wrk.body = string.rep("x", ${MiB})`, 'wrk.headers["Content-Type"] = "application/octet-stream"'].join(
          "\n",
        ),
      }),
  },
  {
    id: "get-64m",
    label: "GET 64 MiB, 1 conn",
    kind: "bulk",
    size: 64 * MiB,
    path: `/bytes?n=${64 * MiB}`,
    check: { path: "/bytes?n=65536", expectLength: 65536 },
    run: (ctx) =>
      runClient(ctx, [
        "bulk",
        "--url",
        ctx.url,
        "--method",
        "GET",
        "--size",
        String(64 * MiB),
        "--duration",
        String(ctx.duration),
        "--timeout",
        "30",
      ]),
  },
  {
    id: "post-64m-count",
    label: "POST 64 MiB upload (/count), 1 conn",
    kind: "bulk",
    size: 64 * MiB,
    path: "/count",
    check: { method: "POST", body: "y".repeat(4096), expectBody: "4096\n" },
    run: (ctx) =>
      runClient(ctx, [
        "bulk",
        "--url",
        ctx.url,
        "--method",
        "POST",
        "--size",
        String(64 * MiB),
        "--duration",
        String(ctx.duration),
        "--timeout",
        "30",
      ]),
  },
  {
    id: "sse",
    label: `SSE, ${SSE_EVENTS} events ${SSE_INTERVAL_MS} ms apart`,
    kind: "sse",
    path: `/events?n=${SSE_EVENTS}&interval=${SSE_INTERVAL_MS}`,
    check: { path: "/events?n=3&interval=1", expectBody: "data: 0\n\ndata: 1\n\ndata: 2\n\n" },
    run: (ctx) => runSse(ctx),
  },
  {
    id: "ws-echo",
    label: `WebSocket echo, ${WS_CLIENTS} clients, ${WS_MESSAGE_BYTES} B`,
    kind: "rps",
    unit: "msg/s",
    path: "/ws",
    check: { websocket: true },
    run: (ctx) =>
      runClient(ctx, [
        "ws",
        "--url",
        ctx.url.replace(/^http/, "ws"),
        "--clients",
        String(WS_CLIENTS),
        "--size",
        String(WS_MESSAGE_BYTES),
        "--duration",
        String(ctx.duration),
        "--timeout",
        String(ctx.duration + 20),
      ]),
  },
];

/**
 * Issue 7's targets, as ratios in the same run. `metric`: "figure" (throughput, higher is better:
 * ratio ≥ min) or a latency percentile ("p50", "p99": lower is better, ratio ≤ max).
 */
const BODIES = ["get-1m", "post-1m-echo", "get-64m", "post-64m-count"];
const GOALS = [
  {
    text: "small GETs (v2) at least nginx's rate",
    target: "portico-v2",
    workloads: ["get-small-c64", "get-small-c1"],
    vs: "nginx",
    min: 1.0,
  },
  {
    text: "small GETs (v1) at least nginx's rate",
    target: "portico-v1",
    workloads: ["get-small-c64", "get-small-c1"],
    vs: "nginx",
    min: 1.0,
  },
  {
    text: "a nexo v1 plugin at least as fast as nexo's design",
    target: "portico-v1",
    workloads: ["get-small-c64", "get-small-c1", ...BODIES],
    vs: "seed",
    min: 1.0,
  },
  { text: "1 MiB bodies (v2) at least 0.5× direct", target: "portico-v2", workloads: ["get-1m", "post-1m-echo"], vs: "direct", min: 0.5 },
  {
    text: "64 MiB bodies (v2) at least 0.8× direct",
    target: "portico-v2",
    workloads: ["get-64m", "post-64m-count"],
    vs: "direct",
    min: 0.8,
  },
  {
    text: "small GETs (v2): p50 latency no worse than nginx's",
    target: "portico-v2",
    workloads: ["get-small-c64"],
    vs: "nginx",
    metric: "p50",
    max: 1.0,
  },
  {
    text: "small GETs (v2): p99 latency no worse than nginx's",
    target: "portico-v2",
    workloads: ["get-small-c64"],
    vs: "nginx",
    metric: "p99",
    max: 1.0,
  },
  {
    text: "small GETs (v1): p50 latency no worse than nginx's",
    target: "portico-v1",
    workloads: ["get-small-c64"],
    vs: "nginx",
    metric: "p50",
    max: 1.0,
  },
  {
    text: "small GETs (v1): p99 latency no worse than nginx's",
    target: "portico-v1",
    workloads: ["get-small-c64"],
    vs: "nginx",
    metric: "p99",
    max: 1.0,
  },
];
const RSS_GOAL_MIB = 100;

// ───────────────────────────── options ─────────────────────────────

const USAGE = `usage: npm run bench -- [options]
  --quick              under two minutes: 3 rounds of 1 s, no warm-up phase (the route checks and the
                       median of 3 absorb it), no "GET small, 1 conn"
  --rounds N           rounds per (workload, target); the median is reported (default 3)
  --duration SEC       seconds per timed run (default 3; 1 with --quick); SSE runs are one stream
  --warmup SEC         discarded warm-up per (workload, target) before round 1 (default 1; 0 with --quick)
  --workloads IDS      comma-separated subset of: ${"%WORKLOADS%"}
  --targets IDS        comma-separated subset of: ${"%TARGETS%"} (direct and nginx are
                       always included: the ratios need them)
  --settle SEC         on a shared machine, time it may spend (in total) waiting for other processes'
                       CPU load to drop before a run, and re-running a run they disturbed (default
                       45; 10 with --quick; 0 = never wait)
  --no-gib             skip the 1 GiB download/upload through a fresh portico v2 daemon
  --no-nats            skip the NATS section (bench/nats.mjs: embedded vs gateway + hosts)
  --no-python          skip the Python section (bench/python.mjs: FastAPI through portico vs uvicorn behind nginx)
  --no-build           skip \`npm run build\`
  --profile[=DIR]      profile the portico daemons and their Node plugins (V8 CPU profiler), print
                       the hot spots; profiles go to DIR (default: a temp directory). RESULTS.md is
                       left alone unless --out is given, since profiling skews the numbers.
  --before DIR         also run the portico targets from another built checkout (e.g. a git worktree
                       of an older commit, with \`npm run build\` done there), each beside its own
                       from this one, and add a before → after table: a change's effect from one run
  --out FILE           where to write the markdown results (default bench/RESULTS.md)
  --json FILE          also write the raw measurements as JSON
`;

let opts;
try {
  opts = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      workloads: { type: "string" },
      targets: { type: "string" },
      "no-build": { type: "boolean", default: false },
      "no-gib": { type: "boolean", default: false },
      "no-nats": { type: "boolean", default: false },
      "no-python": { type: "boolean", default: false },
      settle: { type: "string" },
      profile: { type: "string" },
      out: { type: "string" },
      before: { type: "string" },
      json: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    // `--profile` alone (no =DIR) is allowed: normalised below.
    args: process.argv.slice(2).map((a) => (a === "--profile" ? "--profile=" : a)),
  }).values;
} catch (err) {
  fail(`${err.message}\n\n${usage()}`);
}
if (opts.help) {
  process.stdout.write(usage());
  process.exit(0);
}

const QUICK = opts.quick;
const ROUNDS = positiveInt(opts.rounds ?? "3", "--rounds");
const DURATION = positiveInt(opts.duration ?? (QUICK ? "1" : "3"), "--duration");
const WARMUP = nonNegativeInt(opts.warmup ?? (QUICK ? "0" : "1"), "--warmup");
const PROFILE = opts.profile !== undefined;
const SETTLE = nonNegativeInt(opts.settle ?? (QUICK ? "10" : "45"), "--settle");
const GIB = !opts["no-gib"];
const NATS = !opts["no-nats"];
const PYTHON = !opts["no-python"];
/** A run during which other processes used more than this share of the machine is "disturbed". */
const DISTURBED = 0.15;
const OUT = opts.out ? resolve(opts.out) : PROFILE ? undefined : join(BENCH_DIR, "RESULTS.md");
/** --before DIR: the checkout whose portico is measured beside this one's. */
const BEFORE = opts.before === undefined ? undefined : beforeCheckout(opts.before);
/** Left out of --quick (unless asked for by --workloads) to keep it under two minutes. */
const NOT_IN_QUICK = ["get-small-c1"];

// ───────────────────────────── process bookkeeping ─────────────────────────────

/** Everything we started (or adopted: plugin processes portico spawned for us), by pid. */
const owned = new Map(); // pid → { name, proc?, load? }
let tmpDir;
let keepTmp = false;
let cleaningUp;

function spawnChild(name, cmd, args, options, { load = false } = {}) {
  const proc = spawn(cmd, args, options);
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  owned.set(proc.pid, { name, proc, load });
  proc.on("exit", () => owned.delete(proc.pid));
  proc.on("error", () => {});
  proc.stderrTail = [];
  const keep = (d) => {
    proc.stderrTail.push(...d.split("\n").filter(Boolean));
    if (proc.stderrTail.length > 40) proc.stderrTail.splice(0, proc.stderrTail.length - 40);
  };
  proc.keepTail = keep;
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", keep);
  return proc;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops everything: SIGTERM to what we spawned (portico shuts its plugins down, nginx its workers), then SIGKILL. */
async function cleanup() {
  cleaningUp ??= (async () => {
    const services = [...owned.entries()].filter(([, o]) => o.proc);
    for (const [pid] of services) safe(() => process.kill(pid, "SIGTERM"));
    const deadline = Date.now() + 12_000;
    while (Date.now() < deadline && [...owned.keys()].some(alive)) await sleep(50);
    killAllNow();
    removeTmp();
  })();
  return cleaningUp;
}

function removeTmp() {
  if (tmpDir && !keepTmp) safe(() => rmSync(tmpDir, { recursive: true, force: true }));
}

function killAllNow() {
  for (const pid of owned.keys()) killTree(pid);
}

/** SIGKILL a process we own and whatever it started (deepest first). */
function killTree(pid) {
  for (const p of treeOf(pid).reverse()) if (alive(p)) safe(() => process.kill(p, "SIGKILL"));
}

process.on("exit", () => {
  killAllNow();
  removeTmp();
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping everything it started\n`);
    cleanup().finally(() => process.exit(130));
  });
}

// ───────────────────────────── helpers ─────────────────────────────

function usage() {
  return USAGE.replace("%WORKLOADS%", WORKLOADS.map((w) => w.id).join(", ")).replace("%TARGETS%", TARGETS.map((t) => t.id).join(", "));
}

function fail(message) {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(1);
}

function beforeCheckout(dir) {
  const root = resolve(dir);
  for (const need of ["bin/portico.js", "dist/cli/main.js", "bench/plugins/v1", "bench/plugins/v2"]) {
    if (!existsSync(join(root, need))) fail(`--before ${dir}: no ${need} there (a built portico checkout is needed: npm run build in it)`);
  }
  const rev = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root, encoding: "utf8" }).stdout?.trim() || "unknown";
  return { dir: root, rev };
}

function positiveInt(s, name) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) fail(`${name} ${s}: expected a positive integer`);
  return n;
}

function nonNegativeInt(s, name) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 0) fail(`${name} ${s}: expected a non-negative integer`);
  return n;
}

function safe(fn) {
  try {
    return fn();
  } catch {
    return undefined;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", rej);
    srv.listen(0, HOST, () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function waitForLine(proc, re, timeoutMs, name) {
  let buf = "";
  proc.stdout.setEncoding("utf8");
  return new Promise((res, rej) => {
    const timer = setTimeout(
      () => rej(new Error(`${name} did not start within ${timeoutMs} ms\n${proc.stderrTail.join("\n")}`)),
      timeoutMs,
    );
    proc.stdout.on("data", (d) => {
      buf += d;
      const m = buf.match(re);
      if (m) {
        clearTimeout(timer);
        res(m);
      }
    });
    proc.on("exit", (code, signal) => {
      clearTimeout(timer);
      rej(new Error(`${name} exited (${signal ?? code}) before it was ready\n${proc.stderrTail.join("\n")}`));
    });
  });
}

async function getJson(url) {
  const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
  return r.json();
}

async function waitForHealth(proc, url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let exited;
  proc.on("exit", (code, signal) => (exited = signal ?? code));
  // portico logs at warn: anything on stdout/stderr is worth seeing if it fails.
  proc.stdout?.setEncoding("utf8");
  proc.stdout?.on("data", proc.keepTail);
  let last;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`portico exited (${exited}) before it was ready\n${proc.stderrTail.join("\n")}`);
    try {
      const h = await getJson(url);
      last = h;
      if (h.status === "ok" && Array.isArray(h.plugins) && h.plugins.length > 0 && h.plugins.every((p) => p.state === "ready")) return h;
    } catch (err) {
      last = err.message;
    }
    await sleep(100);
  }
  throw new Error(`portico was not ready within ${timeoutMs} ms: last /health ${JSON.stringify(last)}\n${proc.stderrTail.join("\n")}`);
}

/** pids whose parent is `pid`. */
function childrenOf(pid) {
  const out = [];
  for (const name of safe(() => readdirSync("/proc")) ?? []) {
    if (!/^\d+$/.test(name)) continue;
    const st = procStat(Number(name));
    if (st && st.ppid === pid) out.push(Number(name));
  }
  return out;
}

/** A process and all its descendants. */
function treeOf(pid) {
  if (!pid) return [];
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childrenOf(all[i]));
  return all;
}

const CLK_TCK = Number(safe(() => spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim())) || 100;

function procStat(pid) {
  const s = safe(() => readFileSync(`/proc/${pid}/stat`, "utf8"));
  if (!s) return undefined;
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(f[1]), cpuMs: ((Number(f[11]) + Number(f[12])) * 1000) / CLK_TCK };
}

function cpuMsOf(pids) {
  let total = 0;
  for (const pid of pids) total += procStat(pid)?.cpuMs ?? 0;
  return total;
}

function memOf(pid) {
  const s = safe(() => readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!s) return undefined;
  const kb = (key) => Number(s.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { hwmKb: kb("VmHWM"), rssKb: kb("VmRSS") };
}

/** Sum of VmHWM over pids (kB). */
function hwmOf(pids) {
  let total = 0;
  let any = false;
  for (const pid of pids) {
    const m = memOf(pid);
    if (m && Number.isFinite(m.hwmKb)) {
      total += m.hwmKb;
      any = true;
    }
  }
  return any ? total : NaN;
}

/**
 * Resets VmHWM to the current RSS (Linux ≥ 4.0: "5" to /proc/PID/clear_refs), so that the next
 * reading is the peak of what happens in between. False when the kernel or permissions refuse.
 */
let hwmResettable = true;
function resetHwm(pids) {
  for (const pid of pids) {
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, "5");
    } catch {
      if (alive(pid)) hwmResettable = false;
    }
  }
}

/**
 * Whole-machine CPU ticks from /proc/stat: total, idle, and time spent running processes
 * (user+nice+system). irq/softirq time is left out of the latter: it is not charged to any
 * process, and on loopback most of it is our own network traffic.
 */
function machineTicks() {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0];
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = v[3] + (v[4] ?? 0);
  return { total: v.slice(0, 8).reduce((a, b) => a + (b || 0), 0), idle, procs: v[0] + v[1] + v[2] };
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const max = (xs) => xs.filter(Number.isFinite).reduce((a, b) => Math.max(a, b), -Infinity);

// ───────────────────────────── tools: checks ─────────────────────────────

function checkTools() {
  const r = spawnSync("wrk", ["-v"], { encoding: "utf8" });
  if (r.error?.code === "ENOENT") {
    fail(
      "wrk is not installed: it is the load generator this benchmark uses.\n     Install the Debian package `wrk`:  sudo apt-get install -y wrk",
    );
  }
  const nginx = findNginx();
  if (!nginx) {
    fail(
      "nginx is not installed: the benchmark compares portico with nginx reverse-proxying the same logic.\n" +
        "     Install the Debian package `nginx` (or `nginx-light`):  sudo apt-get install -y nginx-light\n" +
        "     (or point PORTICO_BENCH_NGINX at an nginx binary)",
    );
  }
  const nv = spawnSync(nginx, ["-v"], { encoding: "utf8" });
  return {
    wrk: `${r.stdout}${r.stderr}`.match(/^wrk\s+(\S+)/m)?.[1] ?? "unknown",
    nginx: `${nv.stdout}${nv.stderr}`.match(/nginx\/(\S+)/)?.[1] ?? "unknown",
  };
}

// ───────────────────────────── wrk ─────────────────────────────

const TIME_UNITS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const SIZE_UNITS = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

/** Parses `wrk --latency` output. Times in ms, bytes per second. */
export function parseWrk(text) {
  const num = (re) => {
    const m = text.match(re);
    return m ? Number(m[1]) : NaN;
  };
  const latency = {};
  for (const m of text.matchAll(/^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) latency[`p${m[1]}`] = Number(m[2]) * TIME_UNITS[m[3]];
  const transfer = text.match(/Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB|TB)/);
  const total = text.match(/(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read/);
  const sock = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
  const errors = {
    connect: sock ? Number(sock[1]) : 0,
    read: sock ? Number(sock[2]) : 0,
    write: sock ? Number(sock[3]) : 0,
    timeout: sock ? Number(sock[4]) : 0,
    non2xx: Number.isFinite(non2xx) ? non2xx : 0,
  };
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: total ? Number(total[1]) : NaN,
    seconds: total ? (Number(total[2]) * TIME_UNITS[total[3]]) / 1000 : NaN,
    bytesPerSec: transfer ? Number(transfer[1]) * SIZE_UNITS[transfer[2]] : NaN,
    latency,
    errors,
    errorCount: errors.connect + errors.read + errors.write + errors.timeout + errors.non2xx,
  };
}

async function runWrk(ctx, { connections, threads = 1, lua }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${ctx.duration}s`, "--latency", "--timeout", "10s"];
  if (lua) {
    const file = join(tmpDir, `${ctx.workload.id}.lua`);
    if (!existsSync(file)) writeFileSync(file, `${lua}\n`);
    args.push("-s", file);
  }
  args.push(ctx.url);
  // Through a shell that prints its own /proc stat once wrk is reaped: its cutime/cstime are
  // wrk's CPU, which tells the load generator's share from other processes' on the machine.
  const script = 'wrk "$@"; rc=$?; echo "SHELLSTAT $(cat /proc/$$/stat)" >&2; exit $rc';
  const proc = spawnChild("wrk", "sh", ["-c", script, "sh", ...args], { stdio: ["ignore", "pipe", "pipe"] }, { load: true });
  let out = "";
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (d) => (out += d));
  const killer = setTimeout(() => killTree(proc.pid), (ctx.duration + 20) * 1000);
  const [code, signal] = await once(proc, "exit");
  clearTimeout(killer);
  if (code !== 0) throw new Error(`wrk ${args.join(" ")} failed (${signal ?? code}):\n${out}\n${proc.stderrTail.join("\n")}`);
  const m = parseWrk(out);
  if (!Number.isFinite(m.rps)) throw new Error(`could not read wrk's output:\n${out}`);
  const stat = proc.stderrTail.find((l) => l.startsWith("SHELLSTAT "));
  if (stat) {
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields 16 and 17 (cutime, cstime): f[0] is field 3
    m.clientCpuMs = ((Number(f[13]) + Number(f[14])) * 1000) / CLK_TCK;
  }
  // Throughput of body bytes (one direction), not wrk's Transfer/sec (which counts headers too).
  if (ctx.workload.size) m.bytesPerSec = (m.rps * ctx.workload.size * (m.requests - m.errors.non2xx)) / Math.max(1, m.requests);
  m.errorList = m.errorCount ? [JSON.stringify(m.errors)] : [];
  return m;
}

// ───────────────────────────── load client (bulk, SSE, WebSocket) ─────────────────────────────

async function runClient(ctx, args) {
  const proc = spawnChild("client", process.execPath, [CLIENT, ...args], { stdio: ["ignore", "pipe", "pipe"] }, { load: true });
  let out = "";
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (d) => (out += d));
  const timeoutArg = Number(args[args.indexOf("--timeout") + 1]) || 60;
  const killer = setTimeout(() => killTree(proc.pid), (ctx.duration + timeoutArg + 15) * 1000);
  const [code, signal] = await once(proc, "exit");
  clearTimeout(killer);
  const line = out.trim().split("\n").pop();
  const r = safe(() => JSON.parse(line));
  if (code !== 0 || !r) throw new Error(`load client ${args.join(" ")} failed (${signal ?? code}):\n${out}\n${proc.stderrTail.join("\n")}`);
  if (r.fatal) throw new Error(`load client ${args.join(" ")}: ${r.fatal}`);
  return {
    ...r,
    latency: r.latency ?? {},
    errorList: r.errors ?? [],
    errorCount: (r.errors ?? []).length,
  };
}

async function runSse(ctx) {
  const m = await runClient(ctx, [
    "sse",
    "--url",
    ctx.url,
    "--events",
    String(SSE_EVENTS),
    "--interval",
    String(SSE_INTERVAL_MS),
    "--timeout",
    "15",
  ]);
  const a = m.arrivals ?? [];
  m.firstMs = a[0] ?? NaN;
  m.lastMs = a.at(-1) ?? NaN;
  // 1.00: the events arrived as far apart as they were sent; 0: all at once.
  m.spread = a.length > 1 ? (a.at(-1) - a[0]) / ((SSE_EVENTS - 1) * SSE_INTERVAL_MS) : NaN;
  // Largest number of events that arrived together (in one read).
  let burst = 0;
  for (let i = 0, j = 0; i < a.length; i = j) {
    while (j < a.length && a[j] === a[i]) j++;
    burst = Math.max(burst, j - i);
  }
  m.burst = burst;
  delete m.arrivals;
  return m;
}

// ───────────────────────────── one measurement ─────────────────────────────

function urlOf(pair, svc, path = pair.workload.path) {
  return `${svc.baseUrl}${pair.target.prefix}${path}`;
}

async function measure(pair, services, duration) {
  const { workload, target } = pair;
  const svc = services[target.service];
  if (svc.refresh) await svc.refresh();
  const roles = target.roles(svc, services);
  const all = Object.values(roles).flat();
  resetHwm(all);
  const before = Object.fromEntries(Object.entries(roles).map(([role, pids]) => [role, cpuMsOf(pids)]));
  const ours = () => cpuMsOf([...owned.entries()].filter(([, o]) => !o.load).flatMap(([pid]) => treeOf(pid)));
  const ours0 = ours();
  const t0 = machineTicks();
  const m = await workload.run({ url: urlOf(pair, svc), duration, workload, target });
  const t1 = machineTicks();
  const oursMs = ours() - ours0;
  m.cpuUsPerReq = {};
  m.hwmKb = {};
  for (const [role, pids] of Object.entries(roles)) {
    const ms = cpuMsOf(pids) - before[role];
    m.cpuUsPerReq[role] = m.requests > 0 ? (ms * 1000) / m.requests : NaN;
    m.hwmKb[role] = hwmOf(pids);
  }
  const totalTicks = Math.max(1, t1.total - t0.total);
  m.machineBusy = 1 - (t1.idle - t0.idle) / totalTicks;
  // Share of the machine used by processes that are not part of this benchmark (other sessions'
  // builds and tests on a shared box): process CPU time minus our servers' and the load generator's.
  const procsMs = ((t1.procs - t0.procs) * 1000) / CLK_TCK;
  m.otherLoad = Number.isFinite(m.clientCpuMs) ? Math.max(0, (procsMs - oursMs - m.clientCpuMs) / ((totalTicks * 1000) / CLK_TCK)) : NaN;
  const dead = [svc.proc.pid, ...all].filter((p) => !alive(p));
  if (dead.length)
    throw new Error(`${target.label}: process ${dead.join(", ")} died during ${workload.label}\n${svc.proc.stderrTail.join("\n")}`);
  m.failed = !(m.requests > 0) && m.errorCount > 0;
  return m;
}

/** Machine busy share over `ms`, excluding our own (idle between runs) processes' CPU. */
async function otherBusy(ms) {
  const ours = () => cpuMsOf([...owned.keys()].flatMap((pid) => treeOf(pid)));
  const o0 = ours();
  const t0 = machineTicks();
  await sleep(ms);
  const t1 = machineTicks();
  const totalMs = (Math.max(1, t1.total - t0.total) * 1000) / CLK_TCK;
  const procsMs = ((t1.procs - t0.procs) * 1000) / CLK_TCK;
  return Math.max(0, (procsMs - (ours() - o0)) / totalMs);
}

/** Spends at most the remaining --settle budget waiting until other processes leave the machine (mostly) idle. */
const settle = { leftMs: SETTLE * 1000, waitedMs: 0, reruns: 0 };
async function waitQuiet() {
  const start = Date.now();
  let announced = false;
  while (settle.leftMs > 0) {
    const busy = await otherBusy(100);
    if (busy < DISTURBED / 2) break;
    settle.leftMs -= 100;
    if (!announced) process.stderr.write(`bench: waiting for a quieter machine (other processes use ${fmtPct(busy)})\n`);
    announced = true;
  }
  settle.waitedMs += Date.now() - start;
}

/** measure(), after waiting for a quiet machine; re-run once if other processes disturbed it. */
async function measureSettled(pair, services, duration) {
  await waitQuiet();
  let m = await measure(pair, services, duration);
  if (!m.failed && m.otherLoad > DISTURBED && settle.leftMs >= duration * 1000) {
    process.stderr.write(`bench: ${pair.workload.id} → ${pair.target.id} disturbed (other load ${fmtPct(m.otherLoad)}): re-running\n`);
    settle.leftMs -= duration * 1000;
    settle.reruns++;
    await waitQuiet();
    const again = await measure(pair, services, duration);
    if (!(again.otherLoad > m.otherLoad)) m = again;
  }
  return m;
}

/** Before loading a URL, make sure it answers what the logic says (and that nothing is 404). */
async function sanityCheck(pair, services) {
  const svc = services[pair.target.service];
  const c = pair.workload.check ?? {};
  const url = urlOf(pair, svc, c.path ?? pair.workload.path);
  if (c.websocket) {
    const { WebSocket } = await import("ws");
    const echoed = await new Promise((res, rej) => {
      const ws = new WebSocket(url.replace(/^http/, "ws"), { perMessageDeflate: false, handshakeTimeout: 5000 });
      const timer = setTimeout(() => {
        ws.terminate();
        rej(new Error("no echo within 5 s"));
      }, 5000);
      ws.on("open", () => ws.send("ping"));
      ws.on("message", (d) => {
        clearTimeout(timer);
        ws.close(1000);
        res(String(d));
      });
      ws.on("unexpected-response", (_q, r) => {
        clearTimeout(timer);
        rej(new Error(`upgrade refused: ${r.statusCode}`));
      });
      ws.on("error", (e) => {
        clearTimeout(timer);
        rej(e);
      });
    }).catch((err) => {
      throw new Error(`${pair.target.label} WebSocket ${url}: ${err.message}`);
    });
    if (echoed !== "ping") throw new Error(`${pair.target.label} WebSocket ${url}: echoed ${JSON.stringify(echoed)}`);
    return;
  }
  const method = c.method ?? "GET";
  const r = await fetch(url, {
    method,
    body: c.body,
    headers: c.body ? { "content-type": "application/octet-stream" } : {},
    signal: AbortSignal.timeout(10_000),
  });
  const body = Buffer.from(await r.arrayBuffer());
  const ok =
    r.status === 200 &&
    (c.expectBody === undefined || body.toString("utf8") === c.expectBody) &&
    (c.expectLength === undefined || body.length === c.expectLength);
  if (!ok) {
    const want = c.expectBody !== undefined ? JSON.stringify(c.expectBody.slice(0, 40)) : `${c.expectLength} bytes`;
    throw new Error(
      `${pair.target.label} ${method} ${url}: expected 200 ${want}, got ${r.status} ${body.length} bytes ${JSON.stringify(body.toString("utf8", 0, 200))}`,
    );
  }
}

// ───────────────────────────── 1 GiB through a fresh portico v2 daemon ─────────────────────────────

async function gibTransfers(ctx, services) {
  const rows = [];
  const names = new Map();
  let restarted = false;
  const transfers = [
    { id: "download", label: "GET 1 GiB", method: "GET", path: `/bytes?n=${GiB}` },
    { id: "upload", label: "POST 1 GiB (/count)", method: "POST", path: "/count" },
  ];
  const transfer = (svc, prefix, t) =>
    runClient({ duration: 0 }, [
      "bulk",
      "--url",
      `${svc.baseUrl}${prefix}${t.path}`,
      "--method",
      t.method,
      "--size",
      String(GiB),
      "--duration",
      "0",
      "--max-transfers",
      "1",
      "--timeout",
      "120",
    ]);
  for (const t of transfers) {
    // A daemon started for this one transfer: nothing earlier inflates its VmHWM.
    process.stderr.write(`bench: 1 GiB ${t.id}: starting a fresh portico v2 daemon\n`);
    const fresh = await startPortico(ctx, `portico-v2-fresh-${t.id}`, join(BENCH_DIR, "plugins", "v2"));
    const pluginPid = fresh.plugins.get("bench_v2");
    names.set(fresh.proc.pid, `portico-v2 daemon (fresh, 1 GiB ${t.id})`);
    names.set(pluginPid, `portico-v2 plugin bench_v2 (fresh, 1 GiB ${t.id})`);
    const startKb = { daemon: memOf(fresh.proc.pid)?.rssKb, plugin: memOf(pluginPid)?.rssKb };
    const m = await transfer(fresh, "/v2", t);
    const row = {
      ...t,
      target: "portico-v2",
      seconds: m.seconds,
      bytesPerSec: m.bytesPerSec,
      errors: m.errorList,
      failed: !(m.requests > 0),
      startKb,
    };
    row.daemonKb = hwmOf([fresh.proc.pid]);
    row.pluginKb = hwmOf(treeOf(pluginPid));
    restarted ||= ((await fresh.health())?.plugins ?? []).some((p) => p.restarts > 0);
    rows.push(row);
    await stopService(fresh);
    if (services.direct) {
      resetHwm([services.direct.proc.pid]);
      const d = await transfer(services.direct, "/app", t);
      rows.push({
        ...t,
        target: "direct",
        seconds: d.seconds,
        bytesPerSec: d.bytesPerSec,
        errors: d.errorList,
        failed: !(d.requests > 0),
        appKb: hwmOf([services.direct.proc.pid]),
      });
    }
    for (const r of rows.slice(-2)) {
      process.stderr.write(
        `bench: 1 GiB ${t.id.padEnd(8)} ${r.target.padEnd(10)} ${fmtMBps(r.bytesPerSec).padStart(10)}  ${r.seconds.toFixed(2)} s` +
          `${r.daemonKb ? `  daemon peak ${fmtMiB(r.daemonKb)} (from ${fmtMiB(r.startKb.daemon)}), plugin peak ${fmtMiB(r.pluginKb)}` : ""}${r.errors.length ? `  ERRORS ${r.errors.join("; ")}` : ""}\n`,
      );
    }
  }
  for (const r of rows) {
    const d = rows.find((x) => x.id === r.id && x.target === "direct");
    r.ratio = d && !r.failed ? r.bytesPerSec / d.bytesPerSec : NaN;
  }
  return { rows, names, restarted };
}

/** SIGTERM, then SIGKILL after 12 s: a service we are done with (portico stops its plugins). */
async function stopService(svc) {
  if (!alive(svc.proc.pid)) return;
  const exited = once(svc.proc, "exit");
  svc.proc.kill("SIGTERM");
  const t = setTimeout(() => killTree(svc.proc.pid), 12_000);
  await exited;
  clearTimeout(t);
}

// ───────────────────────────── formatting ─────────────────────────────

function fmtMs(ms) {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 10_000) return `${ms.toFixed(0)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—");
const fmtRatio = (r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "—");
const fmtCpu = (us) => (!Number.isFinite(us) ? "—" : us < 10_000 ? `${us.toFixed(0)} µs` : `${(us / 1000).toFixed(0)} ms`);
const fmtPct = (f) => (Number.isFinite(f) ? `${(f * 100).toFixed(0)}%` : "—");
const fmtMiB = (kb) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MiB` : "—");
const fmtMBps = (bps) => (Number.isFinite(bps) ? `${(bps / 1e6).toFixed(bps < 1e7 ? 1 : 0)} MB/s` : "—");

/** The figure a workload is judged by: MB/s for bulk, req/s (or msg/s) otherwise. */
const figureOf = (w, s) => (w.kind === "bulk" ? s.bytesPerSec : s.rps);
const fmtFigure = (w, v) => (w.kind === "bulk" ? fmtMBps(v) : Number.isFinite(v) ? `${fmtInt(v)} ${w.unit ?? "req/s"}` : "—");

function summarize(pairs) {
  for (const p of pairs) {
    const rs = p.rounds;
    const roles = [...new Set(rs.flatMap((m) => Object.keys(m.cpuUsPerReq ?? {})))];
    p.summary = {
      rps: median(rs.map((m) => m.rps)),
      bytesPerSec: median(rs.map((m) => m.bytesPerSec)),
      p50: median(rs.map((m) => m.latency?.p50)),
      p99: median(rs.map((m) => m.latency?.p99)),
      cpu: Object.fromEntries(roles.map((role) => [role, median(rs.map((m) => m.cpuUsPerReq[role]))])),
      hwmKb: Object.fromEntries(roles.map((role) => [role, max(rs.map((m) => m.hwmKb?.[role]))])),
      errors: rs.reduce((a, m) => a + (m.errorCount ?? 0), 0),
      errorList: [...new Set(rs.flatMap((m) => m.errorList ?? []))].slice(0, 3),
      requests: rs.reduce((a, m) => a + (m.requests ?? 0), 0),
      otherLoad: median(rs.map((m) => m.otherLoad)),
      // SSE
      firstMs: median(rs.map((m) => m.firstMs)),
      lastMs: median(rs.map((m) => m.lastMs)),
      spread: median(rs.map((m) => m.spread)),
      burst: max(rs.map((m) => m.burst)),
    };
    p.summary.figure = figureOf(p.workload, p.summary);
    p.summary.figures = rs.map((m) => figureOf(p.workload, m));
  }
  for (const p of pairs) {
    const same = (id) => pairs.find((q) => q.workload === p.workload && q.target.id === id && !q.failed && !q.na);
    p.summary.vsDirect = p.summary.figure / same("direct")?.summary.figure;
    p.summary.vsNginx = p.summary.figure / same("nginx")?.summary.figure;
  }
  return pairs;
}

function rssCell(s) {
  return `${fmtMiB(s.hwmKb.proxy)} / ${fmtMiB(s.hwmKb.app)}`;
}

function cpuCell(s) {
  if (s.cpu.proxy === undefined) return `— + ${fmtCpu(s.cpu.app)}`;
  return `${fmtCpu(s.cpu.proxy)} + ${fmtCpu(s.cpu.app)}`;
}

function resultsTable(pairs) {
  const head = [
    "| workload | target | throughput (median) | × direct | × nginx | p50 | p99 | server CPU per request (proxy + app) | peak RSS (proxy / app) | per round | other load | errors |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
  ];
  const lines = pairs
    .filter((p) => p.workload.kind !== "sse")
    .map((p) => {
      const w = p.workload;
      if (p.na) return `| ${w.label} | ${p.target.label} | ${p.na} | | | | | | | | | |`;
      const s = p.summary;
      if (p.failed) {
        return `| ${w.label} | ${p.target.label} | **fails**: ${escapeMd(p.failed)} | | | | | | ${rssCell(s)} | | | ${s.errors} |`;
      }
      return `| ${w.label} | ${p.target.label} | ${fmtFigure(w, s.figure)}${w.kind === "bulk" ? ` (${s.rps.toFixed(1)} req/s)` : ""} | ${fmtRatio(s.vsDirect)} | ${fmtRatio(s.vsNginx)} | ${fmtMs(s.p50)} | ${fmtMs(s.p99)} | ${cpuCell(s)} | ${rssCell(s)} | ${s.figures.map((v) => (w.kind === "bulk" ? (v / 1e6).toFixed(0) : fmtInt(v))).join(" / ")} | ${fmtPct(s.otherLoad)} | ${s.errors}${s.errorList.length ? ` (${escapeMd(s.errorList.join("; ").slice(0, 120))})` : ""} |`;
    });
  return [...head, ...lines].join("\n");
}

function sseTable(pairs) {
  const rows = pairs.filter((p) => p.workload.kind === "sse");
  if (rows.length === 0) return "";
  const head = [
    "| target | first event | last event | spread (1.00 = as sent) | most events in one read | events arrive one by one? | peak RSS (proxy / app) | errors |",
    "|---|---:|---:|---:|---:|---|---:|---:|",
  ];
  const lines = rows.map((p) => {
    const s = p.summary;
    if (p.failed) return `| ${p.target.label} | **fails**: ${escapeMd(p.failed)} | | | | | ${rssCell(s)} | ${s.errors} |`;
    const oneByOne = s.spread >= 0.9 && s.burst <= 3 ? "yes" : "**no**";
    return `| ${p.target.label} | ${fmtMs(s.firstMs)} | ${fmtMs(s.lastMs)} | ${s.spread.toFixed(2)} | ${s.burst} | ${oneByOne} | ${rssCell(s)} | ${s.errors} |`;
  });
  return [...head, ...lines].join("\n");
}

function gibTable(gib) {
  if (!gib) return "";
  const head = [
    "| transfer | through | time | MB/s | × direct | portico daemon peak RSS | plugin peak RSS | direct server peak RSS |",
    "|---|---|---:|---:|---:|---:|---:|---:|",
  ];
  const lines = gib.rows.map((r) =>
    r.failed
      ? `| ${r.label} | ${r.target} | **fails**: ${escapeMd(r.errors.join("; "))} | | | | | |`
      : `| ${r.label} | ${r.target} | ${r.seconds.toFixed(2)} s | ${fmtMBps(r.bytesPerSec)} | ${r.target === "direct" ? "1.00×" : fmtRatio(r.ratio)} | ${fmtMiB(r.daemonKb)} | ${fmtMiB(r.pluginKb)} | ${fmtMiB(r.appKb)} |`,
  );
  return [...head, ...lines].join("\n");
}

function goalsTable(pairs, gib) {
  const out = ["| target | workload | measured | ratio | needed | result |", "|---|---|---:|---:|---:|---|"];
  const verdicts = [];
  for (const g of GOALS) {
    for (const wid of g.workloads) {
      const p = pairs.find((q) => q.workload.id === wid && q.target.id === g.target);
      const base = pairs.find((q) => q.workload.id === wid && q.target.id === g.vs);
      if (!p || !base) continue;
      const w = p.workload;
      const latency = g.metric === "p50" || g.metric === "p99";
      const value = (q) => (latency ? q.summary[g.metric] : q.summary.figure);
      const ratio = p.failed || base.failed ? NaN : value(p) / value(base);
      const pass = latency ? ratio <= g.max : ratio >= g.min;
      const short = latency ? `over by ${((ratio / g.max - 1) * 100).toFixed(0)}%` : `short by ${((1 - ratio / g.min) * 100).toFixed(0)}%`;
      // Both failing is no comparison at all (the same plugin refuses the workload under both).
      const bothFailed = p.failed && base.failed;
      const result = bothFailed
        ? "— (fails under both: not a comparison)"
        : !Number.isFinite(ratio)
          ? "**MISS** (failed)"
          : pass
            ? "PASS"
            : `**MISS** (${short})`;
      const shown = (q) => (latency ? `${g.metric} ${fmtMs(value(q))}` : fmtFigure(w, value(q)));
      if (!bothFailed) verdicts.push({ goal: g.text, workload: wid, ratio, pass });
      const needed = latency ? `≤ ${g.max.toFixed(2)}× ${g.vs}` : `≥ ${g.min.toFixed(2)}× ${g.vs}`;
      out.push(`| ${g.text} | ${w.label} | ${shown(p)} vs ${g.vs} ${shown(base)} | ${fmtRatio(ratio)} | ${needed} | ${result} |`);
    }
  }
  for (const r of gib?.rows ?? []) {
    if (r.target !== "portico-v2") continue;
    const mib = r.daemonKb / 1024;
    const pass = !r.failed && mib < RSS_GOAL_MIB;
    verdicts.push({ goal: "rss", workload: r.id, ratio: mib / RSS_GOAL_MIB, pass });
    out.push(
      `| daemon peak RSS during a 1 GiB transfer under ${RSS_GOAL_MIB} MiB | ${r.label} (fresh daemon) | ${r.failed ? "failed" : fmtMiB(r.daemonKb)} | ${fmtRatio(mib / RSS_GOAL_MIB)} of the limit | < ${RSS_GOAL_MIB} MiB | ${pass ? "PASS" : r.failed ? "**MISS** (failed)" : `**MISS** (over by ${(mib - RSS_GOAL_MIB).toFixed(0)} MiB)`} |`,
    );
  }
  return { table: out.join("\n"), verdicts };
}

/**
 * The pairs in the order round `round` runs them: as listed in odd rounds; in even ones each
 * --before twin goes first, so that neither side always runs in the other's wake. That takes the
 * position out, not the processes: with identical code on both sides (A/A runs, 7–8 rounds of
 * 1 MiB v1 replies), one side read 0.86× with the twin always second and 1.27× alternated, two
 * processes of the same code settling at different speeds. Small differences on that workload need
 * several runs.
 */
function roundOrder(list, round) {
  if (round % 2 === 1) return list;
  const out = [...list];
  for (let i = 0; i + 1 < out.length; i++) {
    const [a, b] = [out[i], out[i + 1]];
    if (b.target.afterOf === a.target && b.workload === a.workload) {
      out[i] = b;
      out[i + 1] = a;
      i++;
    }
  }
  return out;
}

/** --before: each portico target beside its twin from the other checkout, workload by workload. */
function beforeAfterTable(pairs) {
  const head = [
    "| workload | target | before | after | after ÷ before | CPU per request, before → after (proxy + app) | p99 before → after |",
    "|---|---|---:|---:|---:|---|---|",
  ];
  const lines = [];
  for (const p of pairs) {
    const t = p.target.afterOf;
    if (!t || p.na || p.workload.kind === "sse") continue;
    const after = pairs.find((q) => q.workload === p.workload && q.target === t);
    if (!after) continue;
    const w = p.workload;
    const cell = (q) => (q.failed ? "fails" : fmtFigure(w, q.summary.figure));
    const ratio = p.failed || after.failed ? NaN : after.summary.figure / p.summary.figure;
    lines.push(
      `| ${w.label} | ${t.label} | ${cell(p)} | ${cell(after)} | ${fmtRatio(ratio)} | ${cpuCell(p.summary)} → ${cpuCell(after.summary)} | ${fmtMs(p.summary.p99)} → ${fmtMs(after.summary.p99)} |`,
    );
  }
  return [...head, ...lines].join("\n");
}

const escapeMd = (s) => String(s).replace(/\|/g, "\\|").replace(/\n/g, " ");

function gitRevision() {
  // For a run from a snapshot (e.g. `git archive` of a commit) that has no .git of its own.
  if (process.env.PORTICO_BENCH_REVISION) return process.env.PORTICO_BENCH_REVISION;
  const rev = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout?.trim();
  if (!rev) return "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "src", "examples", "bin", "bench"], {
    cwd: ROOT,
    encoding: "utf8",
  }).stdout?.trim();
  return dirty ? `${rev} (with uncommitted changes in src/examples/bin/bench)` : rev;
}

// ───────────────────────────── main ─────────────────────────────

async function main() {
  const started = Date.now();
  const versions = checkTools();
  const pick = (all, list, kind) => {
    if (!list) return all;
    const ids = list
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
    for (const id of ids) if (!all.some((x) => x.id === id)) fail(`unknown ${kind} "${id}"\n\n${usage()}`);
    return all.filter((x) => ids.includes(x.id));
  };
  let workloads = pick(WORKLOADS, opts.workloads, "workload");
  if (QUICK && !opts.workloads) workloads = workloads.filter((w) => !NOT_IN_QUICK.includes(w.id));
  const wanted = pick(TARGETS, opts.targets, "target");
  // Ratios need the direct and nginx paths in the same run.
  const targets = TARGETS.filter((t) => wanted.includes(t) || t.id === "direct" || t.id === "nginx");
  if (BEFORE) {
    // Each portico target's twin from the --before checkout runs beside it in every round: right
    // after it in odd rounds, right before it in even ones (see roundOrder).
    for (let i = targets.length - 1; i >= 0; i--) {
      const t = targets[i];
      if (!t.protocol) continue;
      const service = `${t.service}-before`;
      // Its roles (which pids are proxy and app) are read from its own service, like the original's.
      targets.splice(i + 1, 0, { ...t, id: `${t.id}-before`, service, label: `${t.label}, before (${BEFORE.rev})`, afterOf: t });
    }
  }

  if (!opts["no-build"]) {
    process.stderr.write("bench: npm run build\n");
    const b = spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
    if (b.status !== 0) fail(`npm run build failed (exit ${b.status ?? b.signal}); fix the build or pass --no-build`);
  }

  tmpDir = mkdtempSync(join(os.tmpdir(), "portico-bench-"));
  const profileDir = PROFILE ? resolve(opts.profile || join(tmpDir, "profiles")) : undefined;
  if (profileDir) {
    mkdirSync(profileDir, { recursive: true });
    // Keep the profiles when they live in the temp directory we remove at the end.
    if (profileDir.startsWith(tmpDir)) keepTmp = true;
  }

  const ctx = { spawnChild, adopt: (pid) => owned.set(pid, { name: "plugin" }), profileDir };
  const services = {};
  const startService = async (name) => {
    if (services[name]) return;
    for (const dep of SERVICES[name].needs ?? []) await startService(dep);
    process.stderr.write(`bench: starting ${SERVICES[name].label}\n`);
    services[name] = await SERVICES[name].start(ctx, services);
    services[name].proc.on("exit", (code, signal) => {
      if (!cleaningUp)
        process.stderr.write(`bench: ${name} exited unexpectedly (${signal ?? code})\n${services[name].proc.stderrTail.join("\n")}\n`);
    });
  };
  for (const t of targets) await startService(t.service);

  // /health says which protocol each plugin speaks: the labels say it too (and it must be the one meant).
  for (const t of targets) {
    const proto = t.plugin && services[t.service]?.protocols?.get(t.plugin);
    if (t.plugin && proto !== t.protocol) throw new Error(`${t.label}: the plugin negotiated protocol ${proto}, expected ${t.protocol}`);
  }

  const pairs = [];
  for (const w of workloads) {
    for (const t of targets) {
      const pair = { workload: w, target: t, rounds: [] };
      pair.na = t.notApplicable?.[w.id];
      pairs.push(pair);
    }
  }
  const active = () => pairs.filter((p) => !p.na && !p.failed);
  for (const p of active()) await sanityCheck(p, services);
  if (!hwmResettable) process.stderr.write("bench: cannot reset VmHWM (/proc/PID/clear_refs): peak RSS is since each process started\n");

  const runs = active().length * ROUNDS;
  // Wall time per run: the load itself plus starting the load generator and sampling the machine.
  const perRun = (p) => (p.workload.kind === "sse" ? 1.3 : DURATION + 0.3);
  const est =
    active().reduce((a, p) => a + (WARMUP > 0 ? (p.workload.kind === "sse" ? 1.3 : WARMUP + 0.3) : 0) + ROUNDS * perRun(p), 0) +
    (GIB ? 15 : 0);
  process.stderr.write(
    `bench: ${workloads.length} workloads × ${targets.length} targets, ${ROUNDS} rounds of ${DURATION} s (${WARMUP ? `+${WARMUP} s warm-up each` : "no warm-up"}): ${runs} runs, about ${(est / 60).toFixed(1)} min (+ up to ${SETTLE} s waiting for a quiet machine)\n`,
  );
  // Hard ceiling, whatever happens: the run is bounded in time.
  const budgetMs = (120 + 2 * SETTLE + 2 * est + active().length * 30) * 1000;
  setTimeout(() => {
    process.stderr.write(`bench: gave up after ${Math.round(budgetMs / 1000)} s\n`);
    cleanup().finally(() => process.exit(1));
  }, budgetMs).unref();

  const record = (p, m, what) => {
    if (!m.failed) return;
    p.failed = `${(m.errorList ?? []).join("; ") || "no request succeeded"} (${what})`;
    p.failedRun = m;
    process.stderr.write(`bench: ${p.workload.id} → ${p.target.id} FAILS: ${p.failed}; not run again\n`);
  };
  if (WARMUP > 0) {
    for (const p of active()) {
      process.stderr.write(`bench: warm-up ${p.workload.id} → ${p.target.id}\n`);
      record(p, await measure(p, services, WARMUP), "warm-up");
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const p of roundOrder(active(), round)) {
      const m = await measureSettled(p, services, DURATION);
      record(p, m, `round ${round}`);
      if (p.failed) continue;
      p.rounds.push(m);
      const cpu = Object.entries(m.cpuUsPerReq)
        .map(([k, v]) => `${k} ${fmtCpu(v)}/req`)
        .join(", ");
      const w = p.workload;
      const fig =
        w.kind === "sse"
          ? `first ${fmtMs(m.firstMs)} last ${fmtMs(m.lastMs)} spread ${m.spread?.toFixed(2)}`
          : fmtFigure(w, figureOf(w, m));
      process.stderr.write(
        `bench: round ${round}/${ROUNDS} ${w.id.padEnd(15)} ${p.target.id.padEnd(10)} ${fig.padStart(14)}  p50 ${fmtMs(m.latency.p50).padStart(8)}  p99 ${fmtMs(m.latency.p99).padStart(8)}  ${cpu}  other load ${fmtPct(m.otherLoad)}${m.errorCount ? `  ERRORS ${m.errorList.join("; ").slice(0, 200)}` : ""}\n`,
      );
    }
  }
  for (const p of pairs) if (p.failed && p.rounds.length === 0 && p.failedRun) p.rounds.push(p.failedRun);

  const restarts = [];
  for (const t of targets) {
    const h = services[t.service]?.refresh ? await services[t.service].refresh() : undefined;
    for (const pl of h?.plugins ?? []) if (pl.restarts > 0 || pl.state !== "ready") restarts.push({ target: t.id, ...pl });
  }

  const gib = GIB && targets.some((t) => t.id === "portico-v2") ? await gibTransfers(ctx, services) : undefined;
  if (gib?.restarted) restarts.push({ target: "portico-v2-fresh", restarted: true });
  // Across NATS (bench/nats.mjs): its own processes, started after the others are measured.
  const nats = NATS ? await natsBench({ rounds: ROUNDS, duration: DURATION }) : "";

  summarize(pairs);
  const goals = goalsTable(pairs, gib);
  const elapsed = (Date.now() - started) / 1000;
  const cpus = os.cpus();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`;
  const md = [
    "# portico benchmark results",
    "",
    `Written by \`${command}\` (bench/run.mjs). Re-run it to refresh; numbers from different machines or runs are not comparable, only the ratios within one run are.`,
    "",
    `- date: ${new Date().toISOString()}`,
    `- machine: ${cpus.length} cores (${cpus[0]?.model?.trim() ?? "unknown"}), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`,
    `- node ${process.version}, wrk ${versions.wrk}, nginx ${versions.nginx}, portico ${gitRevision()}`,
    `- command: \`${command}\`; ${ROUNDS} rounds of ${DURATION} s per row (SSE: one stream per round), interleaved, ${WARMUP ? `after a ${WARMUP} s warm-up` : "no warm-up phase"}; wall time ${elapsed.toFixed(0)} s`,
    `- shared-machine guard: waited ${(settle.waitedMs / 1000).toFixed(0)} s in total for other processes to go quiet before runs, re-ran ${settle.reruns} disturbed run(s) (budget --settle ${SETTLE} s)`,
    `- load: \`wrk -t1 -cN -dDs --latency\` for small requests and 1 MiB bodies; bench/load-client.mjs (Node, its own process) for 64 MiB bodies, SSE and WebSocket echo; all on 127.0.0.1, sharing the machine's cores with the servers`,
    "",
    "## Targets (issue 7)",
    "",
    goals.table,
    "",
    ...(BEFORE
      ? [
          `## Before → after, in this run (--before: ${BEFORE.rev}, at ${BEFORE.dir})`,
          "",
          beforeAfterTable(pairs),
          "",
          "- Each portico target ran beside its twin from the --before checkout (that checkout's daemon, SDK and bench plugins) in every round, the twin second in odd rounds and first in even ones. after ÷ before above 1: the current code is faster.",
          "",
        ]
      : []),
    "## Throughput and latency",
    "",
    resultsTable(pairs),
    "",
    `- Targets: **direct** = the logic (bench/plugins/logic.mjs) on a plain node:http server (bench/direct-server.mjs), hit directly; **nginx** = nginx ${versions.nginx} (worker_processes auto, upstream keepalive, HTTP/1.1, request bodies streamed; config generated by bench/run.mjs) in front of a second such server; **portico v2** = the portico daemon in front of the same logic as a fetch handler on portico's SDK (bench/plugins/plugin.mjs), protocol v2; **portico v1** = the same plugin forced to protocol v1 (\`serve({ protocol: 1 })\`: JSON lines, base64, buffered), nexo's wire; **nexo's design** = bench/seed-model/gateway.mjs (a Node model of nexo's host: one JSON line per request, base64, buffered) serving that same v1 plugin. Each portico target has its own daemon, with its access log on (to a file), as nginx's is.`,
    "- throughput: median over the rounds. Small requests and WebSocket: req/s (messages/s: one message and its echo). Bulk: MB/s (10⁶ B/s) of body bytes in one direction (echo moves as much again the other way), with the req/s behind it. × direct, × nginx: ratios of that figure to the direct and nginx rows of the same workload in this run.",
    "- p50, p99: medians over the rounds of each run's percentiles, from `wrk --latency`, or from the load client (per transfer for 64 MiB bodies, per round trip for WebSocket).",
    "- server CPU per request: user+system CPU (from /proc) of the proxy (portico daemon; nginx master+workers) and of the app (the plugin process; the node:http server) during the run, divided by the requests (or messages) completed.",
    `- peak RSS: VmHWM of the proxy (portico daemon; nginx master+workers, summed) and of the app, ${hwmResettable ? "reset (/proc/PID/clear_refs) before each run, so it is the peak during this workload (from the RSS the process already had)" : "since each process started (this kernel refused to reset it)"}; max over the rounds.`,
    "- other load: median share of the machine's CPU used during the runs by processes outside this benchmark. Above ~10% the row is disturbed: re-run on a quieter machine.",
    "- errors: socket errors and non-2xx responses (wrk) or failed transfers (load client), summed over the rounds. A pair whose run moves nothing at all **fails** (the error is shown) and is not run again.",
    "",
    `## Server-sent events (${SSE_EVENTS} events, ${SSE_INTERVAL_MS} ms apart, the first at once)`,
    "",
    sseTable(pairs),
    "",
    "- first event, last event: time from sending the request to the arrival of the first and the last event (median over the rounds); ideal: about 0 and " +
      `${(SSE_EVENTS - 1) * SSE_INTERVAL_MS} ms. spread: (last − first) / ${(SSE_EVENTS - 1) * SSE_INTERVAL_MS} ms. most events in one read: the largest number of events that reached the client together (max over rounds). One by one: spread ≥ 0.9 and at most 3 events in one read.`,
    "",
    ...(gib
      ? [
          "## 1 GiB through portico v2 (fresh daemon)",
          "",
          gibTable(gib),
          "",
          `- Each portico v2 transfer goes through a daemon (and plugin) started just for it, so nothing earlier inflates its VmHWM (when ready: daemon ${gib.rows
            .filter((r) => r.startKb)
            .map((r) => fmtMiB(r.startKb.daemon))
            .join(" and ")}, plugin ${gib.rows
            .filter((r) => r.startKb)
            .map((r) => fmtMiB(r.startKb.plugin))
            .join(
              " and ",
            )}): one 1 GiB download (GET /bytes), one 1 GiB upload (POST /count: read and discarded). The direct rows are the same transfers against the direct server (VmHWM reset first), for the ratio.`,
          "",
        ]
      : []),
    restarts.length
      ? `**Warning:** plugins restarted or not ready during the run: ${escapeMd(JSON.stringify(restarts))}`
      : "No plugin restarted during the run.",
    "",
    nats,
  ].join("\n");

  if (BEFORE) process.stdout.write(`\n${beforeAfterTable(pairs)}\n`);
  process.stdout.write(`\n${goals.table}\n\n${resultsTable(pairs)}\n\n${sseTable(pairs)}\n\n${gibTable(gib)}\n\n`);
  if (restarts.length) process.stdout.write(`WARNING: plugin restarts or not-ready plugins: ${JSON.stringify(restarts)}\n`);
  if (OUT) {
    writeFileSync(OUT, md);
    process.stdout.write(`bench: wrote ${relative(process.cwd(), OUT) || OUT}\n`);
    // Issue 10's section: a FastAPI app through portico and under uvicorn behind nginx, added to the same file.
    if (PYTHON) {
      const py = ["--duration", String(DURATION), "--rounds", String(ROUNDS), "--out", OUT, "--no-build"];
      spawnSync(process.execPath, [join(BENCH_DIR, "python.mjs"), ...py], { stdio: "inherit" });
    }
  }
  if (opts.json) {
    writeFileSync(
      resolve(opts.json),
      `${JSON.stringify(
        {
          date: new Date().toISOString(),
          node: process.version,
          cores: cpus.length,
          rounds: ROUNDS,
          duration: DURATION,
          goals: goals.verdicts,
          results: pairs.map((p) => ({
            workload: p.workload.id,
            target: p.target.id,
            na: p.na,
            failed: p.failed,
            summary: p.summary,
            rounds: p.rounds,
          })),
          gib: gib?.rows,
        },
        null,
        2,
      )}\n`,
    );
  }

  const names = new Map();
  for (const t of targets) {
    const s = services[t.service];
    if (!s?.plugins) continue;
    names.set(s.proc.pid, `${t.id} daemon`);
    for (const [id, pid] of s.plugins) names.set(pid, `${t.id} plugin ${id}`);
  }
  for (const [pid, name] of gib?.names ?? []) names.set(pid, name);
  await cleanup();
  if (profileDir) {
    const { summarizeProfiles } = await import("./profile-summary.mjs");
    process.stdout.write(`\n${summarizeProfiles(profileDir, { names })}\n`);
    process.stdout.write(`bench: CPU profiles in ${profileDir} (open in Chrome DevTools → Performance, or speedscope)\n`);
  }
  process.stderr.write(`bench: done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

main().catch(async (err) => {
  // Interrupted: the signal handler is already stopping everything; the failure is its doing.
  if (cleaningUp) return;
  process.stderr.write(`bench: ${err?.stack ?? err}\n`);
  await cleanup();
  process.exit(1);
});
