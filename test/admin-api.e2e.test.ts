/**
 * The admin API over plain HTTP on 127.0.0.1 (docs/admin.md): off unless enabled, its protection
 * (loopback only, or a bearer token), status and live figures, the event stream, restart and stop,
 * and one structured log line per plugin state change.
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { after, before, describe, test } from "node:test";
import type { TrafficFigures } from "../src/admin/live-stats.js";
import { defined } from "./support/assert.js";
import { alive, FAST_SUPERVISOR, type Running, startPortico, until } from "./support/portico.js";
import { httpRequest } from "./support/raw-http.js";

const TOKEN = "an-admin-token-for-the-tests-42";

interface View {
  id: string;
  state: string;
  prefix: string | null;
  protocol: number | null;
  pid: number | null;
  uptimeSeconds: number | null;
  restarts: number;
  inFlight: number;
  local: boolean;
  stderr: string[] | null;
  traffic: TrafficFigures;
}
interface Status {
  portico: { status: string; role: string; pid: number };
  plugins: View[];
}

async function json(url: string, options: Parameters<typeof httpRequest>[1] = {}) {
  const r = await httpRequest(url, options);
  return { status: r.status, headers: r.headers, body: JSON.parse(r.body.toString() || "null") };
}

/** The state-change lines of `plugin`, as "previous→state". */
function stateLines(p: Running, plugin: string, from = 0): string[] {
  return p.logs
    .slice(from)
    .filter((l) => l.plugin === plugin && l.previous !== undefined)
    .map((l) => `${l.previous}→${l.state}`);
}

/** An event stream reader: every `status` event parsed, kept in order. */
function follow(url: string, headers: Record<string, string> = {}) {
  const events: Status[] = [];
  let statusCode = 0;
  const req = request(url, { headers }, (res) => {
    statusCode = res.statusCode ?? 0;
    let buffer = "";
    res.on("data", (c: Buffer) => {
      buffer += c.toString();
      for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = block.split("\n").find((l) => l.startsWith("data: "));
        if (block.startsWith("event: status\n") && data) events.push(JSON.parse(data.slice(6)));
      }
    });
  });
  req.on("error", () => {});
  req.end();
  return { events, status: () => statusCode, close: () => req.destroy() };
}

describe("disabled (the default)", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([{ id: "alpha" }]);
  });
  after(() => p.close());

  test("/admin and everything under it is 404, like any unknown reserved path; /health is as before", async () => {
    for (const [method, path] of [
      ["GET", "/admin"],
      ["GET", "/admin/"],
      ["GET", "/admin/api/status"],
      ["GET", "/admin/api/events"],
      ["POST", "/admin/api/plugins/alpha/restart"],
    ] as const) {
      const r = await json(`${p.url}${path}`, { method });
      assert.equal(r.status, 404, path);
      assert.deepEqual(r.body, { error: "not found" });
      assert.equal(r.headers["content-type"], "application/json; charset=utf-8");
    }
    const health = await json(`${p.url}/health`);
    assert.deepEqual(Object.keys(health.body), ["status", "plugins"]);
    assert.deepEqual(Object.keys(health.body.plugins[0]).sort(), [
      "id",
      "inFlight",
      "lastExit",
      "nextAttemptAt",
      "pid",
      "prefix",
      "protocol",
      "restarts",
      "state",
    ]);
  });
});

describe("enabled, no token: loopback clients only", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([{ id: "alpha", env: { FIXTURE_STDERR: "alpha says hi" } }, { id: "beta" }], {
      admin: { enabled: true, token: undefined },
    });
  });
  after(() => p.close());

  test("status: every plugin with state, prefix, protocol, pid, uptime, restarts, in-flight, stderr", async () => {
    const r = await json(`${p.url}/admin/api/status`);
    assert.equal(r.status, 200);
    assert.equal(r.headers["cache-control"], "no-store");
    const s = r.body as Status;
    assert.equal(s.portico.status, "ok");
    assert.equal(s.portico.role, "embedded");
    assert.deepEqual(
      s.plugins.map((v) => v.id),
      ["alpha", "beta"],
    );
    const alpha = defined(
      s.plugins.find((v) => v.id === "alpha"),
      "alpha",
    );
    assert.equal(alpha.state, "ready");
    assert.equal(alpha.prefix, "/alpha");
    assert.equal(alpha.protocol, 1);
    assert.equal(alpha.pid, p.portico.plugins.get("alpha")?.status().pid);
    assert.equal(typeof alpha.uptimeSeconds, "number");
    assert.equal(alpha.restarts, 0);
    assert.equal(alpha.inFlight, 0);
    assert.equal(alpha.local, true);
    assert.deepEqual(alpha.stderr, ["alpha says hi"]);
    assert.equal(alpha.traffic.history.length, 60);
  });

  test("the page and its two files, with a strict content security policy", async () => {
    for (const [path, type] of <[string, string][]>[
      ["/admin", "text/html"],
      ["/admin/", "text/html"],
      ["/admin/admin.js", "text/javascript"],
      ["/admin/admin.css", "text/css"],
    ]) {
      const r = await httpRequest(`${p.url}${path}`);
      assert.equal(r.status, 200, path);
      assert.ok(r.headers["content-type"]?.startsWith(type), `${path}: ${r.headers["content-type"]}`);
      assert.match(String(r.headers["content-security-policy"]), /default-src 'none'; script-src 'self'/);
      assert.equal(r.headers["x-frame-options"], "DENY");
      assert.ok(r.body.length > 100);
    }
  });

  test("refused with 403: a proxy in between, a foreign Host (DNS rebinding), an action from another site", async () => {
    const before = p.portico.plugins.get("alpha")?.status().pid;
    for (const headers of <Record<string, string>[]>[
      { "X-Forwarded-For": "203.0.113.7" },
      { Forwarded: "for=203.0.113.7" },
      { "X-Real-IP": "203.0.113.7" },
      { Host: "evil.example" },
    ]) {
      const r = await json(`${p.url}/admin/api/status`, { headers });
      assert.equal(r.status, 403, JSON.stringify(headers));
      assert.deepEqual(r.body, { error: "forbidden" });
      assert.equal((await json(`${p.url}/admin`, { headers })).status, 403, "the page too");
    }
    const csrf = await json(`${p.url}/admin/api/plugins/alpha/restart`, { method: "POST", headers: { Origin: "http://evil.example" } });
    assert.equal(csrf.status, 403);
    assert.deepEqual(csrf.body, { error: "forbidden" });
    assert.equal(p.portico.plugins.get("alpha")?.status().pid, before, "not restarted");
    // localhost and [::1] spellings of loopback are fine.
    assert.equal((await json(`${p.url}/admin/api/status`, { headers: { Host: `localhost:${p.port}` } })).status, 200);
  });

  test("wrong method: 405 with Allow; unknown path or plugin: 404", async () => {
    const get = await json(`${p.url}/admin/api/plugins/alpha/restart`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.allow, "POST");
    assert.deepEqual(get.body, { error: "method not allowed" });
    const post = await json(`${p.url}/admin/api/status`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, "GET, HEAD");
    assert.equal((await json(`${p.url}/admin/nothing`)).status, 404);
    const unknown = await json(`${p.url}/admin/api/plugins/nope/restart`, { method: "POST" });
    assert.equal(unknown.status, 404);
    assert.deepEqual(unknown.body, { error: "not found" });
  });

  test("traffic figures: requests per second, error rate, p50/p99, a minute of history", async () => {
    const before = (await json(`${p.url}/admin/api/status`)).body.plugins[1].traffic.requests as number;
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${p.url}/beta/${i % 10 === 0 ? "status/500" : "echo"}`);
      await r.arrayBuffer();
    }
    let beta: View | undefined;
    await until(
      async () => {
        const s = (await json(`${p.url}/admin/api/status`)).body as Status;
        beta = s.plugins.find((v) => v.id === "beta");
        // The figures cover complete seconds: wait for the one with the traffic to end.
        return beta !== undefined && beta.traffic.history.reduce((a, b) => a + b, 0) === before + 20;
      },
      5000,
      "the traffic in beta's history",
    );
    const t = defined(beta, "beta").traffic;
    assert.equal(t.requests, before + 20);
    assert.equal(t.errors, 2);
    assert.equal(
      t.errorHistory.reduce((a, b) => a + b, 0),
      2,
    );
    assert.equal(t.rps, 2, "20 requests over a 10 s window");
    assert.equal(t.errorRate, 0.1);
    assert.ok(t.p50Ms !== null && t.p99Ms !== null && t.p50Ms > 0 && t.p50Ms <= t.p99Ms, JSON.stringify(t));
  });

  test("events: the status at once, then again by itself, and on a crash and its restart", async () => {
    const stream = follow(`${p.url}/admin/api/events`);
    try {
      await until(() => stream.events.length >= 1, 3000, "the first event");
      assert.equal(stream.status(), 200);
      assert.deepEqual(
        stream.events[0]?.plugins.map((v) => v.id),
        ["alpha", "beta"],
      );
      await until(() => stream.events.length >= 2, 3000, "a second event without asking");
      const r = await fetch(`${p.url}/beta/crash`);
      assert.equal(r.status, 502);
      const saw = (state: string) => stream.events.some((e) => e.plugins.some((v) => v.id === "beta" && v.state === state));
      await until(() => saw("restarting"), 5000, "beta restarting in the stream");
      await until(
        () => stream.events.some((e) => e.plugins.some((v) => v.id === "beta" && v.state === "ready" && v.restarts === 1)),
        5000,
        "beta back",
      );
    } finally {
      stream.close();
    }
  });

  test("stop, then restart: 503 while stopped, a new process after; one log line per state change", async () => {
    const mark = p.logs.length;
    const first = defined(p.portico.plugins.get("alpha")?.status().pid, "alpha's pid");
    const stop = await json(`${p.url}/admin/api/plugins/alpha/stop`, { method: "POST" });
    assert.equal(stop.status, 200);
    assert.equal(stop.body.action, "stop");
    assert.equal(stop.body.plugin.state, "stopped");
    assert.equal(stop.body.plugin.pid, null);
    assert.ok(!alive(first), "the process is gone");
    const refused = await json(`${p.url}/alpha/echo`);
    assert.equal(refused.status, 503);
    assert.deepEqual(refused.body, { error: "plugin unavailable" });
    // Same Origin as Host: the page's own button.
    const restart = await json(`${p.url}/admin/api/plugins/alpha/restart`, { method: "POST", headers: { Origin: p.url } });
    assert.equal(restart.status, 200);
    assert.equal(restart.body.plugin.state, "ready");
    assert.notEqual(restart.body.plugin.pid, first);
    assert.equal((await fetch(`${p.url}/alpha/echo`)).status, 200);
    assert.deepEqual(stateLines(p, "alpha", mark), ["ready→stopping", "stopping→stopped", "stopped→starting", "starting→ready"]);
    const line = p.logs.slice(mark).find((l) => l.plugin === "alpha" && l.state === "ready");
    assert.equal(line?.msg, "plugin state starting → ready");
    assert.equal(line?.pid, restart.body.plugin.pid);
    assert.ok(p.logs.slice(mark).some((l) => l.msg === "admin: stop alpha" && l.action === "stop"));
  });

  test("two restarts at once run one after the other: one process is left", async () => {
    const pids = new Set<number>();
    const [a, b] = await Promise.all([
      json(`${p.url}/admin/api/plugins/beta/restart`, { method: "POST" }),
      json(`${p.url}/admin/api/plugins/beta/restart`, { method: "POST" }),
    ]);
    for (const r of [a, b]) {
      assert.equal(r.status, 200);
      pids.add(r.body.plugin.pid);
    }
    const now = defined(p.portico.plugins.get("beta")?.status().pid, "beta's pid");
    assert.ok(pids.has(now));
    for (const pid of pids) if (pid !== now) await until(() => !alive(pid), 3000, `the earlier beta ${pid} to be gone`);
  });
});

describe("enabled with a token", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([{ id: "alpha" }], { admin: { enabled: true, token: TOKEN } });
  });
  after(() => p.close());

  test("the API wants the token from every client, loopback included: 401 with WWW-Authenticate", async () => {
    for (const [method, path] of [
      ["GET", "/admin/api/status"],
      ["GET", "/admin/api/events"],
      ["POST", "/admin/api/plugins/alpha/restart"],
    ] as const) {
      for (const auth of [undefined, "Bearer wrong-token-wrong-token", `Basic ${Buffer.from(`x:${TOKEN}`).toString("base64")}`, TOKEN]) {
        const r = await json(`${p.url}${path}`, { method, headers: auth ? { Authorization: auth } : {} });
        assert.equal(r.status, 401, `${path} with ${auth}`);
        assert.deepEqual(r.body, { error: "unauthorized" });
        assert.equal(r.headers["www-authenticate"], 'Bearer realm="portico admin"');
      }
    }
  });

  test("with the token: status, actions and events; the page itself needs none", async () => {
    const auth = { Authorization: `Bearer ${TOKEN}` };
    assert.equal((await json(`${p.url}/admin/api/status`, { headers: auth })).status, 200);
    assert.equal((await json(`${p.url}/admin/api/status`, { headers: { Authorization: `bearer ${TOKEN}` } })).status, 200);
    // With a token, a client behind a proxy is let in: the token is the proof.
    assert.equal((await json(`${p.url}/admin/api/status`, { headers: { ...auth, "X-Forwarded-For": "203.0.113.7" } })).status, 200);
    const r = await json(`${p.url}/admin/api/plugins/alpha/restart`, { method: "POST", headers: auth });
    assert.equal(r.status, 200);
    assert.equal(r.body.plugin.state, "ready");
    const stream = follow(`${p.url}/admin/api/events`, auth);
    try {
      await until(() => stream.events.length >= 1, 3000, "an event");
    } finally {
      stream.close();
    }
    assert.equal((await httpRequest(`${p.url}/admin`)).status, 200);
  });
});

test("shutting down ends open event streams: an open status page does not hold the daemon up", async () => {
  const p = await startPortico([{ id: "alpha" }], {
    admin: { enabled: true, token: undefined },
    supervisor: { ...FAST_SUPERVISOR, shutdownGraceMs: 10_000 },
  });
  let ended = false;
  const req = request(`${p.url}/admin/api/events`, (res) => {
    res.resume();
    res.on("end", () => (ended = true));
  });
  req.on("error", () => {});
  req.end();
  try {
    await until(() => p.portico.metrics.live.listenerCount("change") === 1, 3000, "the stream to open");
    const started = Date.now();
    await p.close();
    // Well within the 10 s grace period the daemon would otherwise wait for it.
    assert.ok(Date.now() - started < 5000, `closed in ${Date.now() - started} ms`);
    await until(() => ended, 3000, "the stream to end");
    assert.equal(p.portico.metrics.live.listenerCount("change"), 0);
  } finally {
    req.destroy();
    await p.close();
  }
});
