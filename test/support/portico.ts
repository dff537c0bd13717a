/**
 * Test harness: writes real plugin folders (manifest + the raw fixture plugin) into a temp dir,
 * starts a real portico on 127.0.0.1 with an ephemeral port, and captures its log lines.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { createPortico, type Portico, type PorticoOptions } from "../../src/index.js";

export const FIXTURE = fileURLToPath(new URL("../fixtures/raw-plugin.mjs", import.meta.url));

export interface PluginSpec {
  id: string;
  prefix?: string;
  /** Extra [plugin.http] lines, e.g. `timeout_seconds = 1`. */
  http?: string;
  env?: Record<string, string>;
  /** Defaults to running the raw fixture with node. */
  command?: string;
  args?: string[];
  /** Replace the whole manifest text. */
  manifest?: string;
  /** Extra files to write in the plugin folder. */
  files?: Record<string, string>;
}

export function manifestText(spec: PluginSpec): string {
  if (spec.manifest !== undefined) return spec.manifest;
  const env = { FIXTURE_ID: spec.id, ...spec.env };
  const envToml = Object.entries(env)
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join(", ");
  const args = spec.args ?? [FIXTURE];
  return `[plugin]
id = "${spec.id}"
version = "0.1.0"
name = "${spec.id}"
description = "test plugin"

[plugin.entrypoint]
command = ${JSON.stringify(spec.command ?? process.execPath)}
args = ${JSON.stringify(args)}
env = { ${envToml} }

[plugin.http]
mount_prefix = "${spec.prefix ?? `/${spec.id}`}"
${spec.http ?? ""}
`;
}

/** A plugins directory with one folder per spec. */
export function pluginsDir(specs: PluginSpec[]): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "portico-test-"));
  for (const spec of specs) {
    const folder = join(dir, spec.id);
    mkdirSync(folder, { recursive: true });
    writeFileSync(join(folder, "nexo-plugin.toml"), manifestText(spec));
    for (const [name, text] of Object.entries(spec.files ?? {})) writeFileSync(join(folder, name), text);
  }
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Running {
  url: string;
  port: number;
  portico: Portico;
  /** Parsed log lines so far. */
  logs: Record<string, unknown>[];
  close(): Promise<void>;
}

/** Fast supervisor settings so restart tests don't wait long. */
export const FAST_SUPERVISOR = {
  initTimeoutMs: 3000,
  shutdownGraceMs: 2000,
  restartDelayMs: 50,
  restartMaxDelayMs: 500,
  maxCrashes: 5,
  crashWindowMs: 30_000,
};

export async function startPortico(specs: PluginSpec[], options: PorticoOptions = {}): Promise<Running> {
  const { dir, cleanup } = pluginsDir(specs);
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const line of String(chunk).split("\n")) if (line) logs.push(JSON.parse(line));
      cb();
    },
  });
  const logger = pino({ level: "debug" }, sink);
  const portico = createPortico({ pluginsDir: dir, logger, supervisor: FAST_SUPERVISOR, ...options });
  await portico.start();
  const { address } = await portico.listen({ host: "127.0.0.1", port: 0 });
  let closed = false;
  return {
    url: `http://127.0.0.1:${address.port}`,
    port: address.port,
    portico,
    logs,
    async close() {
      if (closed) return;
      closed = true;
      await portico.close();
      cleanup();
    },
  };
}

/** Polls until `check` returns true (or throws after `timeoutMs`). */
export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** What the raw fixture's /echo answers: the v1 request payload it received, and its id. */
export interface Echo {
  id: string;
  method: string;
  path: string;
  query: string;
  headers: [string, string][];
  body_base64: string;
}

/** True while `pid` is a live process; a zombie (dead, not yet reaped: PID 1 may not reap) counts as gone. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false; // gone between the two checks
  }
}
