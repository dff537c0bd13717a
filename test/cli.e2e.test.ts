/**
 * The command line end to end: `node bin/portico.js` as a user runs it (from dist/, built in
 * before()), with real plugin processes and real HTTP on 127.0.0.1.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { BIN, ensureBuilt, ROOT } from "./support/cli.js";
import { alive, FIXTURE, manifestText, type PluginSpec, pluginsDir, until } from "./support/portico.js";

// Every command runs in an empty folder, so no ./portico.toml of the developer's is picked up.
const cwd = mkdtempSync(join(tmpdir(), "portico-cli-test-"));
const cleanups: (() => void)[] = [() => rmSync(cwd, { recursive: true, force: true })];
const running = new Set<ChildProcess>();

// bin/portico.js runs dist/: built unless already newer than every source (`npm test` builds first;
// rebuilding then would rewrite dist/ under test files running alongside).
before(ensureBuilt);

// A test that failed half-way leaves its portico running: stop it as a user would (SIGTERM, so it
// stops its plugins), and only if that doesn't work, SIGKILL.
after(async () => {
  await Promise.all(
    [...running].map(async (c) => {
      const closed = new Promise((r) => c.once("close", r));
      c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), 5000);
      await closed;
      clearTimeout(timer);
    }),
  );
  for (const f of cleanups) f();
});

function dir(specs: PluginSpec[]): string {
  const d = pluginsDir(specs);
  cleanups.push(d.cleanup);
  return d.dir;
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command that is expected to finish by itself (bounded). */
function run(args: string[], timeoutMs = 20_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`portico ${args.join(" ")} did not finish within ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      resolve({ code, signal, stdout, stderr });
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

interface Server {
  child: ChildProcess;
  /** Parsed JSON log lines so far (stdout is not a terminal: one JSON object per line). */
  lines: Record<string, unknown>[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Starts `portico serve …` and waits for its "listening" line. */
async function serve(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, [BIN, "serve", ...args], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  const lines: Record<string, unknown>[] = [];
  let partial = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    partial += c;
    const parts = partial.split("\n");
    partial = parts.pop() ?? "";
    for (const l of parts) if (l.trim()) lines.push(JSON.parse(l));
  });
  child.stderr.on("data", (c) => (stderr += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    }),
  );
  let gone = false;
  void exited.then(() => (gone = true));
  await until(() => gone || lines.some((l) => String(l.msg).startsWith("portico listening")), 15_000, "portico to listen");
  assert.ok(!gone, `portico serve exited early:\n${JSON.stringify(lines)}\n${stderr}`);
  return { child, lines, stderr: () => stderr, exited };
}

async function pluginPids(url: string): Promise<number[]> {
  const h = (await (await fetch(`${url}/health`)).json()) as { plugins: { pid: number | null }[] };
  return h.plugins.map((p) => p.pid).filter((p): p is number => typeof p === "number");
}

const BAD_PREFIX = (id: string) => manifestText({ id }).replace(`mount_prefix = "/${id}"`, 'mount_prefix = "no-leading-slash"');

test("check: a bad manifest prints file, key and fix, exit 1", async () => {
  const d = dir([{ id: "good" }, { id: "bad", manifest: BAD_PREFIX("bad") }]);
  const r = await run(["check", d]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const line = r.stdout.split("\n").find((l) => l.includes(join(d, "bad", "nexo-plugin.toml")));
  assert.ok(line, r.stdout);
  assert.match(line, /plugin\.http\.mount_prefix/);
  assert.match(line, /fix: .*"\/no-leading-slash"/);
  assert.ok(!r.stdout.includes(join(d, "good")), "the good one is not reported");
  assert.match(r.stdout, /1 ok, 1 problem\b/);
});

test("check: every problem of every file is printed; a prefix conflict counts", async () => {
  const d = dir([
    { id: "twoproblems", manifest: '[plugin]\nid = "Bad Id"\nversion = 1\n' },
    { id: "first", prefix: "/same" },
    { id: "second", prefix: "/same" },
  ]);
  const r = await run(["check", d]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /twoproblems.*plugin\.id.*fix:/);
  assert.match(r.stdout, /twoproblems.*plugin\.version.*fix:/);
  assert.match(r.stdout, /second.*"\/same".*"first"/);
});

test("check: good manifests (a file, a plugin folder, a folder of plugins) exit 0", async () => {
  const d = dir([{ id: "one" }, { id: "two" }]);
  const r = await run(["check", join(d, "one", "nexo-plugin.toml"), join(d, "two"), d]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /\b0 problems/);
  assert.equal((await run(["check", d])).code, 0);
});

test("routes: the table serve would build, sorted, with reserved prefixes and plugins not served", async () => {
  const d = dir([
    { id: "zed", prefix: "/zeta" },
    { id: "api", prefix: "/api" },
    { id: "apiv1", prefix: "/api/v1", http: "timeout_seconds = 5" },
    { id: "mid", prefix: "/beta" },
    { id: "clash", prefix: "/beta" }, // "clash" < "mid": clash gets /beta, mid is refused
    { id: "broken", manifest: BAD_PREFIX("broken") },
  ]);
  const r = await run(["routes", "--plugins", d]);
  assert.equal(r.code, 0, r.stderr);
  const [table, notServed] = r.stdout.split("\nnot served:\n");
  assert.ok(table, r.stdout);
  const rows = table
    .trim()
    .split("\n")
    .map((l) => l.split(/\s{2,}/));
  assert.deepEqual(rows[0], ["PREFIX", "PLUGIN", "TIMEOUT", "MAX BODY"]);
  const body = rows.slice(1);
  const prefixes = body.map(([prefix]) => prefix);
  assert.deepEqual(prefixes, [...prefixes].sort(), "sorted by prefix");
  for (const reserved of ["/health", "/metrics", "/pair", "/admin", "/.well-known"]) {
    assert.deepEqual(body.find((row) => row[0] === reserved)?.slice(0, 2), [reserved, "(portico)"]);
  }
  assert.deepEqual(body.find((row) => row[0] === "/api/v1")?.slice(0, 3), ["/api/v1", "apiv1", "5s"]);
  assert.deepEqual(body.find((row) => row[0] === "/api")?.slice(0, 3), ["/api", "api", "30s"]);
  assert.equal(body.find((row) => row[0] === "/beta")?.[1], "clash");
  assert.equal(body.find((row) => row[0] === "/zeta")?.[1], "zed");
  assert.equal(body.length, 5 + 4);
  assert.ok(notServed, r.stdout);
  assert.match(notServed, /mid: .*"\/beta".*"clash"/);
  assert.match(notServed, /broken.*nexo-plugin\.toml.*mount_prefix/);
});

test("routes: a bad manifest's not-served line names its file once", async () => {
  const d = dir([{ id: "ok" }, { id: "broken", manifest: BAD_PREFIX("broken") }]);
  const r = await run(["routes", "--plugins", d]);
  assert.equal(r.code, 0, r.stderr);
  const file = join(d, "broken", "nexo-plugin.toml");
  const line = r.stdout.split("\n").find((l) => l.includes(file));
  assert.ok(line, r.stdout);
  assert.equal(line.split(file).length - 1, 1, `the path appears once: ${line}`);
  assert.match(line, /^ {2}\S+nexo-plugin\.toml: plugin\.http\.mount_prefix: .* — fix: /);
});

test("routes | head: a reader that stops early ends nothing but the output (no EPIPE crash)", async () => {
  // More than a pipe's 64 KiB of rows, so most of the writes come after the reader has gone.
  const d = dir(Array.from({ length: 1500 }, (_, i) => ({ id: `p${i}`, prefix: `/p${i}-${"x".repeat(60)}` })));
  const child = spawn(process.execPath, [BIN, "routes", "--plugins", d], { cwd, stdio: ["ignore", "pipe", "pipe"] });
  running.add(child);
  let first = "";
  let stderr = "";
  child.stdout.once("data", (c: Buffer) => {
    first = String(c);
    child.stdout.destroy(); // what `head -1` does once it has its line
  });
  child.stderr.on("data", (c) => (stderr += c));
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
  clearTimeout(timer);
  running.delete(child);
  assert.match(first, /^PREFIX/);
  assert.equal(stderr, "", "nothing on stderr");
  assert.equal(code, 0);
});

test("serve: prints where it listens and what it mounted, serves, and on SIGTERM exits 0 leaving no plugin", async () => {
  const d = dir([{ id: "alpha" }, { id: "beta", prefix: "/b/eta" }]);
  const port = await freePort();
  const s = await serve(["--plugins", d, "--listen", `127.0.0.1:${port}`]);
  const url = `http://127.0.0.1:${port}`;
  assert.ok(
    s.lines.some((l) => l.msg === `portico listening on ${url}`),
    JSON.stringify(s.lines),
  );
  assert.ok(s.lines.some((l) => l.msg === "mounted /alpha → alpha (ready)"));
  assert.ok(s.lines.some((l) => l.msg === "mounted /b/eta → beta (ready)"));
  const res = await fetch(`${url}/b/eta/echo?q=1`);
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { id: string }).id, "beta");
  const pids = await pluginPids(url);
  assert.equal(pids.length, 2);
  assert.ok(pids.every(alive));

  s.child.kill("SIGTERM");
  const exit = await Promise.race([
    s.exited,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no exit within 10 s")), 10_000)),
  ]);
  assert.deepEqual(exit, { code: 0, signal: null }, s.stderr());
  for (const pid of pids) assert.ok(!alive(pid), `plugin ${pid} left behind`);
  assert.ok(s.lines.some((l) => l.msg === "stopped"));
  assert.equal(s.lines.filter((l) => l.msg === "plugin stopped").length, 2);
});

test("serve: the bundled examples (what `npm start` serves) start, answer, and stop cleanly", async () => {
  const port = await freePort();
  const s = await serve(["--plugins", join(ROOT, "examples", "plugins"), "--listen", `127.0.0.1:${port}`]);
  const url = `http://127.0.0.1:${port}`;
  assert.ok(
    s.lines.some((l) => l.msg === "mounted /hello → hello_ts (ready)"),
    JSON.stringify(s.lines),
  );
  assert.ok(
    s.lines.some((l) => l.msg === "mounted /py → hello_python (ready)"),
    JSON.stringify(s.lines),
  );
  for (const [path, id] of [
    ["/hello/json?a=1", "hello_ts"],
    ["/py/json?a=1", "hello_python"],
  ] as const) {
    const res = await fetch(url + path);
    assert.equal(res.status, 200, `${path}: ${JSON.stringify(s.lines.filter((l) => l.level !== 30))}`);
    assert.equal(((await res.json()) as { plugin: string }).plugin, id);
  }
  const pids = await pluginPids(url); // hello_ts, hello_python and whatever examples were added since
  assert.ok(pids.length >= 2);
  s.child.kill("SIGTERM");
  const exit = await Promise.race([
    s.exited,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no exit within 15 s")), 15_000)),
  ]);
  assert.deepEqual(exit, { code: 0, signal: null }, s.stderr());
  for (const pid of pids) assert.ok(!alive(pid), `plugin ${pid} left behind`);
});

test("serve: SIGINT too, killing a plugin that ignores shutdown (and its helper) after the grace period", async () => {
  const pidfile = join(cwd, "sigint.pids");
  const d = dir([
    { id: "polite" },
    {
      id: "stubborn",
      command: "sh",
      args: ["-c", `sleep 1000 & echo $! >> "${pidfile}"; exec "${process.execPath}" "${FIXTURE}"`],
      env: { FIXTURE_SHUTDOWN: "ignore" },
    },
  ]);
  const config = join(cwd, "grace.toml");
  writeFileSync(config, "[supervisor]\nshutdown_grace_ms = 300\n");
  const port = await freePort();
  const s = await serve(["--plugins", d, "--listen", `127.0.0.1:${port}`, "--config", config]);
  const pids = await pluginPids(`http://127.0.0.1:${port}`);
  const helper = Number(readFileSync(pidfile, "utf8").trim());
  assert.equal(pids.length, 2);
  assert.ok(alive(helper));

  s.child.kill("SIGINT");
  const exit = await Promise.race([
    s.exited,
    new Promise<never>((_, rej) => setTimeout(() => rej(new Error("no exit within 10 s")), 10_000)),
  ]);
  assert.deepEqual(exit, { code: 0, signal: null }, s.stderr());
  for (const pid of pids) assert.ok(!alive(pid), `plugin ${pid} left behind`);
  await until(() => !alive(helper), 3000, "the stubborn plugin's helper to be gone");
  const stubborn = s.lines.find((l) => l.msg === "plugin stopped" && l.plugin === "stubborn");
  assert.match(String(stubborn?.exit), /did not exit within 300 ms/);
});

test("serve: a port already taken is an error (exit ≠ 0), and no plugin is left running", async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", r));
  const port = (blocker.address() as { port: number }).port;
  const pidfile = join(cwd, "taken.pids");
  try {
    const d = dir([{ id: "alpha", env: { FIXTURE_PIDFILE: pidfile } }]);
    const r = await run(["serve", "--plugins", d, "--listen", `127.0.0.1:${port}`]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /EADDRINUSE/);
    for (const pid of readFileSync(pidfile, "utf8").split("\n").filter(Boolean).map(Number)) {
      await until(() => !alive(pid), 3000, `plugin ${pid} to be gone`);
    }
  } finally {
    blocker.close();
  }
});

test("serve --nats to a server nobody runs: one plain line naming it, exit 1, and no plugin left running", async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const pidfile = join(cwd, "nats-down.pids");
  const d = dir([{ id: "alpha", env: { FIXTURE_PIDFILE: pidfile } }]);
  const r = await run(["serve", "--plugins", d, "--nats", `nats://127.0.0.1:${port}`, "--role", "host"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`portico: cannot connect to NATS at nats://127\\.0\\.0\\.1:${port}: .*Is nats-server running there`));
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  for (const pid of readFileSync(pidfile, "utf8").split("\n").filter(Boolean).map(Number)) {
    await until(() => !alive(pid), 3000, `plugin ${pid} to be gone`);
  }
});

test("--config: settings from portico.toml, flags override them", async () => {
  const base = mkdtempSync(join(tmpdir(), "portico-config-test-"));
  cleanups.push(() => rmSync(base, { recursive: true, force: true }));
  // plugins = "./plugins" is relative to the file, not to the working directory.
  const spec: PluginSpec = { id: "fromfile" };
  mkdirSync(join(base, "plugins", spec.id), { recursive: true });
  writeFileSync(join(base, "plugins", spec.id, "nexo-plugin.toml"), manifestText(spec));
  const filePort = await freePort();
  const file = join(base, "portico.toml");
  writeFileSync(
    file,
    `listen = "127.0.0.1:${filePort}"
plugins = "./plugins"
log_level = "warn"
reserved_prefixes = ["/internal"]

[limits]
timeout_seconds = 7
max_body_bytes = 1024
`,
  );

  const fromFile = await run(["routes", "--config", file]);
  assert.equal(fromFile.code, 0, fromFile.stderr);
  assert.match(fromFile.stdout, /^\/fromfile\s+fromfile\s+7s\b/m);
  assert.match(fromFile.stdout, /^\/internal\s+\(portico\)/m);

  const other = dir([{ id: "fromflag" }]);
  const overridden = await run(["routes", "--config", file, "--plugins", other]);
  assert.match(overridden.stdout, /^\/fromflag\s+fromflag\s+7s\b/m);
  assert.ok(!overridden.stdout.includes("/fromfile"));

  // serve: --listen beats the file's listen, --log-level info beats its "warn".
  const flagPort = await freePort();
  const s = await serve(["--config", file, "--listen", `127.0.0.1:${flagPort}`, "--log-level", "info"]);
  try {
    assert.ok(s.lines.some((l) => l.msg === `portico listening on http://127.0.0.1:${flagPort}`));
    const res = await fetch(`http://127.0.0.1:${flagPort}/fromfile/echo`, { method: "POST", body: "x".repeat(2000) });
    assert.equal(res.status, 413, "max_body_bytes from the file applies");
    assert.equal((await fetch(`http://127.0.0.1:${flagPort}/fromfile/echo`)).status, 200);
    await assert.rejects(fetch(`http://127.0.0.1:${filePort}/fromfile/echo`), "nothing on the file's port");
  } finally {
    s.child.kill("SIGTERM");
    assert.equal((await s.exited).code, 0);
  }

  // And the file's log level applies when no flag says otherwise: no info lines at all.
  const quietPort = await freePort();
  const quiet = spawn(process.execPath, [BIN, "serve", "--config", file, "--listen", `127.0.0.1:${quietPort}`], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(quiet);
  let out = "";
  quiet.stdout.on("data", (c) => (out += c));
  const quietExit = new Promise((r) => quiet.on("close", r));
  await until(
    async () =>
      await fetch(`http://127.0.0.1:${quietPort}/health`).then(
        (r) => r.ok,
        () => false,
      ),
    15_000,
    "quiet portico up",
  );
  quiet.kill("SIGTERM");
  await quietExit;
  running.delete(quiet);
  assert.ok(!out.includes('"level":30'), `no info lines at log_level = "warn":\n${out}`);
});

test("--config: [limits] timeout_seconds is the default only for routes whose manifest sets none", async () => {
  const file = join(cwd, "timeout.toml");
  writeFileSync(file, "[limits]\ntimeout_seconds = 7\n");
  const d = dir([{ id: "plain" }, { id: "own", http: "timeout_seconds = 3" }]);
  const r = await run(["routes", "--config", file, "--plugins", d]);
  assert.match(r.stdout, /^\/own\s+own\s+3s/m);
  assert.match(r.stdout, /^\/plain\s+plain\s+7s/m);
});

test("--config: the README's example portico.toml is accepted as it stands", async () => {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const example = /### portico\.toml[\s\S]*?```toml\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(example, "a toml block under ### portico.toml in the README");
  const file = join(cwd, "readme.toml");
  writeFileSync(file, example);
  const r = await run(["routes", "--config", file, "--plugins", dir([{ id: "alpha" }])]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^\/alpha\s+alpha\b/m);
});

test("a bad config file: exit 2, naming the file and the key", async () => {
  const cases: [string, RegExp][] = [
    ['[limits]\ntimeout_seconds = "soon"\n', /limits\.timeout_seconds/],
    ["listen = 8080\n", /\blisten\b.*fix:/],
    ["[supervisor]\nmax_crashes = 0\n", /supervisor\.max_crashes/],
    ['reserved_prefixes = ["internal"]\n', /reserved_prefixes.*"internal".*fix: .*"\/internal"/],
    ['lsiten = "127.0.0.1:9"\n', /\blsiten\b.*not a portico setting.*listen/],
    ["[limits\n", /fix: correct the TOML syntax/],
  ];
  for (const [text, expected] of cases) {
    const file = join(cwd, "bad.toml");
    writeFileSync(file, text);
    const d = dir([{ id: "alpha" }]);
    for (const command of [
      ["routes", "--plugins", d],
      ["serve", "--plugins", d, "--listen", "127.0.0.1:0"],
    ]) {
      const r = await run([...command, "--config", file]);
      assert.equal(r.code, 2, `${command[0]} with ${JSON.stringify(text)}: ${r.stdout}${r.stderr}`);
      assert.ok(r.stderr.includes(file), r.stderr);
      assert.match(r.stderr, expected);
    }
  }
  const missing = await run(["routes", "--config", join(cwd, "nope.toml")]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /nope\.toml/);
});

test("usage errors: unknown command, unknown flag, bad --listen or --log-level: exit 2 with usage", async () => {
  for (const args of [
    ["frobnicate"],
    ["serve", "--bogus"],
    ["serve", "--listen", "nowhere"],
    ["routes", "--log-level", "loud"],
    ["check"],
    [],
  ]) {
    const r = await run(args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stdout}${r.stderr}`);
    assert.match(r.stdout + r.stderr, /usage:\n\s+portico serve/);
  }
  const unknown = await run(["frobnicate"]);
  assert.match(unknown.stderr, /unknown command "frobnicate"/);
  const help = await run(["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /portico routes/);
});
