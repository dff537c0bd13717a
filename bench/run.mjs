#!/usr/bin/env node
// `npm run bench`: portico against a direct baseline, in one run, with a real load generator (wrk).
//
//   node bench/run.mjs [--quick] [--rounds N] [--duration SEC] [--warmup SEC]
//                      [--workloads id,id] [--targets id,id] [--no-build]
//                      [--profile[=DIR]] [--out FILE] [--json FILE]
//
// What it does:
//   1. `npm run build`, then starts, as children, on 127.0.0.1 only:
//        - bench/direct-server.mjs: the hello-ts plugin's logic on plain node:http ("direct");
//        - portico serving examples/plugins (hello-ts on /hello, hello-python on /py), log level warn.
//      Waits for readiness (/health reports every plugin ready) and checks every URL it will load
//      answers what the plugin logic says it should.
//   2. Runs every (workload × target) with wrk, ROUNDS rounds interleaved (round 1 of everything,
//      then round 2, …) so drift hits all targets alike, after a short discarded warm-up.
//   3. Reports per workload and target the MEDIAN over rounds of req/s, p50 and p99 (from wrk's
//      --latency output), ratios to the baseline target of the same run, and the server-side CPU per
//      request (utime+stime from /proc of the daemon and of the plugin process). At the end it reads
//      peak RSS (VmHWM) of portico, its plugin children and the direct server.
//   4. Writes bench/RESULTS.md (unless --profile without --out) and prints the table.
// Everything it started is stopped on exit, error or Ctrl-C.
//
// Extending (protocol v2, nginx, large bodies, SSE, WebSocket): add a service (a process to start)
// to SERVICES, a target (a service + the paths it serves) to TARGETS, and a workload to WORKLOADS.
// A workload names the path key it loads (`path`) and a `run(ctx)` that returns a Measurement;
// targets that lack that path key are skipped for it. Non-wrk workloads (SSE timing, WebSocket
// echo, one big transfer) only need another `run`.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH_DIR, "..");
const HOST = "127.0.0.1";

// ───────────────────────────── services, targets, workloads ─────────────────────────────

/**
 * A service is a process the benchmark starts. start() resolves to { baseUrl, proc, processes() }
 * where processes() names the pids whose CPU and memory belong to it, by role.
 */
const SERVICES = {
  direct: {
    label: "direct server (bench/direct-server.mjs)",
    async start(ctx) {
      const proc = ctx.spawnChild("direct", process.execPath, [join(BENCH_DIR, "direct-server.mjs"), "--port", "0", "--host", HOST], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      const port = await waitForLine(proc, /^listening (\d+)$/m, 10_000, "direct server").then((m) => Number(m[1]));
      const baseUrl = `http://${HOST}:${port}`;
      return { baseUrl, proc, processes: () => ({ server: [proc.pid] }) };
    },
  },
  portico: {
    label: "portico serve --plugins examples/plugins --log-level warn",
    async start(ctx) {
      const port = await freePort();
      const env = { ...process.env };
      if (ctx.profileDir) {
        // NODE_OPTIONS reaches the Node plugins too (portico passes its environment on), but it
        // refuses --cpu-prof: a preload starts V8's profiler instead and writes on exit.
        env.NODE_OPTIONS = `${env.NODE_OPTIONS ?? ""} --require ${join(BENCH_DIR, "cpu-prof-preload.cjs")}`.trim();
        env.PORTICO_BENCH_PROFILE_DIR = ctx.profileDir;
      }
      const args = [
        join(ROOT, "bin", "portico.js"),
        "serve",
        "--plugins",
        join(ROOT, "examples", "plugins"),
        "--listen",
        `${HOST}:${port}`,
        "--log-level",
        "warn",
      ];
      const proc = ctx.spawnChild("portico", process.execPath, args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
      const baseUrl = `http://${HOST}:${port}`;
      const health = await waitForHealth(proc, `${baseUrl}/health`, 30_000);
      const plugins = new Map();
      const refresh = (h) => {
        for (const p of h?.plugins ?? []) if (p.pid) plugins.set(p.id, p.pid);
      };
      refresh(health);
      const protocols = new Map((health?.plugins ?? []).filter((p) => p.protocol).map((p) => [p.id, p.protocol]));
      // Fallback if /health stops reporting pids: portico's direct children, by their folder.
      if (plugins.size === 0) {
        for (const pid of childrenOf(proc.pid)) {
          const cwd = safe(() => readlinkSync(`/proc/${pid}/cwd`));
          if (cwd) plugins.set(cwd.split("/").pop().replace(/-/g, "_"), pid);
        }
      }
      for (const pid of plugins.values()) ctx.adopt(pid);
      return {
        baseUrl,
        proc,
        health: () => getJson(`${baseUrl}/health`).catch(() => undefined),
        plugins,
        protocols,
        processes: (pluginId) => ({
          daemon: [proc.pid],
          ...(pluginId ? { plugin: treeOf(plugins.get(pluginId)) } : {}),
        }),
      };
    },
  },
};

/** What is loaded: a service, and the paths it serves the plugin logic under. */
const TARGETS = [
  {
    id: "direct",
    label: "direct (node:http)",
    service: "direct",
    baseline: true,
    paths: { small: "/hello/", echo: "/hello/echo" },
    expect: { small: "hello from TypeScript\n" },
  },
  {
    id: "portico-ts",
    label: "portico → hello-ts (SDK)",
    service: "portico",
    plugin: "hello_ts",
    paths: { small: "/hello/", echo: "/hello/echo" },
    expect: { small: "hello from TypeScript\n" },
  },
  {
    id: "portico-py",
    label: "portico → hello-python (raw v1)",
    service: "portico",
    plugin: "hello_python",
    paths: { small: "/py/", echo: "/py/echo" },
    expect: { small: "hello from Python\n" },
  },
];

const KIB_BODY = "x".repeat(1024);

const WORKLOADS = [
  {
    id: "get-small-c64",
    label: "GET small text, 64 conn",
    path: "small",
    run: (ctx) => runWrk(ctx, { connections: 64 }),
  },
  {
    id: "get-small-c1",
    label: "GET small text, 1 conn",
    path: "small",
    run: (ctx) => runWrk(ctx, { connections: 1 }),
  },
  {
    id: "post-1k-echo-c64",
    label: "POST 1 KiB echo, 64 conn",
    path: "echo",
    check: { method: "POST", body: KIB_BODY, expectBody: KIB_BODY },
    run: (ctx) =>
      runWrk(ctx, {
        connections: 64,
        lua: [
          'wrk.method = "POST"',
          `wrk.body = string.rep("x", 1024)`,
          'wrk.headers["Content-Type"] = "application/octet-stream"',
        ].join("\n"),
      }),
  },
];

// ───────────────────────────── options ─────────────────────────────

const USAGE = `usage: npm run bench -- [options]
  --quick              about one minute: 3 rounds of 2 s, short warm-up
  --rounds N           rounds per (workload, target); the median is reported (default 3)
  --duration SEC       seconds per wrk run (default 5; 2 with --quick)
  --warmup SEC         discarded warm-up per (workload, target) before round 1 (default 2; 1 with --quick)
  --workloads IDS      comma-separated subset of: ${"%WORKLOADS%"}
  --targets IDS        comma-separated subset of: ${"%TARGETS%"}
  --settle SEC         on a shared machine, time it may spend (in total) waiting for other processes'
                       CPU load to drop before a run, and re-running a run they disturbed (default
                       60; 10 with --quick; 0 = never wait)
  --no-build           skip \`npm run build\`
  --profile[=DIR]      profile portico and its Node plugins (V8 CPU profiler), print the hot spots;
                       profiles go to DIR (default: a temp directory). RESULTS.md is left alone
                       unless --out is given, since profiling skews the numbers.
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
      settle: { type: "string" },
      profile: { type: "string" },
      out: { type: "string" },
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
const DURATION = positiveInt(opts.duration ?? (QUICK ? "2" : "5"), "--duration");
const WARMUP = nonNegativeInt(opts.warmup ?? (QUICK ? "1" : "2"), "--warmup");
const PROFILE = opts.profile !== undefined;
const SETTLE = nonNegativeInt(opts.settle ?? (QUICK ? "10" : "60"), "--settle");
/** A run during which other processes used more than this share of the machine is "disturbed". */
const DISTURBED = 0.15;
const OUT = opts.out ? resolve(opts.out) : PROFILE ? undefined : join(BENCH_DIR, "RESULTS.md");

// ───────────────────────────── process bookkeeping ─────────────────────────────

/** Everything we started (or adopted: plugin processes portico spawned for us), by pid. */
const owned = new Map(); // pid → { name, proc? }
let tmpDir;
let cleaningUp;

function spawnChild(name, cmd, args, options) {
  const proc = spawn(cmd, args, options);
  if (proc.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  owned.set(proc.pid, { name, proc });
  proc.on("exit", () => owned.delete(proc.pid));
  proc.stderrTail = [];
  proc.stderr?.setEncoding("utf8");
  proc.stderr?.on("data", (d) => {
    proc.stderrTail.push(...d.split("\n").filter(Boolean));
    if (proc.stderrTail.length > 40) proc.stderrTail.splice(0, proc.stderrTail.length - 40);
  });
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

/** Stops everything: SIGTERM to the services (portico shuts its plugins down), then SIGKILL. */
async function cleanup() {
  cleaningUp ??= (async () => {
    const services = [...owned.entries()].filter(([, o]) => o.proc);
    for (const [pid] of services) safe(() => process.kill(pid, "SIGTERM"));
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline && [...owned.keys()].some(alive)) await sleep(50);
    killAllNow();
    if (tmpDir) safe(() => rmSync(tmpDir, { recursive: true, force: true }));
  })();
  return cleaningUp;
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
  if (tmpDir) safe(() => rmSync(tmpDir, { recursive: true, force: true }));
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
    const timer = setTimeout(() => rej(new Error(`${name} did not start within ${timeoutMs} ms\n${proc.stderrTail.join("\n")}`)), timeoutMs);
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
  proc.stdout.setEncoding("utf8");
  proc.stdout.on("data", (d) => proc.stderrTail.push(...d.split("\n").filter(Boolean)));
  let last;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`portico exited (${exited}) before it was ready\n${proc.stderrTail.join("\n")}`);
    try {
      const h = await getJson(url);
      last = h;
      if (h.status === "ok" && Array.isArray(h.plugins) && h.plugins.every((p) => p.state === "ready")) return h;
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
  return { hwmKb: kb("VmHWM"), rssKb: kb("VmRSS"), cmd: safe(() => readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ")) };
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

// ───────────────────────────── wrk ─────────────────────────────

function checkWrk() {
  const r = spawnSync("wrk", ["-v"], { encoding: "utf8" });
  if (r.error?.code === "ENOENT") {
    fail("wrk is not installed: it is the load generator this benchmark uses.\n" + "     Install the Debian package `wrk`:  sudo apt-get install -y wrk");
  }
  return (`${r.stdout}${r.stderr}`.match(/^wrk\s+(\S+)/m)?.[1]) ?? "unknown";
}

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
  const proc = spawnChild("wrk", "sh", ["-c", script, "sh", ...args], { stdio: ["ignore", "pipe", "pipe"] });
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
  m.command = `wrk ${args.map((a) => (a.startsWith(tmpDir) ? relative(tmpDir, a) : a)).join(" ")}`;
  return m;
}

// ───────────────────────────── one measurement ─────────────────────────────

async function measure(workload, target, svc, duration) {
  const url = `${svc.baseUrl}${target.paths[workload.path]}`;
  const pidsByRole = svc.processes(target.plugin);
  const before = Object.fromEntries(Object.entries(pidsByRole).map(([role, pids]) => [role, cpuMsOf(pids)]));
  const ours = () => cpuMsOf([...owned.entries()].filter(([, o]) => o.name !== "wrk").flatMap(([pid]) => treeOf(pid)));
  const ours0 = ours();
  const t0 = machineTicks();
  const m = await workload.run({ url, duration, workload, target });
  const t1 = machineTicks();
  const oursMs = ours() - ours0;
  m.cpuUsPerReq = {};
  for (const [role, pids] of Object.entries(pidsByRole)) {
    const ms = cpuMsOf(pids) - before[role];
    m.cpuUsPerReq[role] = m.requests > 0 ? (ms * 1000) / m.requests : NaN;
  }
  const totalTicks = Math.max(1, t1.total - t0.total);
  m.machineBusy = 1 - (t1.idle - t0.idle) / totalTicks;
  // Share of the machine used by processes that are not part of this benchmark (other sessions'
  // builds and tests on a shared box): process CPU time minus our servers' and wrk's.
  const procsMs = ((t1.procs - t0.procs) * 1000) / CLK_TCK;
  m.otherLoad = Number.isFinite(m.clientCpuMs) ? Math.max(0, (procsMs - oursMs - m.clientCpuMs) / ((totalTicks * 1000) / CLK_TCK)) : NaN;
  const dead = [svc.proc.pid, ...Object.values(pidsByRole).flat()].filter((p) => !alive(p));
  if (dead.length) throw new Error(`${target.label}: process ${dead.join(", ")} died during ${workload.label}\n${svc.proc.stderrTail.join("\n")}`);
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

/**
 * Spends at most the remaining --settle budget waiting until other processes leave the machine
 * (mostly) idle. Returns the time spent.
 */
const settle = { leftMs: SETTLE * 1000, waitedMs: 0, reruns: 0 };
async function waitQuiet() {
  const start = Date.now();
  let announced = false;
  while (settle.leftMs > 0) {
    const busy = await otherBusy(200);
    if (busy < DISTURBED / 2) break;
    settle.leftMs -= 200;
    if (!announced) process.stderr.write(`bench: waiting for a quieter machine (other processes use ${fmtPct(busy)})\n`);
    announced = true;
  }
  settle.waitedMs += Date.now() - start;
}

/** measure(), after waiting for a quiet machine; re-run once if other processes disturbed it. */
async function measureSettled(workload, target, svc, duration) {
  await waitQuiet();
  let m = await measure(workload, target, svc, duration);
  if (m.otherLoad > DISTURBED && settle.leftMs >= duration * 1000) {
    process.stderr.write(`bench: ${workload.id} → ${target.id} disturbed (other load ${fmtPct(m.otherLoad)}): re-running\n`);
    settle.leftMs -= duration * 1000;
    settle.reruns++;
    await waitQuiet();
    const again = await measure(workload, target, svc, duration);
    if (!(again.otherLoad > m.otherLoad)) m = again;
  }
  return m;
}

/** Before loading a URL, make sure it answers what the plugin logic says (and that nothing is 404). */
async function sanityCheck(workload, target, svc) {
  const url = `${svc.baseUrl}${target.paths[workload.path]}`;
  const c = workload.check ?? { method: "GET", expectBody: target.expect?.[workload.path] };
  const r = await fetch(url, {
    method: c.method,
    body: c.body,
    headers: c.body ? { "content-type": "application/octet-stream" } : {},
    signal: AbortSignal.timeout(5000),
  });
  const body = await r.text();
  if (r.status !== 200 || (c.expectBody !== undefined && body !== c.expectBody)) {
    throw new Error(`${target.label} ${c.method} ${url}: expected 200 ${JSON.stringify(c.expectBody?.slice(0, 40))}, got ${r.status} ${JSON.stringify(body.slice(0, 200))}`);
  }
}

// ───────────────────────────── formatting ─────────────────────────────

function fmtMs(ms) {
  if (!Number.isFinite(ms)) return "—";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${ms.toFixed(0)} ms`;
}
const fmtInt = (n) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "—");
const fmtRatio = (r) => (Number.isFinite(r) ? `${r.toFixed(2)}×` : "—");
const fmtUs = (n) => (Number.isFinite(n) ? `${n.toFixed(0)}` : "—");
const fmtPct = (f) => (Number.isFinite(f) ? `${(f * 100).toFixed(0)}%` : "—");
const fmtMiB = (kb) => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MiB` : "—");

function summarize(rows) {
  // rows: { workload, target, rounds: Measurement[] }
  const byWorkload = new Map();
  for (const r of rows) {
    const rs = r.rounds;
    const roles = [...new Set(rs.flatMap((m) => Object.keys(m.cpuUsPerReq)))];
    r.summary = {
      rps: median(rs.map((m) => m.rps)),
      rpsAll: rs.map((m) => m.rps),
      p50: median(rs.map((m) => m.latency.p50)),
      p99: median(rs.map((m) => m.latency.p99)),
      mbps: median(rs.map((m) => m.bytesPerSec / 1024 ** 2)),
      cpu: Object.fromEntries(roles.map((role) => [role, median(rs.map((m) => m.cpuUsPerReq[role]))])),
      errors: rs.reduce((a, m) => a + m.errorCount, 0),
      requests: rs.reduce((a, m) => a + m.requests, 0),
      busy: median(rs.map((m) => m.machineBusy)),
      otherLoad: median(rs.map((m) => m.otherLoad)),
    };
    if (!byWorkload.has(r.workload.id)) byWorkload.set(r.workload.id, []);
    byWorkload.get(r.workload.id).push(r);
  }
  for (const group of byWorkload.values()) {
    const base = group.find((r) => r.target.baseline)?.summary;
    for (const r of group) {
      r.summary.rpsRatio = base ? r.summary.rps / base.rps : NaN;
      r.summary.p50Ratio = base ? r.summary.p50 / base.p50 : NaN;
      r.summary.p99Ratio = base ? r.summary.p99 / base.p99 : NaN;
    }
  }
  return rows;
}

function resultsTable(rows) {
  const head = [
    "| workload | target | req/s (median) | × direct | p50 | p99 | p99 × direct | server CPU µs/req (daemon + plugin) | req/s per round | other load | errors |",
    "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
  ];
  const lines = rows.map((r) => {
    const s = r.summary;
    const cpu =
      s.cpu.server !== undefined
        ? `${fmtUs(s.cpu.server)}`
        : `${fmtUs((s.cpu.daemon ?? 0) + (s.cpu.plugin ?? 0))} (${fmtUs(s.cpu.daemon)} + ${fmtUs(s.cpu.plugin)})`;
    return `| ${r.workload.label} | ${r.target.label} | ${fmtInt(s.rps)} | ${r.target.baseline ? "1.00×" : fmtRatio(s.rpsRatio)} | ${fmtMs(s.p50)} | ${fmtMs(s.p99)} | ${r.target.baseline ? "1.00×" : fmtRatio(s.p99Ratio)} | ${cpu} | ${s.rpsAll.map(fmtInt).join(" / ")} | ${fmtPct(s.otherLoad)} | ${s.errors} |`;
  });
  return [...head, ...lines].join("\n");
}

function memoryTable(mem) {
  const head = ["| process | pid | peak RSS (VmHWM) | RSS at end |", "|---|---:|---:|---:|"];
  return [...head, ...mem.map((m) => `| ${m.name} | ${m.pid} | ${fmtMiB(m.hwmKb)} | ${fmtMiB(m.rssKb)} |`)].join("\n");
}

function gitRevision() {
  // For a run from a snapshot (e.g. `git archive` of a commit) that has no .git of its own.
  if (process.env.PORTICO_BENCH_REVISION) return process.env.PORTICO_BENCH_REVISION;
  const rev = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout?.trim();
  if (!rev) return "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--", "src", "examples", "bin"], { cwd: ROOT, encoding: "utf8" }).stdout?.trim();
  return dirty ? `${rev} (with uncommitted changes in src/examples/bin)` : rev;
}

// ───────────────────────────── main ─────────────────────────────

async function main() {
  const started = Date.now();
  const wrkVersion = checkWrk();
  const pick = (all, list, kind) => {
    if (!list) return all;
    const ids = list.split(",").map((s) => s.trim()).filter(Boolean);
    for (const id of ids) if (!all.some((x) => x.id === id)) fail(`unknown ${kind} "${id}"\n\n${usage()}`);
    return all.filter((x) => ids.includes(x.id));
  };
  const workloads = pick(WORKLOADS, opts.workloads, "workload");
  let targets = pick(TARGETS, opts.targets, "target");
  // Ratios need the baseline in the same run.
  if (!targets.some((t) => t.baseline)) targets = [TARGETS.find((t) => t.baseline), ...targets];

  if (!opts["no-build"]) {
    process.stderr.write("bench: npm run build\n");
    const b = spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" });
    if (b.status !== 0) fail(`npm run build failed (exit ${b.status ?? b.signal}); fix the build or pass --no-build`);
  }

  tmpDir = mkdtempSync(join(os.tmpdir(), "portico-bench-"));
  const profileDir = PROFILE ? resolve(opts.profile || join(tmpDir, "profiles")) : undefined;
  if (profileDir) {
    spawnSync("mkdir", ["-p", profileDir]);
    // Keep the profiles when they live in the temp directory we remove at the end.
    if (profileDir.startsWith(tmpDir)) tmpDir = undefined;
  }

  const ctx = { spawnChild, adopt: (pid) => owned.set(pid, { name: "plugin" }), profileDir };
  const services = {};
  for (const name of [...new Set(targets.map((t) => t.service))]) {
    process.stderr.write(`bench: starting ${SERVICES[name].label}\n`);
    services[name] = await SERVICES[name].start(ctx);
    services[name].proc.on("exit", (code, signal) => {
      if (!cleaningUp) process.stderr.write(`bench: ${name} exited unexpectedly (${signal ?? code})\n${services[name].proc.stderrTail.join("\n")}\n`);
    });
  }

  // When /health says which protocol each plugin speaks, the labels say it too.
  for (const t of targets) {
    const proto = t.plugin && services[t.service]?.protocols?.get(t.plugin);
    if (proto) t.label = `${t.label} [v${String(proto).replace(/^v/, "")}]`;
  }
  const pairs = [];
  for (const w of workloads) for (const t of targets) if (t.paths[w.path]) pairs.push({ workload: w, target: t, rounds: [] });
  for (const p of pairs) await sanityCheck(p.workload, p.target, services[p.target.service]);

  const runs = pairs.length * ROUNDS;
  const est = pairs.length * (WARMUP + ROUNDS * DURATION) + SETTLE;
  process.stderr.write(
    `bench: ${workloads.length} workloads × ${targets.length} targets, ${ROUNDS} rounds of ${DURATION} s (+${WARMUP} s warm-up each): ${runs} runs, about ${Math.ceil(est / 60)} min\n`,
  );
  if (WARMUP > 0) {
    for (const p of pairs) {
      process.stderr.write(`bench: warm-up ${p.workload.id} → ${p.target.id}\n`);
      await measure(p.workload, p.target, services[p.target.service], WARMUP);
    }
  }
  for (let round = 1; round <= ROUNDS; round++) {
    for (const p of pairs) {
      const m = await measureSettled(p.workload, p.target, services[p.target.service], DURATION);
      p.rounds.push(m);
      const cpu = Object.entries(m.cpuUsPerReq)
        .map(([k, v]) => `${k} ${fmtUs(v)} µs/req`)
        .join(", ");
      process.stderr.write(
        `bench: round ${round}/${ROUNDS} ${p.workload.id.padEnd(18)} ${p.target.id.padEnd(11)} ${fmtInt(m.rps).padStart(7)} req/s  p50 ${fmtMs(m.latency.p50).padStart(8)}  p99 ${fmtMs(m.latency.p99).padStart(8)}  ${cpu}  machine ${(m.machineBusy * 100).toFixed(0)}% busy, other load ${fmtPct(m.otherLoad)}${m.errorCount ? `  ERRORS ${JSON.stringify(m.errors)}` : ""}\n`,
      );
    }
  }

  // Peak memory, read while everything is still alive.
  const mem = [];
  const health = services.portico ? await services.portico.health() : undefined;
  if (services.direct) mem.push({ name: "direct server", pid: services.direct.proc.pid, ...memOf(services.direct.proc.pid) });
  if (services.portico) {
    mem.push({ name: "portico daemon", pid: services.portico.proc.pid, ...memOf(services.portico.proc.pid) });
    for (const [id, pid] of services.portico.plugins) {
      for (const p of treeOf(pid)) mem.push({ name: `plugin ${id}${p === pid ? "" : " (child)"}`, pid: p, ...memOf(p) });
    }
  }
  const restarts = (health?.plugins ?? []).filter((p) => p.restarts > 0 || p.state !== "ready");

  summarize(pairs);
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
    `- node ${process.version}, wrk ${wrkVersion}, portico ${gitRevision()}`,
    `- command: \`${command}\`; ${ROUNDS} rounds of ${DURATION} s per row, interleaved, after a ${WARMUP} s warm-up; wall time ${elapsed.toFixed(0)} s`,
    `- shared-machine guard: waited ${(settle.waitedMs / 1000).toFixed(0)} s in total for other processes to go quiet before runs, re-ran ${settle.reruns} disturbed run(s) (budget --settle ${SETTLE} s)`,
    "- load: `wrk -t1 -cN -dDs --latency` on 127.0.0.1; client, daemon and plugins share the machine's cores",
    "",
    "## Throughput and latency",
    "",
    resultsTable(pairs),
    "",
    "- req/s, p50, p99: median over the rounds (p50/p99 as reported by `wrk --latency`); × direct: ratio to the direct row of the same workload in this run.",
    "- direct: the hello-ts plugin's logic on a plain node:http server (bench/direct-server.mjs), no proxy. portico rows go through the daemon to the example plugins: hello-ts is served by portico's TypeScript SDK (which speaks whatever protocol it negotiates with portico: v2 when offered), hello-python speaks the raw nexo v1 contract (JSON lines, base64 bodies).",
    "- server CPU µs/req: user+system CPU of the daemon and of the plugin process (from /proc) during the run, divided by the requests completed. The direct row shows the direct server alone.",
    "- the hello-python target answers `hello from Python\\n` (18 B) instead of `hello from TypeScript\\n` (22 B); its ratios are to the same direct (TypeScript-logic) baseline.",
    "- other load: median share of the machine's CPU used during the runs by processes outside this benchmark (user+system time of all processes minus the servers' and wrk's). Above ~10% the row is disturbed: re-run on a quiet machine.",
    "- errors: socket errors (connect/read/write/timeout) plus non-2xx responses, summed over the rounds.",
    "",
    "## Peak memory (end of run)",
    "",
    memoryTable(mem),
    "",
    restarts.length ? `**Warning:** plugins restarted or not ready during the run: ${JSON.stringify(restarts)}` : "No plugin restarted during the run.",
    "",
  ].join("\n");

  process.stdout.write(`\n${resultsTable(pairs)}\n\n${memoryTable(mem)}\n\n`);
  if (restarts.length) process.stdout.write(`WARNING: plugin restarts or not-ready plugins: ${JSON.stringify(restarts)}\n`);
  const totalErrors = pairs.reduce((a, p) => a + p.summary.errors, 0);
  if (totalErrors) process.stdout.write(`WARNING: ${totalErrors} errors during the run (see the errors column)\n`);
  if (OUT) {
    writeFileSync(OUT, md);
    process.stdout.write(`bench: wrote ${relative(process.cwd(), OUT) || OUT}\n`);
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
          results: pairs.map((p) => ({ workload: p.workload.id, target: p.target.id, summary: p.summary, rounds: p.rounds })),
          memory: mem,
        },
        null,
        2,
      )}\n`,
    );
  }

  await cleanup();
  if (profileDir) {
    const { summarizeProfiles } = await import("./profile-summary.mjs");
    process.stdout.write(`\n${summarizeProfiles(profileDir, { portico: services.portico?.proc.pid, plugins: services.portico?.plugins })}\n`);
    process.stdout.write(`bench: CPU profiles in ${profileDir} (open in Chrome DevTools → Performance, or speedscope)\n`);
  }
  process.stderr.write(`bench: done in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

// Hard ceiling, whatever happens: the run is bounded in time.
const budgetMs = (60 + 2 * SETTLE + 2 * WORKLOADS.length * TARGETS.length * (WARMUP + ROUNDS * (DURATION + 1))) * 1000;
setTimeout(() => {
  process.stderr.write(`bench: gave up after ${Math.round(budgetMs / 1000)} s\n`);
  cleanup().finally(() => process.exit(1));
}, budgetMs).unref();

main().catch(async (err) => {
  // Interrupted: the signal handler is already stopping everything; the failure is its doing.
  if (cleaningUp) return;
  process.stderr.write(`bench: ${err?.stack ?? err}\n`);
  await cleanup();
  process.exit(1);
});
