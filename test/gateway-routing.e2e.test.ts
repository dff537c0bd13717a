/**
 * End to end over real HTTP against real plugin processes: which requests reach which plugin
 * (longest prefix, whole segments), the daemon's reserved space (/health, /metrics, …), and
 * request-target normalization as it is seen on the wire (raw sockets: fetch would normalize).
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Echo, type Running, startPortico } from "./support/portico.js";
import { header, httpRequest, rawGet, rawRequest } from "./support/raw-http.js";

let p: Running;
before(async () => {
  p = await startPortico([
    { id: "api", prefix: "/api" },
    { id: "apiv1", prefix: "/api/v1" },
    { id: "alpha" },
    // Tries to shadow the daemon's /health with another spelling: must be refused at start.
    { id: "shadow", prefix: "/Health" },
  ]);
});
after(() => p?.close());

async function _getJson(path: string): Promise<{ status: number; body: unknown; type: string | null }> {
  const res = await fetch(`${p.url}${path}`);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, type: res.headers.get("content-type") };
}

/** What a plugin answered: the echo, or the fixture's own 404 (which names the plugin and path). */
async function echo(path: string): Promise<Echo> {
  const res = await fetch(`${p.url}${path}`);
  const body = (await res.json()) as Echo & { error?: string };
  if (res.status === 404) assert.match(body.error ?? "", /^fixture:/, `${path} should reach a plugin`);
  else assert.equal(res.status, 200, `${path} should reach a plugin`);
  return body;
}

/** portico's own 404: not a plugin's answer (the fixture's 404 body is different). */
async function assertPorticoNotFound(target: string): Promise<void> {
  const { responses } = await rawRequest(p.port, rawGet(target));
  const res = responses[0];
  assert.ok(res, `no response for ${target}`);
  assert.equal(res.statusLine, "HTTP/1.1 404 Not Found", target);
  assert.equal(res.body.toString(), '{"error":"not found"}', target);
  assert.equal(header(res, "content-type"), "application/json; charset=utf-8");
  assert.match(header(res, "x-request-id") ?? "", /^[0-9a-f-]{36}$/);
}

describe("routing", { timeout: 30_000 }, () => {
  test("longest prefix wins: /api/v1 over /api", async () => {
    for (const [path, id] of [
      ["/api/v1/echo", "apiv1"],
      ["/api/v1/echo/deeper/still", "apiv1"],
      ["/api/v2/echo", "api"],
      ["/api/echo", "api"],
    ] as const) {
      const body = await echo(path);
      assert.equal(body.id, id, path);
      assert.equal(body.path, path, "the plugin gets the full path, prefix included");
    }
  });

  test("the exact prefix and prefix + '/' both reach the plugin", async () => {
    for (const [path, id] of [
      ["/api", "api"],
      ["/api/", "api"],
      ["/api/v1", "apiv1"],
      ["/api/v1/", "apiv1"],
      ["/alpha", "alpha"],
      ["/alpha/", "alpha"],
    ] as const) {
      const body = await echo(path);
      assert.equal(body.id, id, path);
      assert.equal(body.path, path);
    }
  });

  test("whole segments only: /apiary and /alphabet are not /api or /alpha", async () => {
    await assertPorticoNotFound("/apiary");
    await assertPorticoNotFound("/apiary/echo");
    await assertPorticoNotFound("/alphabet");
    await assertPorticoNotFound("/ap");
    // /api/v10 is not under /api/v1, but it is under /api.
    assert.equal((await echo("/api/v10/echo")).id, "api");
    assert.equal((await echo("/api/v1x")).id, "api");
  });

  test("paths are case-sensitive for plugin prefixes", async () => {
    await assertPorticoNotFound("/ALPHA/echo");
    await assertPorticoNotFound("/Api/v1/echo");
  });

  test("no route: 404 with the JSON error body", async () => {
    const res = await httpRequest(`${p.url}/nothing/here`);
    assert.equal(res.status, 404);
    assert.equal(res.statusMessage, "Not Found");
    assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
    assert.equal(res.body.toString(), '{"error":"not found"}');
    assert.equal(res.headers["content-length"], String(res.body.length));
  });
});

describe("reserved space", { timeout: 30_000 }, () => {
  test("a plugin asking for another spelling of /health is refused, and the rest are served", () => {
    const refusal = p.portico.refused.find((r) => r.plugin === "shadow");
    assert.ok(refusal, "shadow should be refused");
    assert.match(refusal.reason, /reserved/);
    assert.equal(p.portico.plugins.has("shadow"), false);
  });

  test("/health is JSON with each plugin's state", async () => {
    const res = await httpRequest(`${p.url}/health`);
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
    assert.match(String(res.headers["x-request-id"]), /^[0-9a-f-]{36}$/, "health answers carry a request id too");
    const body = JSON.parse(res.body.toString()) as {
      status: string;
      plugins: { id: string; state: string; prefix: string; pid: number; restarts: number }[];
    };
    assert.equal(body.status, "ok");
    const byId = new Map(body.plugins.map((x) => [x.id, x]));
    assert.deepEqual([...byId.keys()].sort(), ["alpha", "api", "apiv1"]);
    for (const [id, prefix] of [
      ["alpha", "/alpha"],
      ["api", "/api"],
      ["apiv1", "/api/v1"],
    ] as const) {
      const s = byId.get(id);
      assert.equal(s?.state, "ready", id);
      assert.equal(s?.prefix, prefix);
      assert.equal(typeof s?.pid, "number");
      assert.equal(s?.restarts, 0);
    }
    // HEAD: same head, no body.
    const head = await httpRequest(`${p.url}/health`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  test("other spellings and sub-paths of reserved prefixes are never routed to a plugin", async () => {
    for (const t of [
      "/HEALTH",
      "/Health",
      "/Health/x",
      "/health/x",
      "/METRICS/x",
      "/admin",
      "/admin/x",
      "/Admin/plugins",
      "/pair",
      "/pair/x",
      "/.well-known/x",
      "/.Well-Known/acme",
    ]) {
      await assertPorticoNotFound(t);
    }
  });

  test("a reserved endpoint asked with the wrong method: 405 with Allow", async () => {
    const res = await httpRequest(`${p.url}/health`, { method: "POST", body: "x" });
    assert.equal(res.status, 405);
    assert.equal(res.statusMessage, "Method Not Allowed");
    assert.equal(res.headers.allow, "GET, HEAD");
    assert.equal(res.body.toString(), '{"error":"method not allowed"}');
    assert.ok(res.headers["x-request-id"]);
  });

  test("/metrics: Prometheus text with requests by plugin, route and status, latency, in-flight, restarts, states", async () => {
    // A status no other test here produces, so the count is exact.
    for (let i = 0; i < 3; i++) assert.equal((await fetch(`${p.url}/alpha/status/418`)).status, 418);
    // A request in flight while /metrics is read.
    const slow = fetch(`${p.url}/api/v1/sleep/600`);
    let during: Sample[] = [];
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      during = await metrics();
      if (value(during, "portico_requests_in_flight", { plugin: "apiv1" }) === 1) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(value(during, "portico_requests_in_flight", { plugin: "apiv1" }), 1, "one request in flight to apiv1");
    assert.equal((await slow).status, 200);

    const res = await fetch(`${p.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    for (const name of [
      "portico_requests_total",
      "portico_request_duration_seconds",
      "portico_requests_in_flight",
      "portico_plugin_restarts_total",
      "portico_plugin_state",
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), name);
    }
    const s = parseMetrics(text);
    assert.equal(value(s, "portico_requests_total", { plugin: "alpha", route: "/alpha", status: "418" }), 3);
    assert.ok((value(s, "portico_requests_total", { plugin: "apiv1", route: "/api/v1", status: "200" }) ?? 0) >= 1);
    assert.ok((value(s, "portico_requests_total", { plugin: "", route: "", status: "404" }) ?? 0) >= 1, "no-route 404s are counted");
    assert.equal(value(s, "portico_requests_in_flight", { plugin: "apiv1" }), 0);
    // Histogram: buckets, sum and count by plugin and route; the 600 ms request is over 0.5 s.
    const count = value(s, "portico_request_duration_seconds_count", { plugin: "apiv1", route: "/api/v1" }) ?? 0;
    assert.ok(count >= 1);
    assert.equal(value(s, "portico_request_duration_seconds_bucket", { plugin: "apiv1", route: "/api/v1", le: "+Inf" }), count);
    assert.ok((value(s, "portico_request_duration_seconds_bucket", { plugin: "apiv1", route: "/api/v1", le: "0.5" }) ?? Infinity) < count);
    assert.ok((value(s, "portico_request_duration_seconds_sum", { plugin: "apiv1", route: "/api/v1" }) ?? 0) >= 0.6);
    for (const id of ["alpha", "api", "apiv1"]) {
      assert.equal(value(s, "portico_plugin_restarts_total", { plugin: id }), 0, id);
      assert.equal(value(s, "portico_plugin_state", { plugin: id, state: "ready" }), 1, id);
      assert.equal(value(s, "portico_plugin_state", { plugin: id, state: "failed" }), 0, id);
    }
  });
});

describe("request-target normalization on the wire", { timeout: 30_000 }, () => {
  async function one(target: string, headers: string[] = []) {
    const { responses } = await rawRequest(p.port, rawGet(target, headers));
    const res = responses[0];
    assert.ok(res, `no response for ${JSON.stringify(target)}`);
    return res;
  }

  test("dot-segments, encoded or not, that climb into /health reach the daemon's health", async () => {
    for (const t of [
      "/alpha/../health",
      "/alpha/%2e%2e/health",
      "/alpha/%2E%2e/health",
      "/alpha/x/../../health",
      "/alpha/./../health",
      "//health",
      "/alpha/%2e%2e/%68ealth",
    ]) {
      const res = await one(t);
      assert.equal(res.status, 200, t);
      const body = JSON.parse(res.body.toString()) as { status: string; plugins: unknown[] };
      assert.equal(body.status, "ok", t);
      assert.ok(Array.isArray(body.plugins), t);
    }
    const metricsRes = await one("/api/v1/../../metrics");
    assert.equal(metricsRes.status, 200);
    assert.match(metricsRes.body.toString(), /portico_requests_total/);
  });

  test("extra slashes, '.' segments and encoded unreserved characters reach the plugin, normalized", async () => {
    for (const [t, id, path, query] of [
      ["//alpha//echo", "alpha", "/alpha/echo", ""],
      ["///alpha///echo///?q=1", "alpha", "/alpha/echo/", "q=1"],
      ["/alpha/./echo/.", "alpha", "/alpha/echo/", ""],
      ["/alpha/x/../echo", "alpha", "/alpha/echo", ""],
      ["/alpha/%65cho", "alpha", "/alpha/echo", ""],
      ["/%61lpha/echo", "alpha", "/alpha/echo", ""],
      ["/alpha/echo/%c3%a9%3a", "alpha", "/alpha/echo/%C3%A9%3A", ""],
      ["/alpha/echo/%252e%252e", "alpha", "/alpha/echo/%252e%252e", ""],
      ["/alpha/echo/..;/x", "alpha", "/alpha/echo/..;/x", ""],
      // A detour through another prefix ends where the path ends, not where it started.
      ["/api/v1/../echo", "api", "/api/echo", ""],
      ["/alpha/../api/v1/echo", "apiv1", "/api/v1/echo", ""],
      // absolute-form is reduced to its path.
      ["http://example.test/alpha/echo?x=1", "alpha", "/alpha/echo", "x=1"],
    ] as const) {
      const res = await one(t);
      assert.equal(res.status, 200, t);
      const body = JSON.parse(res.body.toString()) as Echo;
      assert.equal(body.id, id, t);
      assert.equal(body.path, path, t);
      assert.equal(body.query, query, t);
    }
  });

  test("the query reaches the plugin byte for byte", async () => {
    const res = await one("/alpha/echo?a=%2F..&b=%zz&c&a=%41&d=/../health&e=?");
    const body = JSON.parse(res.body.toString()) as Echo;
    assert.equal(body.path, "/alpha/echo");
    assert.equal(body.query, "a=%2F..&b=%zz&c&a=%41&d=/../health&e=?");
  });

  test("ambiguous or hostile targets get 400, never a plugin or the daemon's handlers", async () => {
    const targets = [
      "/alpha/..%2Fx",
      "/alpha/..%2fhealth",
      "/alpha/%2e%2e%2fhealth",
      "/alpha/a%5Cb",
      "/alpha\\..\\health",
      "/../x",
      "/alpha/../../x",
      "/alpha/%00",
      "/alpha/%1f",
      "/alpha/%7F",
      "/alpha/%zz",
      "/alpha/%2",
      "/alpha/a\x00b",
      "/alpha/a\x01b",
      "/alpha/a\x1fb",
      "/alpha/a\x7fb",
      "/alpha/\xe9",
      "/alpha/echo?x=\x00",
      "*",
      "alpha/echo",
      "ftp://host/alpha",
    ];
    const seenBefore = await seenByAlpha();
    for (const t of targets) {
      const res = await one(t);
      assert.equal(res.statusLine, "HTTP/1.1 400 Bad Request", JSON.stringify(t));
      assert.equal(res.body.toString(), '{"error":"bad request target"}', JSON.stringify(t));
      assert.equal(header(res, "content-type"), "application/json; charset=utf-8", JSON.stringify(t));
      assert.match(header(res, "x-request-id") ?? "", /^[0-9a-f-]{36}$/, JSON.stringify(t));
    }
    // Nothing of the above reached a plugin: alpha saw only the request asking what it saw, and
    // no request line for them names a plugin.
    assert.deepEqual((await seenByAlpha()).slice(seenBefore.length), ["/alpha/seen"]);
    const reached = p.logs.filter(
      (l) => l.msg === "request" && typeof l.path === "string" && l.plugin !== undefined && targets.includes(l.path),
    );
    assert.deepEqual(reached, []);
    // The daemon is fine afterwards.
    assert.equal((await echo("/alpha/echo")).id, "alpha");
  });
});

/** Every path the alpha plugin process has been asked for, in order (the fixture's /seen). */
async function seenByAlpha(): Promise<string[]> {
  return ((await (await fetch(`${p.url}/alpha/seen`)).json()) as { paths: string[] }).paths;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function metrics(): Promise<Sample[]> {
  return parseMetrics(await (await fetch(`${p.url}/metrics`)).text());
}

/** Prometheus text exposition → samples (comments skipped). */
function parseMetrics(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `bad metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: m[3] === "+Inf" ? Infinity : Number(m[3]) });
  }
  return out;
}

/** The value of the sample with exactly these labels. */
function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).sort();
  const hit = samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(want));
  return hit?.value;
}
