/**
 * `portico` as a user runs it: `node bin/portico.js …` (from dist/, built here when older than the
 * sources), in an empty working folder, its JSON log lines collected. Every process started here
 * is stopped by stopAll() (SIGTERM, then SIGKILL after 5 s).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { collectLogLines, type LogLine } from "./log-lines.js";
import { until } from "./portico.js";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const BIN = join(ROOT, "bin", "portico.js");
const running = new Set<ChildProcess>();

/** Newest modification time of any file under `dir`. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** bin/portico.js runs dist/: builds it unless it is newer than every source already. */
export function ensureBuilt(): void {
  const entry = join(ROOT, "dist", "cli", "main.js");
  if (existsSync(entry) && statSync(entry).mtimeMs >= newest(join(ROOT, "src"))) return;
  const build = spawnSync(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", join(ROOT, "tsconfig.build.json")], {
    cwd: ROOT,
    encoding: "utf8",
  });
  if (build.status !== 0) console.error(`npm run build reported errors:\n${build.stdout}${build.stderr}`);
  assert.ok(existsSync(entry), `npm run build did not produce ${entry}`);
}

/** An empty folder to run commands in, so no ./portico.toml of the developer's is picked up. */
export function emptyDir(): string {
  return mkdtempSync(join(tmpdir(), "portico-cli-"));
}

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command that finishes by itself (killed after `timeoutMs`): `node bin/portico.js …`, or any other with `command`. */
export function run(args: string[], cwd: string, opts: { command?: string; timeoutMs?: number } = {}): Promise<Result> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    // Without NODE_TEST_CONTEXT: a `node --test` started here reports to its own stdout, not to this runner.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const child = spawn(opts.command ?? process.execPath, opts.command ? args : [BIN, ...args], {
      cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${args.join(" ")} did not finish within ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, stdout, stderr });
    });
  });
}

export interface Served {
  child: ChildProcess;
  url: string;
  lines: LogLine[];
  stderr: () => string;
  exited: Promise<number | null>;
}

/** Starts `portico serve --listen 127.0.0.1:0 …` and waits for its "listening" line. */
export async function serve(args: string[], cwd: string): Promise<Served> {
  const child = spawn(process.execPath, [BIN, "serve", "--listen", "127.0.0.1:0", ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const lines: LogLine[] = [];
  let stderr = "";
  child.stdout.on("data", collectLogLines(lines));
  child.stderr.on("data", (c) => (stderr += c));
  let gone = false;
  const exited = new Promise<number | null>((resolve) =>
    child.on("close", (code) => {
      running.delete(child);
      gone = true;
      resolve(code);
    }),
  );
  await until(() => gone || lines.some((l) => String(l.msg).startsWith("portico listening")), 20_000, "portico to listen");
  assert.ok(!gone, `portico serve exited early:\n${JSON.stringify(lines)}\n${stderr}`);
  const url = String(lines.find((l) => String(l.msg).startsWith("portico listening"))?.url);
  return { child, url, lines, stderr: () => stderr, exited };
}

/** SIGTERM to every process started here that still runs; SIGKILL after 5 s. */
export async function stopAll(): Promise<void> {
  await Promise.all(
    [...running].map(async (c) => {
      const closed = new Promise((r) => c.once("close", r));
      c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), 5000);
      await closed;
      clearTimeout(timer);
    }),
  );
}
