/**
 * `portico ctl` against a real `portico serve` (both as a user runs them, from dist/): status,
 * restart and stop through the admin API, the token from a file, an environment variable or
 * --token, the address from the settings' `listen`, and a plain answer for every refusal.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { collectLogLines, type LogLine } from "./support/log-lines.js";
import { alive, pluginsDir, startPortico, until } from "./support/portico.js";

const BIN = fileURLToPath(new URL("../bin/portico.js", import.meta.url));
const TOKEN = "ctl-test-token-abcdef0123456789";
// Commands run in an empty folder: no ./portico.toml of the developer's is picked up.
const cwd = mkdtempSync(join(tmpdir(), "portico-ctl-test-"));
const plugins = pluginsDir([{ id: "alpha" }, { id: "beta" }]);
// The settings live elsewhere: a ./portico.toml would be read by every command run in cwd.
const settingsDir = mkdtempSync(join(tmpdir(), "portico-ctl-settings-"));
const config = join(settingsDir, "portico.toml");
let server: ChildProcess;
const logs: LogLine[] = [];
let url = "";

/** Runs `portico ctl …` to its end (bounded); the environment without PORTICO_ADMIN_TOKEN unless given. */
function ctl(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const { PORTICO_ADMIN_TOKEN: _, ...base } = process.env;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "ctl", ...args], { cwd, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`portico ctl ${args.join(" ")} did not finish\n${stdout}${stderr}`));
    }, 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as { port: number };
  await new Promise((r) => srv.close(r));
  return port;
}

const pidOf = async (id: string) => {
  const h = (await (await fetch(`${url}/health`)).json()) as { plugins: { id: string; pid: number | null }[] };
  return h.plugins.find((p) => p.id === id)?.pid ?? null;
};

before(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}`;
  writeFileSync(join(settingsDir, "admin-token"), `${TOKEN}\n`);
  writeFileSync(
    config,
    `listen = "127.0.0.1:${port}"\nplugins = ${JSON.stringify(plugins.dir)}\n\n[admin]\nenabled = true\ntoken_file = "admin-token"\n`,
  );
  const { PORTICO_ADMIN_TOKEN: _, ...env } = process.env;
  server = spawn(process.execPath, [BIN, "serve", "--config", config], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
  server.stdout?.on("data", collectLogLines(logs));
  await until(() => logs.some((l) => String(l.msg).startsWith("portico listening")), 15_000, "portico to listen");
});

after(async () => {
  if (server && server.exitCode === null) {
    const closed = new Promise((r) => server.once("close", r));
    server.kill("SIGTERM");
    await closed;
  }
  plugins.cleanup();
  rmSync(cwd, { recursive: true, force: true });
  rmSync(settingsDir, { recursive: true, force: true });
});

test("ctl status: a table of every plugin, reaching the daemon and its token through --config alone", async () => {
  const r = await ctl(["status", "--config", config]);
  assert.equal(r.code, 0, r.stderr);
  const [head, header, ...rows] = r.stdout.trim().split("\n");
  assert.match(head ?? "", /^portico ok · embedded · pid \d+ · up \d+/);
  assert.deepEqual(header?.split(/\s{2,}/), [
    "PLUGIN",
    "STATE",
    "PREFIX",
    "PROTO",
    "PID",
    "UPTIME",
    "RESTARTS",
    "REQ/S",
    "ERRORS",
    "P50",
    "P99",
    "IN-FLIGHT",
  ]);
  const alpha = rows.find((l) => l.startsWith("alpha "))?.split(/\s{2,}/);
  assert.deepEqual(alpha?.slice(0, 5), ["alpha", "ready", "/alpha", "v1", String(await pidOf("alpha"))]);
  assert.ok(rows.some((l) => l.startsWith("beta ")));
});

test("ctl status --json, with --url and --token, or the token in PORTICO_ADMIN_TOKEN", async () => {
  const a = await ctl(["status", "--url", url, "--token", TOKEN, "--json"]);
  assert.equal(a.code, 0, a.stderr);
  const s = JSON.parse(a.stdout) as { plugins: { id: string; state: string }[] };
  assert.deepEqual(
    s.plugins.map((p) => `${p.id} ${p.state}`),
    ["alpha ready", "beta ready"],
  );
  const b = await ctl(["status", "--url", url], { PORTICO_ADMIN_TOKEN: TOKEN });
  assert.equal(b.code, 0, b.stderr);
});

test("ctl restart ID: a new process, ready; exit 0", async () => {
  const before = await pidOf("alpha");
  const r = await ctl(["restart", "alpha", "--config", config]);
  assert.equal(r.code, 0, r.stderr);
  const after = await pidOf("alpha");
  assert.notEqual(after, before);
  assert.equal(r.stdout, `alpha: ready (pid ${after})\n`);
  assert.ok(before && !alive(before), "the old process is gone");
  await until(() => logs.some((l) => l.msg === "admin: restart alpha"), 3000, "the action in the daemon's log");
});

test("ctl stop ID: stopped, requests get 503; ctl restart starts it again", async () => {
  const r = await ctl(["stop", "beta", "--config", config]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "beta: stopped\n");
  assert.equal((await fetch(`${url}/beta/echo`)).status, 503);
  const status = await ctl(["status", "--config", config]);
  assert.match(status.stdout, /^beta\s+stopped\s+\/beta\s+-\s+-\s+-/m);
  const again = await ctl(["restart", "beta", "--config", config]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal((await fetch(`${url}/beta/echo`)).status, 200);
});

test("refusals are one plain line each, exit 1: no token, a wrong one, an unknown plugin, nobody listening", async () => {
  const none = await ctl(["status", "--url", url]);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /answered 401 unauthorized: this daemon wants its admin token \(--token TOKEN, or PORTICO_ADMIN_TOKEN\)/);
  const wrong = await ctl(["restart", "alpha", "--url", url, "--token", "a-wrong-token-of-some-length"]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /401 unauthorized: the token was refused/);
  const unknown = await ctl(["restart", "nope", "--config", config]);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /404 not found: no plugin "nope" \(plugins: alpha, beta\)/);
  const away = await ctl(["status", "--url", `http://127.0.0.1:${await freePort()}`]);
  assert.equal(away.code, 1);
  assert.match(away.stderr, /cannot reach the admin API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
  const usage = await ctl(["restart"]);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /ctl restart needs a plugin ID/);
});

test("a daemon without [admin] enabled: ctl says so, exit 1", async () => {
  const off = await startPortico([{ id: "alpha" }]);
  try {
    const r = await ctl(["status", "--url", off.url]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /answered 404 not found: the admin API is not enabled there \(set \[admin\] enabled = true in portico\.toml\)/);
  } finally {
    await off.close();
  }
});
