#!/usr/bin/env node
// The NATS section of the benchmark (issue 9): what the hop across NATS costs, and how portico
// scales out on it. Same plugin (bench/plugins/v2, portico's SDK over protocol v2), same machine,
// same run, every server on 127.0.0.1:
//
//   embedded            portico serve --plugins (the default: no broker)
//   nats 1 host         one gateway + one host, through a local nats-server
//   nats 2 / 4 hosts    one gateway + 2 or 4 hosts (replicas of the plugin)
//   nats 2 gateways     two gateways (load split over both) + 2 hosts
//
// Workloads: small GETs (wrk, 64 connections) and 1 MiB GETs (wrk, 8 connections). Medians of
// ROUNDS rounds, interleaved (round 1 of every setup, then round 2, …), each as a ratio to the
// embedded default in the same run. On a 2-core machine replicas and gateways share the same two
// cores, so past one host more replicas buy resilience, not throughput: the figures show the cost.
//
//   node bench/nats.mjs [--rounds 3] [--duration 5]      (npm run bench runs it too)
import { spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const BENCH = dirname(fileURLToPath(import.meta.url));
const BIN = join(BENCH, "..", "bin", "portico.js");
const PLUGINS = join(BENCH, "plugins", "v2");
const HOST = "127.0.0.1";

const WORKLOADS = [
  { id: "small", label: "GET small, 64 conn (req/s)", path: "/v2/small", connections: 64, unit: "req/s" },
  { id: "1m", label: "GET 1 MiB, 8 conn (MB/s)", path: "/v2/bytes?n=1048576", connections: 8, unit: "MB/s", size: 1024 * 1024 },
];
const SETUPS = [
  { id: "embedded", label: "embedded (no NATS)", hosts: 0, gateways: 1 },
  { id: "nats-1", label: "NATS: 1 gateway + 1 host", hosts: 1, gateways: 1 },
  { id: "nats-2", label: "NATS: 1 gateway + 2 hosts", hosts: 2, gateways: 1 },
  { id: "nats-4", label: "NATS: 1 gateway + 4 hosts", hosts: 4, gateways: 1 },
  { id: "nats-2gw", label: "NATS: 2 gateways + 2 hosts", hosts: 2, gateways: 2 },
];

const procs = new Set();
const cleanup = () => {
  for (const p of procs) p.kill("SIGKILL");
};
process.on("exit", cleanup);

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, HOST, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function start(args, tag) {
  const p = spawn(process.execPath, [BIN, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  procs.add(p);
  p.on("exit", () => procs.delete(p));
  let out = "";
  p.stdout.on("data", (c) => (out += c));
  p.stderr.on("data", (c) => (out += c));
  p.output = () => out;
  p.tag = tag;
  return p;
}

async function waitFor(probe, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function readyReplicas(url, n) {
  try {
    const h = await (await fetch(`${url}/health`)).json();
    const p = h.plugins.find((x) => x.id === "bench_v2");
    if (!p) return false;
    return !p.replicas || p.replicas.filter((r) => r.state === "ready").length >= n;
  } catch {
    return false;
  }
}

/** Starts one setup; resolves with the gateway URLs and a stop function. */
async function startSetup(setup, natsUrl) {
  const dir = mkdtempSync(join(tmpdir(), "portico-nats-bench-"));
  const started = [];
  const toml = (role) => {
    const file = join(dir, `${role}-${started.length}.toml`);
    writeFileSync(file, `[nats]\nurl = "${natsUrl}"\nrole = "${role}"\nheartbeat_seconds = 0.25\n`);
    return file;
  };
  const urls = [];
  if (setup.hosts === 0) {
    const port = await freePort();
    started.push(start(["--plugins", PLUGINS, "--listen", `${HOST}:${port}`, "--log-level", "warn"], "embedded"));
    urls.push(`http://${HOST}:${port}`);
  } else {
    for (let i = 0; i < setup.hosts; i++)
      started.push(start(["--config", toml("host"), "--plugins", PLUGINS, "--log-level", "warn"], `host ${i}`));
    for (let i = 0; i < setup.gateways; i++) {
      const port = await freePort();
      started.push(start(["--config", toml("gateway"), "--listen", `${HOST}:${port}`, "--log-level", "warn"], `gateway ${i}`));
      urls.push(`http://${HOST}:${port}`);
    }
  }
  for (const url of urls) await waitFor(() => readyReplicas(url, Math.max(1, setup.hosts)), 20_000, `${setup.id} at ${url}`);
  return {
    urls,
    stop: async () => {
      for (const p of started) p.kill("SIGTERM");
      await Promise.all(started.map((p) => (p.exitCode === null ? once(p, "exit") : undefined)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** wrk against each URL at once (connections split evenly); the sum of what they report. */
async function load(urls, workload, duration) {
  const per = Math.max(1, Math.round(workload.connections / urls.length));
  const runs = urls.map((url) => {
    const p = spawn("wrk", ["-t1", `-c${per}`, `-d${duration}s`, "--timeout", "10s", `${url}${workload.path}`], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    procs.add(p);
    let out = "";
    p.stdout.on("data", (c) => (out += c));
    const killer = setTimeout(() => p.kill("SIGKILL"), (duration + 20) * 1000);
    return once(p, "exit").then(() => {
      clearTimeout(killer);
      procs.delete(p);
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const errors = /Socket errors: (.*)/.exec(out)?.[1];
      if (!Number.isFinite(rps)) throw new Error(`wrk: ${out}`);
      return { rps, failed: non2xx > 0 || Boolean(errors && /[1-9]/.test(errors)) };
    });
  });
  const results = await Promise.all(runs);
  const rps = results.reduce((n, r) => n + r.rps, 0);
  return { value: workload.size ? (rps * workload.size) / 1e6 : rps, failed: results.some((r) => r.failed) };
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : Number.NaN;
};

async function startNatsServer() {
  const port = await freePort();
  const p = spawn("nats-server", ["-a", HOST, "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
  procs.add(p);
  const url = `nats://${HOST}:${port}`;
  await waitFor(
    () =>
      new Promise((resolve) => {
        const s = createServer();
        s.once("error", () => resolve(true)); // the port is taken: the server is up
        s.listen(port, HOST, () => s.close(() => resolve(false)));
      }),
    5000,
    "nats-server",
  );
  return { url, stop: () => p.kill("SIGTERM") };
}

/**
 * Runs every setup × workload, `rounds` times interleaved; resolves with a Markdown section.
 * `log` gets progress lines.
 */
export async function natsBench({ rounds = 3, duration = 5, log = (s) => process.stderr.write(`${s}\n`) } = {}) {
  if (spawnSync("nats-server", ["--version"]).status !== 0) {
    return "## Across NATS\n\nnot measured: nats-server is not installed (Debian package nats-server).\n";
  }
  const nats = await startNatsServer();
  const values = new Map(); // `${setup}/${workload}` → number[]
  const failures = new Set();
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const setup of SETUPS) {
        const s = await startSetup(setup, nats.url);
        try {
          for (const w of WORKLOADS) {
            await load(s.urls, w, 1); // warm-up
            const r = await load(s.urls, w, duration);
            const key = `${setup.id}/${w.id}`;
            values.set(key, [...(values.get(key) ?? []), r.value]);
            if (r.failed) failures.add(key);
            log(`nats bench: round ${round} ${setup.id} ${w.id}: ${r.value.toFixed(0)} ${w.unit}${r.failed ? " (with errors)" : ""}`);
          }
        } finally {
          await s.stop();
        }
      }
    }
  } finally {
    nats.stop();
  }
  const rows = SETUPS.map((setup) => {
    const cells = WORKLOADS.flatMap((w) => {
      const m = median(values.get(`${setup.id}/${w.id}`) ?? []);
      const base = median(values.get(`embedded/${w.id}`) ?? []);
      const flag = failures.has(`${setup.id}/${w.id}`) ? " ⚠" : "";
      return [`${m.toFixed(w.size ? 1 : 0)}${flag}`, `${(m / base).toFixed(2)}×`];
    });
    return `| ${setup.label} | ${cells.join(" | ")} |`;
  });
  const head = `| setup | ${WORKLOADS.map((w) => `${w.label} | × embedded`).join(" | ")} |`;
  const sep = `| --- | ${WORKLOADS.map(() => "---: | ---:").join(" | ")} |`;
  return [
    "## Across NATS",
    "",
    `Median of ${rounds} interleaved rounds of ${duration} s (wrk, 127.0.0.1), the bench plugin over protocol v2; every`,
    "process shares the same cores (replicas and gateways on one machine add resilience, not cores).",
    "A ⚠ beside a figure: some requests failed in one of its rounds (none here means none failed).",
    "",
    head,
    sep,
    ...rows,
    "",
  ].join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { rounds: { type: "string", default: "3" }, duration: { type: "string", default: "5" } } });
  natsBench({ rounds: Number(values.rounds), duration: Number(values.duration) }).then(
    (md) => {
      process.stdout.write(md);
      cleanup();
      process.exit(0);
    },
    (err) => {
      process.stderr.write(`${err.stack}\n`);
      cleanup();
      process.exit(1);
    },
  );
}
