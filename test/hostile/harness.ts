/**
 * Harness for the hostile corpora (test/hostile/*): portico started as its own process (`node
 * bin/portico.js serve`, as an operator runs it) so that its memory and open files can be read from
 * /proc, a bystander plugin probed all along to show one bad actor costs nobody else their service,
 * and the checks every hostile case ends with.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { type Agent, request } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { collectLogLines } from "../support/log-lines.js";
import { type PluginSpec, pluginsDir } from "../support/portico.js";

const BIN = fileURLToPath(new URL("../../bin/portico.js", import.meta.url));
const PROBE = fileURLToPath(new URL("./probe.mjs", import.meta.url));

export interface Daemon {
  url: string;
  port: number;
  pid: number;
  /** portico's log lines so far (parsed JSON). */
  logs: Record<string, unknown>[];
  /** A full garbage collection in the daemon (through its inspector), so memory says what is live. */
  gc(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts `portico serve` on 127.0.0.1 (an ephemeral port) with `plugins`, and `toml` added to its
 * portico.toml (e.g. a [limits] table). Resolves once it listens and every plugin is ready.
 */
export async function startDaemon(plugins: PluginSpec[], toml = ""): Promise<Daemon> {
  const { dir, cleanup } = pluginsDir(plugins);
  const config = join(dir, "portico.toml");
  writeFileSync(config, `listen = "127.0.0.1:0"\nplugins = "${dir}"\nlog_level = "info"\n${toml}\n`);
  // The inspector (loopback, ephemeral port) lets the corpus ask for a full GC before it reads RSS.
  const child = spawn(process.execPath, ["--inspect=127.0.0.1:0", BIN, "serve", "--config", config], { stdio: ["ignore", "pipe", "pipe"] });
  const logs: Record<string, unknown>[] = [];
  child.stdout.on("data", collectLogLines(logs));
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const url = await waitFor(
    () => {
      if (child.exitCode !== null) throw new Error(`portico exited (${child.exitCode}): ${stderr}`);
      const line = logs.find((l) => typeof l.url === "string" && String(l.msg).startsWith("portico listening"));
      return line?.url as string | undefined;
    },
    20_000,
    "portico to listen",
  );
  const inspectorUrl = await waitFor(() => /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1], 5000, "the inspector");
  const inspector = await openInspector(inspectorUrl);
  const daemon: Daemon = {
    url,
    port: Number(new URL(url).port),
    pid: child.pid as number,
    logs,
    gc: () => inspector.call("HeapProfiler.collectGarbage"),
    close: async () => {
      inspector.close();
      await stop(child, cleanup);
    },
  };
  await waitFor(async () => (await health(daemon)).every((p) => p.state === "ready") || undefined, 20_000, "plugins ready");
  return daemon;
}

/** A Chrome DevTools Protocol session with the daemon's inspector. */
async function openInspector(url: string): Promise<{ call(method: string): Promise<void>; close(): void }> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  let nextId = 1;
  const waiting = new Map<number, () => void>();
  ws.on("message", (data: Buffer) => {
    const msg = JSON.parse(data.toString()) as { id?: number };
    if (msg.id !== undefined) waiting.get(msg.id)?.();
  });
  return {
    call(method) {
      const id = nextId++;
      return new Promise<void>((resolve) => {
        waiting.set(id, () => {
          waiting.delete(id);
          resolve();
        });
        ws.send(JSON.stringify({ id, method }));
      });
    },
    close: () => ws.close(),
  };
}

async function stop(child: ChildProcess, cleanup: () => void): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(timer);
  }
  cleanup();
}

export interface PluginHealth {
  id: string;
  state: string;
  pid: number | null;
  restarts: number;
  inFlight: number;
  lastExit: string | null;
}

export async function health(d: Daemon): Promise<PluginHealth[]> {
  const r = await get(`${d.url}/health`);
  return (JSON.parse(r.body) as { plugins: PluginHealth[] }).plugins;
}

export async function pluginHealth(d: Daemon, id: string): Promise<PluginHealth> {
  const p = (await health(d)).find((x) => x.id === id);
  assert.ok(p, `${id} in /health`);
  return p;
}

/** Polls `check` until it returns something other than undefined. */
export async function waitFor<T>(check: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    let value: T | undefined;
    try {
      value = await check();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      if ((err as Error).message.startsWith("portico exited")) throw err;
    }
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** One GET, the body as text, bounded in time. */
export function get(url: string, agent?: Agent, ms = 10_000): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: agent ?? false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        body += c;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - started }));
      res.on("error", reject);
    });
    req.setTimeout(ms, () => req.destroy(new Error(`GET ${url}: no answer within ${ms} ms`)));
    req.on("error", reject);
    req.end();
  });
}

/** The daemon's resident memory (bytes) and open file descriptors, from /proc. */
export function footprint(pid: number): { rss: number; fds: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return { rss: kb * 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
}

/** The daemon's footprint after a full GC: what is live, not what awaits collection. */
export async function settledFootprint(d: Daemon): Promise<{ rss: number; fds: number }> {
  await d.gc();
  return footprint(d.pid);
}

/**
 * Waits (up to `ms`) for the daemon's RSS and open fds to come back within 10 % of `base` (both
 * read after a full GC), and asserts they did.
 */
export async function assertSettled(d: Daemon, base: { rss: number; fds: number }, what: string, ms = 8000): Promise<void> {
  const within = (now: { rss: number; fds: number }) => now.rss <= base.rss * 1.1 && now.fds <= Math.max(base.fds * 1.1, base.fds + 1);
  let now = await settledFootprint(d);
  const deadline = Date.now() + ms;
  while (!within(now) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await settledFootprint(d);
  }
  assert.ok(
    within(now),
    `${what}: daemon RSS ${mib(now.rss)} (base ${mib(base.rss)}), fds ${now.fds} (base ${base.fds}): not back within 10 %`,
  );
}

const mib = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MiB`;

/**
 * Probes a bystander route over one keep-alive connection, one request at a time, all along, from
 * a process of its own (probe.mjs). A window's worst latency says whether the daemon kept serving
 * others while a hostile case ran.
 */
export class Bystander {
  readonly #url: string;
  #child: ChildProcess | undefined;
  #worst = 0;
  #failures: string[] = [];
  #probes = 0;

  constructor(url: string) {
    this.#url = url;
  }

  start(): void {
    const child = spawn(process.execPath, [PROBE, this.#url], { stdio: ["pipe", "pipe", "inherit"] });
    this.#child = child;
    let pending = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        this.#probes++;
        const [first, status] = line.split(" ");
        if (first === "error") this.#failures.push(line);
        else if (status !== "200") this.#failures.push(`status ${status}`);
        else this.#worst = Math.max(this.#worst, Number(first));
      }
    });
  }

  /** Starts a new window; returns the one that ends. */
  window(): { worstMs: number; probes: number; failures: string[] } {
    const w = { worstMs: this.#worst, probes: this.#probes, failures: this.#failures };
    this.#worst = 0;
    this.#probes = 0;
    this.#failures = [];
    return w;
  }

  /** Asserts the window that ends now saw the bystander answered, every time within `limitMs`. */
  assertServed(what: string, limitMs = 100): void {
    const w = this.window();
    // The margin, in the test output, once a case takes a quarter of its limit: how near it comes
    // shows before it fails.
    if (w.worstMs > limitMs / 4)
      console.log(`${what}: the bystander's slowest answer took ${w.worstMs.toFixed(1)} ms (limit ${limitMs} ms)`);
    assert.deepEqual(w.failures, [], `${what}: the bystander plugin failed meanwhile`);
    assert.ok(w.worstMs < limitMs, `${what}: the bystander plugin took ${w.worstMs.toFixed(1)} ms (limit ${limitMs} ms)`);
  }

  /** Waits until at least one more probe completed (so a window is never empty). */
  async probed(): Promise<void> {
    const seen = this.#probes;
    await waitFor(() => (this.#probes > seen ? true : undefined), 5000, "a bystander probe");
  }

  async stop(): Promise<void> {
    const child = this.#child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
  }
}
