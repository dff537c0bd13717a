#!/usr/bin/env node
// The Python SDK's benchmark: one FastAPI app (bench/python/app.py) served two ways in the same run,
//   portico   node bin/portico.js serve → the app as a plugin (bench/python/plugin.py: serve_asgi)
//   uvicorn   nginx (reverse proxy, as bench/run.mjs configures it) → uvicorn → the same app
// on small GETs (wrk), 1 MiB both ways (wrk), and the time to an SSE stream's first event (bench's
// load client). Rounds alternate the order of the two; the figures are medians over rounds, and
// the ratio is portico's over uvicorn's (above 1: portico does more per second, or waits longer).
//
//   node bench/python.mjs [--duration SEC] [--rounds N] [--out FILE] [--no-write] [--no-build]
//
// It writes its section of bench/RESULTS.md (or FILE), between the markers below, and leaves the
// rest of the file alone (a file without the markers gets the section appended). It needs /usr/bin/python3 with Debian's python3-fastapi and python3-uvicorn, nginx
// and wrk (sh scripts/install-system-deps.sh). Everything it starts is stopped when it ends.
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { nginxConfig } from "./nginx-config.mjs";

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(BENCH, "..");
const HOST = "127.0.0.1";
const PYTHON = process.env.PORTICO_BENCH_PYTHON ?? "/usr/bin/python3";
const MiB = 1024 * 1024;
const START = "<!-- bench/python.mjs: start -->";
const END = "<!-- bench/python.mjs: end -->";

const { values: opts } = parseArgs({
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    out: { type: "string" },
    "no-write": { type: "boolean" },
    "no-build": { type: "boolean" },
  },
});
const DURATION = Math.max(1, Number(opts.duration));
const ROUNDS = Math.max(1, Number(opts.rounds));

const children = new Set();
const tmp = mkdtempSync(join(os.tmpdir(), "portico-pybench-"));
function cleanup() {
  for (const c of children) if (c.exitCode === null) safeKill(c.pid);
  rmSync(tmp, { recursive: true, force: true });
}
function safeKill(pid) {
  try {
    process.kill(-pid, "SIGTERM"); // its own process group: portico's plugins and nginx's workers too
  } catch {
    try {
      process.kill(pid, "SIGTERM");
    } catch {
      // gone
    }
  }
}
process.on("exit", cleanup);
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => process.exit(130));

function fail(message) {
  process.stderr.write(`bench/python: ${message}\n`);
  process.exit(1);
}

function start(name, cmd, args, options = {}) {
  const log = join(tmp, `${name}.log`);
  const out = spawnSync("sh", ["-c", `: > "${log}"`]);
  if (out.status !== 0) fail(`cannot write ${log}`);
  const child = spawn("sh", ["-c", 'exec "$@" >> "$LOGFILE" 2>&1', "sh", cmd, ...args], {
    detached: true,
    stdio: "ignore",
    ...options,
    env: { ...process.env, ...options.env, LOGFILE: log },
  });
  children.add(child);
  child.logTail = () => readFileSync(log, "utf8").split("\n").slice(-30).join("\n");
  child.logFile = log;
  return child;
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

async function waitFor(url, child, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) fail(`${what} exited (${child.exitCode}):\n${child.logTail()}`);
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await r.arrayBuffer();
      if (r.status === 200) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  fail(`${what} did not answer ${url} within ${ms} ms:\n${child.logTail()}`);
}

function checkTools() {
  const py = spawnSync(PYTHON, ["-c", "import fastapi, uvicorn; print(fastapi.__version__, uvicorn.__version__)"], { encoding: "utf8" });
  if (py.status !== 0) fail(`${PYTHON} cannot import fastapi and uvicorn: install python3-fastapi python3-uvicorn (${py.stderr.trim()})`);
  const [fastapi, uvicorn] = py.stdout.trim().split(" ");
  const nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].find((p) => existsSync(p)) ?? "nginx";
  if (spawnSync(nginx, ["-v"]).status !== 0) fail("nginx not found: install nginx-light");
  if (spawnSync("wrk", ["-v"]).error) fail("wrk not found: install wrk");
  const extras = spawnSync(
    PYTHON,
    ["-c", "import importlib.util as u; print(' '.join(m for m in ('uvloop','httptools') if u.find_spec(m)))"],
    {
      encoding: "utf8",
    },
  ).stdout.trim();
  return {
    fastapi,
    uvicorn,
    nginx,
    uvicornExtras: extras || "none",
    python: spawnSync(PYTHON, ["-V"], { encoding: "utf8" }).stdout.trim(),
  };
}

async function startPortico() {
  const plugins = join(tmp, "plugins", "fastapi_bench");
  mkdirSync(plugins, { recursive: true });
  writeFileSync(
    join(plugins, "nexo-plugin.toml"),
    `[plugin]
id = "fastapi_bench"
version = "0.1.0"
name = "FastAPI bench"
description = "bench/python/app.py on the Python SDK"

[plugin.entrypoint]
command = ${JSON.stringify(PYTHON)}
args = [${JSON.stringify(join(BENCH, "python", "plugin.py"))}]
env = { PYTHONPATH = ${JSON.stringify(`${join(ROOT, "python")}:${join(BENCH, "python")}`)} }

[plugin.http]
mount_prefix = "/app"
`,
  );
  const port = await freePort();
  const child = start(
    "portico",
    process.execPath,
    [join(ROOT, "bin", "portico.js"), "serve", "--plugins", join(tmp, "plugins"), "--listen", `${HOST}:${port}`],
    {
      cwd: tmp,
    },
  );
  const base = `http://${HOST}:${port}`;
  await waitFor(`${base}/app/small`, child, "portico");
  const health = await (await fetch(`${base}/health`)).json();
  const plugin = health.plugins.find((p) => p.id === "fastapi_bench");
  if (plugin?.protocol !== 2) fail(`the plugin speaks protocol ${plugin?.protocol}, not 2`);
  return { base, proxyPid: child.pid, appPid: () => plugin.pid, child };
}

async function startUvicornBehindNginx(nginxBin) {
  const upstream = await freePort();
  const uv = start("uvicorn", PYTHON, ["-m", "uvicorn", "app:app", "--host", HOST, "--port", String(upstream), "--root-path", "/app"], {
    cwd: join(BENCH, "python"),
  });
  await waitFor(`http://${HOST}:${upstream}/small`, uv, "uvicorn");
  const dir = join(tmp, "nginx");
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  // nginx as bench/run.mjs configures it, with the mount prefix stripped as uvicorn --root-path expects.
  writeFileSync(
    join(dir, "nginx.conf"),
    nginxConfig({ dir, host: HOST, port, upstreamPort: upstream, stripPrefix: true, websocket: false }),
  );
  const ng = start("nginx", nginxBin, ["-p", `${dir}/`, "-c", join(dir, "nginx.conf"), "-e", join(dir, "error.log")]);
  const base = `http://${HOST}:${port}`;
  await waitFor(`${base}/app/small`, ng, "nginx");
  return { base, proxyPid: ng.pid, appPid: () => uv.pid, child: ng };
}

function peakRssMiB(pid) {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const TIME = { us: 0.001, ms: 1, s: 1000 };
function wrk(url, connections, lua) {
  const args = ["-t1", `-c${connections}`, `-d${DURATION}s`, "--latency", "--timeout", "10s"];
  if (lua) {
    const file = join(tmp, "post.lua");
    writeFileSync(file, lua);
    args.push("-s", file);
  }
  const r = spawnSync("wrk", [...args, url], { encoding: "utf8", timeout: (DURATION + 30) * 1000 });
  const text = r.stdout ?? "";
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1]);
  const p99 = /^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m.exec(text);
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(text);
  if (!Number.isFinite(rps)) fail(`wrk ${args.join(" ")} ${url} failed:\n${text}${r.stderr}`);
  return { rps, p99: p99 ? Number(p99[1]) * TIME[p99[2]] : NaN, errors: errors ? errors[0] : "" };
}

function sseFirst(url) {
  const r = spawnSync(
    process.execPath,
    [join(BENCH, "load-client.mjs"), "sse", "--url", url, "--events", "20", "--interval", "10", "--timeout", "15"],
    {
      encoding: "utf8",
      timeout: 30_000,
    },
  );
  const m = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}");
  if (m.fatal || m.errors?.length || m.arrivals?.length !== 20) fail(`SSE ${url}: ${r.stdout} ${r.stderr}`);
  return { first: m.arrivals[0], head: m.headMs };
}

const WORKLOADS = [
  { id: "small", label: "GET small (20 B), 64 conn", unit: "req/s", run: (b) => wrk(`${b}/app/small`, 64) },
  { id: "small1", label: "GET small (20 B), 1 conn", unit: "req/s", run: (b) => wrk(`${b}/app/small`, 1) },
  { id: "get1m", label: "GET 1 MiB, 4 conn", unit: "MiB/s", run: (b) => wrk(`${b}/app/bytes?n=${MiB}`, 4) },
  {
    id: "post1m",
    label: "POST 1 MiB (/count), 4 conn",
    unit: "MiB/s",
    run: (b) =>
      wrk(
        `${b}/app/count`,
        4,
        `wrk.method = "POST"\nwrk.body = string.rep("x", ${MiB})\nwrk.headers["Content-Type"] = "application/octet-stream"\n`,
      ),
  },
  {
    id: "sse",
    label: "SSE: time to the first event (ms, lower is better)",
    unit: "ms",
    run: (b) => {
      const runs = Array.from({ length: 5 }, () => sseFirst(`${b}/app/events?n=20&interval=10`).first);
      return { rps: median(runs), p99: Math.max(...runs), errors: "" };
    },
  },
];

function median(xs) {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function sanity(base, what) {
  const small = await (await fetch(`${base}/app/small`)).text();
  const big = (await (await fetch(`${base}/app/bytes?n=${MiB}`)).arrayBuffer()).byteLength;
  const count = await (await fetch(`${base}/app/count`, { method: "POST", body: Buffer.alloc(4096) })).text();
  const sse = await (await fetch(`${base}/app/events?n=3&interval=1`)).text();
  if (small !== "hello from fastapi!\n" || big !== MiB || count !== "4096" || sse !== "data: 0\n\ndata: 1\n\ndata: 2\n\n")
    fail(`${what} answers wrong: ${JSON.stringify({ small, big, count, sse })}`);
}

function fmt(x, unit) {
  if (!Number.isFinite(x)) return "—";
  if (unit === "MiB/s") return x.toFixed(0);
  if (unit === "ms") return x.toFixed(1);
  return x >= 1000 ? Math.round(x).toLocaleString("en-US") : x.toFixed(0);
}

async function main() {
  const tools = checkTools();
  if (!opts["no-build"] && spawnSync("npm", ["run", "build", "--silent"], { cwd: ROOT, stdio: "inherit" }).status !== 0)
    fail("npm run build failed");
  const targets = { portico: await startPortico(), uvicorn: await startUvicornBehindNginx(tools.nginx) };
  await sanity(targets.portico.base, "portico");
  await sanity(targets.uvicorn.base, "nginx → uvicorn");
  const load0 = os.loadavg()[0];
  const rev = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).stdout?.trim() || "unknown";
  const results = {};
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 ? ["uvicorn", "portico"] : ["portico", "uvicorn"];
    for (const w of WORKLOADS) {
      for (const t of order) {
        const m = w.run(targets[t].base);
        const value = m.rps; // 1 MiB per request: req/s is MiB/s
        results[w.id] ??= {};
        results[w.id][t] ??= [];
        results[w.id][t].push({ value, p99: m.p99, errors: m.errors });
        process.stderr.write(`round ${round + 1} ${w.id} ${t}: ${fmt(value, w.unit)} ${w.unit}${m.errors ? ` (${m.errors})` : ""}\n`);
      }
    }
  }
  const rss = {
    portico: { proxy: peakRssMiB(targets.portico.proxyPid), app: peakRssMiB(targets.portico.appPid()) },
    uvicorn: { app: peakRssMiB(targets.uvicorn.appPid()) },
  };
  const rows = WORKLOADS.map((w) => {
    const p = median(results[w.id].portico.map((r) => r.value));
    const u = median(results[w.id].uvicorn.map((r) => r.value));
    const pp = median(results[w.id].portico.map((r) => r.p99));
    const up = median(results[w.id].uvicorn.map((r) => r.p99));
    const errs = [...results[w.id].portico, ...results[w.id].uvicorn].filter((r) => r.errors).length;
    const ratio = w.unit === "ms" ? u / p : p / u;
    const tail = w.unit === "ms" ? "worst of 5" : "p99 latency (ms)";
    return `| ${w.label} | ${fmt(p, w.unit)} | ${fmt(u, w.unit)} | ${Number.isFinite(ratio) ? ratio.toFixed(2) : "—"} | ${tail}: ${fmt(pp, "ms")} vs ${fmt(up, "ms")} |${errs ? ` errors in ${errs} runs` : ""}`;
  });
  const section = [
    START,
    "## Python: FastAPI through portico vs uvicorn behind nginx",
    "",
    `Generated by \`node bench/python.mjs --duration ${DURATION} --rounds ${ROUNDS}\` on ${new Date().toISOString().slice(0, 10)} (portico ${rev}): the same FastAPI app`,
    "([bench/python/app.py](python/app.py)) served by portico through the Python SDK (`serve_asgi`, protocol v2, one plugin",
    "process) and by uvicorn (one worker) behind nginx (keepalive upstream, bodies streamed, SSE unbuffered,",
    "access logs on in all three). Medians over the rounds; each round runs both, in alternating order.",
    `${tools.python}, FastAPI ${tools.fastapi}, uvicorn ${tools.uvicorn} (optional speedups installed: ${tools.uvicornExtras}), ${os.cpus().length} cores,`,
    `load average ${load0.toFixed(1)} at the start (a shared machine: other sessions' work runs alongside, so treat small differences as noise).`,
    "Ratio: portico's figure over uvicorn's for throughput; uvicorn's time over portico's for the SSE first event (above 1: portico is better).",
    "",
    "| workload | portico → SDK | nginx → uvicorn | ratio | tail |",
    "|---|---|---|---|---|",
    ...rows,
    "",
    `Peak RSS: portico ${rss.portico.proxy.toFixed(0)} MiB + its FastAPI plugin ${rss.portico.app.toFixed(0)} MiB; uvicorn with the app ${rss.uvicorn.app.toFixed(0)} MiB (nginx not counted).`,
    END,
  ].join("\n");
  process.stdout.write(`${section}\n`);
  if (!opts["no-write"]) {
    const file = opts.out ? resolve(opts.out) : join(BENCH, "RESULTS.md");
    const text = existsSync(file) ? readFileSync(file, "utf8") : "";
    const a = text.indexOf(START);
    const z = text.indexOf(END);
    const next = a >= 0 && z > a ? `${text.slice(0, a)}${section}${text.slice(z + END.length)}` : `${text.trimEnd()}\n\n${section}\n`;
    writeFileSync(file, next);
    process.stderr.write(`bench/python: wrote its section of ${file}\n`);
  }
  for (const t of Object.values(targets)) safeKill(t.child.pid);
  await Promise.race([
    Promise.all(Object.values(targets).map((t) => (t.child.exitCode === null ? once(t.child, "exit") : null))),
    sleep(12_000),
  ]);
}

await main();
process.exit(0);
