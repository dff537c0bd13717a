/**
 * Apps that bring their own HTTP server (`[capabilities.http_server]`, docs/own-server.md), end to
 * end: portico as its own process (`node bin/portico.js serve`, so its memory can be read apart
 * from this runner's) in front of the example app in examples/plugins/own-server-node, on a free
 * loopback port. Served under its prefix with SSE, a 256 MiB upload (and a download) in bounded
 * memory, a WebSocket echo; the bearer token reaches the app and a request without it is refused
 * by the app; a failed health check gets 503 and a restart, logged; 503 until it is healthy.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get as httpGet, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";
import { defined } from "./support/assert.js";
import { freePorts } from "./support/nats-server.js";
import { alive, pluginsDir, until } from "./support/portico.js";
import { MiB, memoryOf, sleep, within } from "./support/v2.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const APP = join(ROOT, "examples", "plugins", "own-server-node", "server.mjs");
const FAULTS = fileURLToPath(new URL("./fixtures/own-server-faults.mjs", import.meta.url));
/** Peak RSS allowed for the daemon while 256 MiB bodies pass through it: well under the body size. */
const RSS_LIMIT = 200 * MiB;
/** The app waits this long before it listens, so its "starting" state can be seen from outside. */
const STARTUP_DELAY_MS = 1000;

let daemon: ChildProcess;
let url = "";
let appPort = 0;
const lines: Record<string, unknown>[] = [];
const cleanups: (() => void)[] = [];

function appManifest(id: string, prefix: string, port: number, env: Record<string, string>, extra = ""): string {
  const envToml = Object.entries({ PORT: String(port), ...env })
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join(", ");
  return `[plugin]
id = "${id}"
version = "0.1.0"

[plugin.entrypoint]
command = ${JSON.stringify(process.execPath)}
args = [${JSON.stringify(APP)}]
env = { ${envToml} }

[plugin.http]
mount_prefix = "${prefix}"

[capabilities.http_server]
port = ${port}
token_env = "APP_TOKEN"
health_interval_seconds = 0.2
health_failures = 2
${extra}
`;
}

before(async () => {
  assert.ok(existsSync(join(ROOT, "dist", "cli", "main.js")), "dist/ is missing: run npm run build");
  const [port, deadPort, faultsPort] = await freePorts(3);
  appPort = defined(port, "a free port");
  const plugins = pluginsDir([
    { id: "web", manifest: appManifest("web", "/app", appPort, { STARTUP_DELAY_MS: String(STARTUP_DELAY_MS) }) },
    // Exits at once: never healthy.
    {
      id: "doomed",
      manifest: appManifest("doomed", "/doomed", defined(deadPort, "a free port"), {}).replace(
        `args = [${JSON.stringify(APP)}]`,
        'args = ["-e", "process.exit(3)"]',
      ),
    },
    {
      id: "faults",
      manifest: appManifest("faults", "/faults", defined(faultsPort, "a free port"), {})
        .replace(`args = [${JSON.stringify(APP)}]`, `args = [${JSON.stringify(FAULTS)}]`)
        .replace('mount_prefix = "/faults"', 'mount_prefix = "/faults"\ntimeout_seconds = 1'),
    },
  ]);
  cleanups.push(plugins.cleanup);
  const cwd = mkdtempSync(join(tmpdir(), "portico-own-server-"));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  const config = join(cwd, "portico.toml");
  writeFileSync(config, "[supervisor]\nrestart_delay_ms = 50\nrestart_max_delay_ms = 200\nshutdown_grace_ms = 2000\n");
  daemon = spawn(
    process.execPath,
    [join(ROOT, "bin", "portico.js"), "serve", "--plugins", plugins.dir, "--listen", "127.0.0.1:0", "--config", config],
    { cwd, stdio: ["ignore", "pipe", "inherit"] },
  );
  let rest = "";
  defined(daemon.stdout, "the daemon's stdout")
    .setEncoding("utf8")
    .on("data", (chunk: string) => {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      for (const l of parts) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
    });
  await until(
    () => lines.some((l) => String(l.msg).startsWith("portico listening on ")) || daemon.exitCode !== null,
    20_000,
    "portico to listen",
  );
  const listening = lines.find((l) => String(l.msg).startsWith("portico listening on "));
  assert.ok(listening, `portico did not start: ${JSON.stringify(lines)}`);
  url = String(listening.msg).slice("portico listening on ".length);
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const closed = new Promise((r) => daemon.once("close", r));
    daemon.kill("SIGTERM");
    const timer = setTimeout(() => daemon.kill("SIGKILL"), 5000);
    await closed;
    clearTimeout(timer);
  }
  for (const c of cleanups) c();
});

interface PluginHealth {
  id: string;
  state: string;
  pid: number | null;
  restarts: number;
  protocol: unknown;
  lastExit: string | null;
}

async function health(id: string): Promise<PluginHealth> {
  const body = (await (await fetch(`${url}/health`)).json()) as { plugins: PluginHealth[] };
  return defined(
    body.plugins.find((p) => p.id === id),
    `${id} in /health`,
  );
}

/** The token portico put in the app's environment (same user: /proc/PID/environ is readable). */
function tokenOf(pid: number): string {
  const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
  const entry = defined(
    env.find((e) => e.startsWith("APP_TOKEN=")),
    "APP_TOKEN in the app's environment",
  );
  return entry.slice("APP_TOKEN=".length);
}

test("served under its prefix: full path, forwarded headers, /health shows it as protocol http", async () => {
  const res = await fetch(`${url}/app/json?x=1`, { headers: { "X-Request-Id": "own-server-1" } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-request-id"), "own-server-1");
  const body = (await res.json()) as Record<string, unknown>;
  assert.equal(body.app, "own_server_node");
  assert.equal(body.url, "/app/json?x=1");
  assert.equal(body.prefix, "/app");
  assert.equal(body.forwardedFor, "127.0.0.1");
  assert.equal(body.requestId, "own-server-1");
  const h = await health("web");
  assert.equal(h.state, "ready");
  assert.equal(h.protocol, "http");
  assert.equal(h.pid, body.pid);
  // The app's own 404 passes through as it is.
  assert.equal((await fetch(`${url}/app/nothing-here`)).status, 404);
});

test("the bearer token reaches the app; the client's Authorization is moved aside; without the token the app refuses", async () => {
  const res = await fetch(`${url}/app/json`, { headers: { Authorization: "Basic dXNlcjpwdw==" } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { pid: number; clientAuthorization: string | null };
  assert.equal(body.clientAuthorization, "Basic dXNlcjpwdw==");
  // A client can't make one up: X-Forwarded-Authorization is portico's to say.
  const spoof = await fetch(`${url}/app/json`, { headers: { "X-Forwarded-Authorization": "Bearer made-up" } });
  assert.equal(((await spoof.json()) as { clientAuthorization: string | null }).clientAuthorization, null);
  const token = tokenOf(body.pid);
  assert.match(token, /^[A-Za-z0-9_-]{43}$/, "32 random bytes, base64url");
  // Straight to the app's port: refused without portico's token, or with the client's own header.
  const direct = `http://127.0.0.1:${appPort}/json`;
  assert.equal((await fetch(direct)).status, 401);
  assert.equal((await fetch(direct, { headers: { Authorization: "Basic dXNlcjpwdw==" } })).status, 401);
  assert.equal((await fetch(direct, { headers: { Authorization: "Bearer wrong" } })).status, 401);
  // With it, the app answers: what portico adds to each request is exactly this token.
  assert.equal((await fetch(direct, { headers: { Authorization: `Bearer ${token}` } })).status, 200);
});

test("server-sent events arrive one by one", async () => {
  const res = await fetch(`${url}/app/events?n=3&interval_ms=400`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  const reader = defined(res.body, "a body").getReader();
  const arrivals: { at: number; text: string }[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    arrivals.push({ at: Date.now(), text: Buffer.from(value).toString() });
  }
  const text = arrivals.map((a) => a.text).join("");
  const events = [...text.matchAll(/data: (\{.*\})/g)].map((m) => JSON.parse(m[1] as string) as { n: number; at: number });
  assert.deepEqual(
    events.map((e) => e.n),
    [0, 1, 2],
  );
  // The first event reached us before the app had even written the last one: nothing buffered it.
  const first = defined(arrivals[0], "a first read");
  assert.ok(first.text.includes('"n":0'));
  assert.ok(first.at < defined(events[2], "event 2").at, `first event at ${first.at}, last written at ${events[2]?.at}`);
});

test("a 256 MiB upload and a 64 MiB download stream through in bounded memory", async (t) => {
  const total = 256 * MiB;
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
  const hash = createHash("sha256");
  for (let i = 0; i < total / MiB; i++) hash.update(chunk);
  const answer = await within(
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${url}/app/upload`,
        { method: "POST", agent: false, headers: { "Content-Type": "application/octet-stream", "Content-Length": total } },
        (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => {
            body += c;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      let sent = 0;
      const pump = () => {
        while (sent < total) {
          sent += chunk.length;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    }),
    "the upload",
    60_000,
  );
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), { bytes: total, sha256: hash.digest("hex") });

  const down = 64 * MiB;
  const download = await within(
    new Promise<{ status: number; length: string | undefined; received: number }>((resolve, reject) => {
      httpGet(`${url}/app/download?bytes=${down}`, { agent: false }, (res) => {
        let received = 0;
        res.on("data", (piece: Buffer) => {
          received += piece.length;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, length: res.headers["content-length"], received }));
        res.on("error", reject);
      }).on("error", reject);
    }),
    "the download",
    60_000,
  );
  assert.deepEqual(download, { status: 200, length: String(down), received: down });

  const daemonMemory = memoryOf(defined(daemon.pid, "the daemon's pid"));
  t.diagnostic(`portico's peak RSS ${(daemonMemory.hwm / MiB).toFixed(1)} MiB, now ${(daemonMemory.rss / MiB).toFixed(1)} MiB`);
  assert.ok(daemonMemory.hwm < RSS_LIMIT, `portico's peak RSS ${(daemonMemory.hwm / MiB).toFixed(1)} MiB`);
});

test("a WebSocket is proxied to the app: text and binary echo, then a clean close", async () => {
  const ws = new WebSocket(`${url.replace("http", "ws")}/app/ws`, ["chat", "superchat"]);
  const got: { data: Buffer; binary: boolean }[] = [];
  ws.on("message", (data: Buffer, binary: boolean) => got.push({ data, binary }));
  await within(new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject)), "the WebSocket to open");
  // The app (ws's default) chose the first subprotocol offered; the client is told so.
  assert.equal(ws.protocol, "chat");
  const big = Buffer.alloc(MiB, 7);
  ws.send("hello");
  ws.send(big);
  await until(() => got.length === 2, 10_000, "two echoes");
  assert.deepEqual(got[0], { data: Buffer.from("hello"), binary: false });
  assert.equal(got[1]?.binary, true);
  assert.ok(got[1]?.data.equals(big));
  const closed = new Promise<[number, string]>((resolve) => ws.once("close", (code, reason) => resolve([code, String(reason)])));
  ws.close(1000, "bye");
  assert.deepEqual(await within(closed, "the close"), [1000, "bye"]);
  // Anything but /ws is refused by the app with its own 404, which the client sees.
  const refused = new WebSocket(`${url.replace("http", "ws")}/app/not-a-socket`);
  const status = await within(
    new Promise<number>((resolve) => refused.once("unexpected-response", (_req, r) => resolve(r.statusCode ?? 0))),
    "the refusal",
  );
  assert.equal(status, 404);
});

test("failing its health check: killed, 503 while it restarts (until healthy again), logged", async () => {
  const before = await health("web");
  const oldPid = defined(before.pid, "the app's pid");
  const oldToken = tokenOf(oldPid);
  assert.equal((await fetch(`${url}/app/sick`, { method: "POST" })).status, 200);
  // Two failed checks 0.2 s apart, then killed and started again; it listens only after STARTUP_DELAY_MS.
  let starting: PluginHealth | undefined;
  await until(
    async () => {
      const h = await health("web");
      if (h.state === "starting" && h.pid !== null && h.pid !== oldPid) starting = h;
      return starting !== undefined;
    },
    10_000,
    "the app to be restarted",
  );
  const pid = defined(starting?.pid, "the new pid");
  assert.ok(alive(pid), "the new process runs");
  assert.ok(!alive(oldPid), "the old one is gone");
  // Spawned but not healthy yet (not listening): portico answers for it.
  const early = await fetch(`${url}/app/pid`);
  assert.equal(early.status, 503);
  assert.ok(Number(early.headers.get("retry-after")) >= 1);
  assert.deepEqual(await early.json(), { error: "plugin unavailable" });
  await until(async () => (await fetch(`${url}/app/pid`)).status === 200, 10_000, "the app to be served again");
  const after = await health("web");
  assert.equal(after.state, "ready");
  assert.equal(after.pid, pid);
  assert.equal(after.restarts, before.restarts + 1);
  assert.match(String(after.lastExit), /^health check failed 2 times in a row \(GET \/healthz answered 500\)$/);
  assert.notEqual(tokenOf(pid), oldToken, "a fresh token for each start");
  assert.ok(lines.some((l) => l.plugin === "web" && l.msg === "app health check failed" && l.failures === 1));
  assert.ok(lines.some((l) => l.plugin === "web" && String(l.msg).startsWith("app health check failed 2 times in a row")));
  assert.ok(
    lines.some((l) => l.plugin === "web" && l.msg === "plugin exited; restarting" && String(l.exit).startsWith("health check failed")),
  );
});

test("an app that drops the connection, cuts its body short, or never answers: 502, a cut response, 504", async () => {
  const reset = await fetch(`${url}/faults/reset`);
  assert.equal(reset.status, 502);
  assert.deepEqual(await reset.json(), { error: "app closed the connection" });
  const posted = await fetch(`${url}/faults/reset`, { method: "POST", body: "once" });
  assert.equal(posted.status, 502);
  assert.deepEqual(await posted.json(), { error: "app closed the connection" });
  // The GET was tried twice (a lost connection before any answer may be a kept-alive one the app
  // closed just then); the POST, not idempotent, once.
  assert.deepEqual(await (await fetch(`${url}/faults/dropped`)).json(), { "/faults/reset": 3 });

  const short = await within(
    new Promise<{ status: number; complete: boolean; bytes: number }>((resolve, reject) => {
      httpGet(`${url}/faults/short`, { agent: false }, (res) => {
        let bytes = 0;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
        });
        // The client sees fewer bytes than announced: an incomplete answer, not a short one passed off as whole.
        res.on("error", () => resolve({ status: res.statusCode ?? 0, complete: res.complete, bytes }));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, complete: res.complete, bytes }));
      }).on("error", reject);
    }),
    "the short body",
  );
  assert.deepEqual(short, { status: 200, complete: false, bytes: 10 });

  const slow = await fetch(`${url}/faults/slow`);
  assert.equal(slow.status, 504);
  assert.deepEqual(await slow.json(), { error: "plugin gateway timeout" });
  // portico gave up on it and said so to the app: the request was aborted there too.
  await until(
    async () => ((await (await fetch(`${url}/faults/aborted`)).json()) as { aborted: number }).aborted === 1,
    5000,
    "the abort to reach the app",
  );
});

test("a GET whose connection the app drops before answering is sent once more, on a new connection", async () => {
  const res = await fetch(`${url}/faults/reset-once`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "answered after 1 drop");
});

test("an app that stops listening: 502 app unreachable, then its health fails and it is restarted", async () => {
  const pid = defined((await health("faults")).pid, "the pid");
  assert.equal((await fetch(`${url}/faults/unlisten`)).status, 200);
  const refused = await fetch(`${url}/faults/x`);
  assert.equal(refused.status, 502);
  assert.deepEqual(await refused.json(), { error: "app unreachable" });
  // A liveness wait, not a speed check: the kill's grace period and a new node process under a
  // loaded test run can take several seconds.
  await until(async () => (await health("faults")).pid !== pid && (await fetch(`${url}/faults/x`)).status === 200, 30_000, "a restart");
  assert.match(String((await health("faults")).lastExit), /^health check failed 2 times in a row \(GET \/healthz failed: ECONNREFUSED/);
});

test("an app that exits before it is healthy is restarted, then given up on, and says why", async () => {
  await until(async () => (await health("doomed")).state === "failed", 15_000, "the doomed app to be given up on");
  const h = await health("doomed");
  assert.equal(h.lastExit, "exited before its health check passed (exited with code 3)");
  const res = await fetch(`${url}/doomed/x`);
  assert.equal(res.status, 503);
  await sleep(0);
});
