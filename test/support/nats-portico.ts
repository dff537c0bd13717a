/**
 * portico on NATS for tests: real gateways and hosts, each `portico serve --nats … --role …` as a
 * process of its own, against a real nats-server (test/support/nats-server.ts).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { collectLogLines, type LogLine } from "./log-lines.js";
import { type PluginSpec, pluginsDir } from "./portico.js";

const BIN = fileURLToPath(new URL("../../bin/portico.js", import.meta.url));

/** Fast heartbeats so tests see joins and drops within a second or two. */
export const FAST_NATS = "heartbeat_seconds = 0.25\npeer_timeout_seconds = 1.5\n";

export interface Proc {
  child: ChildProcess;
  pid: number;
  logs: Record<string, unknown>[];
  /** SIGTERM and wait for the exit code (SIGKILL after `ms`). */
  stop(ms?: number): Promise<number | null>;
  /** SIGKILL and wait. */
  kill(): Promise<void>;
}

export interface GatewayProc extends Proc {
  url: string;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) c.kill("SIGKILL");
});

function run(args: string[], cleanup: () => void): Proc {
  const child = spawn(process.execPath, [BIN, "serve", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  const logs: LogLine[] = [];
  const onOutput = collectLogLines(logs);
  child.stdout?.on("data", onOutput);
  child.stderr?.on("data", onOutput);
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => {
      live.delete(child);
      cleanup();
      resolve(code);
    }),
  );
  return {
    child,
    pid: child.pid as number,
    logs,
    async stop(ms = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), ms);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

async function until<T>(probe: () => T | undefined | Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function settings(dir: string, body: string): string {
  const file = join(dir, "portico.toml");
  writeFileSync(file, body);
  return file;
}

/** A gateway: no plugins folder, listening on an ephemeral loopback port. `toml`: more settings. */
export async function startGateway(natsUrl: string, toml = ""): Promise<GatewayProc> {
  const dir = mkdtempSync(join(tmpdir(), "portico-gw-"));
  const file = settings(dir, `listen = "127.0.0.1:0"\n${toml}\n[nats]\nurl = "${natsUrl}"\nrole = "gateway"\n${FAST_NATS}`);
  const proc = run(["--config", file], () => rmSync(dir, { recursive: true, force: true }));
  const url = await until(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`gateway exited (${proc.child.exitCode}): ${JSON.stringify(proc.logs.slice(-25))}`);
      const line = proc.logs.find((l) => typeof l.url === "string" && String(l.msg).startsWith("portico listening"));
      return line?.url as string | undefined;
    },
    15_000,
    "the gateway to listen",
  );
  return { ...proc, url };
}

/** A host serving `plugins` (written to a folder of their own), with no public port. */
export async function startHost(natsUrl: string, plugins: PluginSpec[], toml = ""): Promise<Proc> {
  const { dir, cleanup } = pluginsDir(plugins);
  const file = settings(dir, `plugins = "${dir}"\n${toml}\n[nats]\nurl = "${natsUrl}"\nrole = "host"\n${FAST_NATS}`);
  const proc = run(["--config", file], cleanup);
  await until(
    () => {
      if (proc.child.exitCode !== null) throw new Error(`host exited (${proc.child.exitCode}): ${JSON.stringify(proc.logs.slice(-25))}`);
      return proc.logs.some((l) => String(l.msg).startsWith("portico host running")) || undefined;
    },
    20_000,
    "the host to start",
  );
  return proc;
}

export interface HealthPlugin {
  id: string;
  state: string;
  restarts: number;
  prefix: string | null;
  replicas: { host: string; state: string; pid: number | null }[];
}

export async function gatewayHealth(url: string): Promise<{ status: string; plugins: HealthPlugin[]; hosts: { host: string }[] }> {
  const res = await fetch(`${url}/health`);
  return (await res.json()) as { status: string; plugins: HealthPlugin[]; hosts: { host: string }[] };
}

/** Waits until the gateway routes every id in `ids` with at least `replicas` ready replicas. */
export async function waitForPlugins(url: string, ids: string[], replicas = 1, ms = 15_000): Promise<void> {
  await until(
    async () => {
      const h = await gatewayHealth(url).catch(() => undefined);
      if (!h) return undefined;
      const ok = ids.every((id) => {
        const p = h.plugins.find((x) => x.id === id);
        return p && p.prefix !== null && p.replicas.filter((r) => r.state === "ready").length >= replicas;
      });
      return ok || undefined;
    },
    ms,
    `${ids.join(", ")} with ${replicas} ready replica(s) on ${url}`,
  );
}

export { until };
