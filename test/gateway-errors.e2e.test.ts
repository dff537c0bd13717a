/**
 * End to end over real HTTP against real plugin processes: every way an exchange can fail, with
 * the exact status, reason phrase and body the client sees; reply shapes nexo SDKs send; noise on
 * a plugin's stdout; many requests in flight; one plugin's crash not touching another's requests.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FAST_SUPERVISOR, type Running, startPortico, until } from "./support/portico.js";
import { header, httpRequest, rawGet, rawRequest } from "./support/raw-http.js";

const JSON_TYPE = "application/json; charset=utf-8";

let p: Running;
before(async () => {
  p = await startPortico([
    { id: "alpha" },
    { id: "slow", http: "timeout_seconds = 0.5" },
    { id: "small", http: "max_body_bytes = 1024" },
    { id: "broken", env: { FIXTURE_INIT: "exit" } },
  ]);
});
after(() => p?.close());

/** Asserts an error answer: status line (reason phrase), exact body, JSON type, request id. */
async function assertError(port: number, target: string, statusLine: string, body: string, method = "GET") {
  const { responses } = await rawRequest(port, rawGet(target, [], method));
  const res = responses[0];
  assert.ok(res, `no response for ${target}`);
  assert.equal(res.statusLine, statusLine, target);
  assert.equal(res.body.toString(), body, target);
  assert.equal(header(res, "content-type"), JSON_TYPE, target);
  assert.equal(header(res, "content-length"), String(Buffer.byteLength(body)), target);
  assert.ok(header(res, "x-request-id"), target);
  return res;
}

interface Health {
  status: string;
  plugins: { id: string; state: string; restarts: number; lastExit: string | null; nextAttemptAt: string | null }[];
}

async function health(r: Running): Promise<Health> {
  return (await (await fetch(`${r.url}/health`)).json()) as Health;
}

async function stateOf(r: Running, id: string): Promise<string | undefined> {
  return (await health(r)).plugins.find((x) => x.id === id)?.state;
}

describe("error statuses and bodies", { timeout: 30_000 }, () => {
  test("no route: 404 Not Found", async () => {
    await assertError(p.port, "/missing", "HTTP/1.1 404 Not Found", '{"error":"not found"}');
  });

  test("a plugin that failed to start: 503 Service Unavailable with Retry-After, until it is given up on", async () => {
    const res = await assertError(p.port, "/broken/echo", "HTTP/1.1 503 Service Unavailable", '{"error":"plugin unavailable"}');
    assert.match(header(res, "retry-after") ?? "", /^[1-9]\d*$/);
    // It keeps crashing before `initialize`; after maxCrashes it is left `failed`, still a 503.
    await until(async () => (await stateOf(p, "broken")) === "failed", 15_000, "broken to be failed");
    const failed = await assertError(p.port, "/broken/echo", "HTTP/1.1 503 Service Unavailable", '{"error":"plugin unavailable"}');
    assert.ok(Number(header(failed, "retry-after")) >= 1);
    const h = await health(p);
    assert.equal(h.status, "degraded");
    assert.match(h.plugins.find((x) => x.id === "broken")?.lastExit ?? "", /code 7/);
    assert.ok(p.logs.some((l) => l.plugin === "broken" && String(l.msg).includes("failed to start")));
    // The others are unaffected.
    assert.equal((await fetch(`${p.url}/alpha/echo`)).status, 200);
  });

  test("timeout: 504 Gateway Timeout with the seed's body, after the route's timeout_seconds (a float)", async () => {
    const started = Date.now();
    const res = await httpRequest(`${p.url}/slow/never`);
    const elapsed = Date.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.statusMessage, "Gateway Timeout");
    assert.equal(res.headers["content-type"], JSON_TYPE);
    assert.equal(res.body.toString(), '{"error":"plugin gateway timeout"}');
    assert.ok(elapsed >= 450 && elapsed < 3000, `timed out after ${elapsed} ms, expected about 500`);
    const raw = await assertError(p.port, "/slow/never", "HTTP/1.1 504 Gateway Timeout", '{"error":"plugin gateway timeout"}');
    assert.equal(header(raw, "retry-after"), undefined);
    // Within the timeout the same route answers.
    assert.equal((await fetch(`${p.url}/slow/sleep/100`)).status, 200);
  });

  test("a reply arriving after the timeout is dropped, and the plugin keeps serving", async () => {
    const late = await httpRequest(`${p.url}/slow/sleep/800?late=1`);
    assert.equal(late.status, 504);
    // Let the late reply arrive while other requests are in flight: each gets its own answer.
    const others = await Promise.all([150, 300, 450].map((ms) => httpRequest(`${p.url}/slow/sleep/${ms}?ms=${ms}`)));
    others.forEach((r, i) => {
      assert.equal(r.status, 200);
      assert.equal((JSON.parse(r.body.toString()) as { query: string }).query, `ms=${[150, 300, 450][i]}`);
    });
    const s = p.portico.plugins.get("slow")?.status();
    assert.equal(s?.state, "ready");
    assert.equal(s?.inFlight, 0, "the timed-out exchange is forgotten");
  });

  test("malformed replies: 502 Bad Gateway with the seed's body, for each kind", async () => {
    // Through the 0.5 s route: a malformed reply mistaken for no reply would show as a 504.
    for (const kind of [
      "status",
      "status-low",
      "status-string",
      "header-name",
      "header-value",
      "headers-shape",
      "base64",
      "no-status",
      "payload",
      "no-event",
      "event-string",
    ]) {
      const res = await httpRequest(`${p.url}/slow/bad/${kind}`);
      assert.equal(res.status, 502, kind);
      assert.equal(res.statusMessage, "Bad Gateway", kind);
      assert.equal(res.headers["content-type"], JSON_TYPE, kind);
      assert.equal(res.body.toString(), '{"error":"plugin reply malformed"}', kind);
      assert.equal(res.headers.injected, undefined, kind);
    }
    // A 1xx cannot end an exchange either.
    for (const s of [100, 101, 199]) assert.equal((await fetch(`${p.url}/alpha/status/${s}`)).status, 502, String(s));
    await assertError(p.port, "/alpha/bad/header-value", "HTTP/1.1 502 Bad Gateway", '{"error":"plugin reply malformed"}');
    // The plugin is still fine.
    assert.equal((await fetch(`${p.url}/alpha/echo`)).status, 200);
    assert.equal(p.portico.plugins.get("alpha")?.state, "ready");
  });

  test("body over max_body_bytes by Content-Length: 413 before the body is read, connection closed", async () => {
    // Only the head is sent: the answer must not wait for a body.
    const head = rawGet("/small/echo", ["Content-Length: 2000", "Content-Type: application/octet-stream"], "POST");
    const { responses, closed } = await rawRequest(p.port, head, { waitClose: true, timeoutMs: 3000 });
    const res = responses[0];
    assert.ok(res, "413 must come without the body being sent");
    assert.equal(res.statusLine, "HTTP/1.1 413 Payload Too Large");
    assert.equal(res.body.toString(), '{"error":"request body too large"}');
    assert.equal(header(res, "connection"), "close");
    assert.ok(header(res, "x-request-id"));
    assert.equal(closed, true);
    // The limit is inclusive.
    const exact = await fetch(`${p.url}/small/echo`, { method: "POST", body: Buffer.alloc(1024, 1) });
    assert.equal(exact.status, 200);
    assert.equal(Buffer.from(((await exact.json()) as { body_base64: string }).body_base64, "base64").length, 1024);
    const over = await httpRequest(`${p.url}/small/echo`, { method: "POST", body: Buffer.alloc(1025, 1) });
    assert.equal(over.status, 413);
    assert.equal(over.statusMessage, "Payload Too Large");
  });

  test("413 when the client sends the whole oversized body at once, and for the daemon's default limit", async () => {
    // What curl -d @file does: no Expect, the body follows the head right away.
    const res = await fetch(`${p.url}/small/echo`, { method: "POST", body: Buffer.alloc(5 * 1024 * 1024, 1) });
    assert.equal(res.status, 413);
    assert.equal(await res.text(), '{"error":"request body too large"}');
    // alpha sets no max_body_bytes: the default (16 MiB) applies.
    const head = rawGet("/alpha/echo", [`Content-Length: ${16 * 1024 * 1024 + 1}`], "POST");
    const big = await rawRequest(p.port, head, { timeoutMs: 3000 });
    assert.equal(big.responses[0]?.statusLine, "HTTP/1.1 413 Payload Too Large");
  });

  test("chunked body over max_body_bytes: 413 while reading, and the daemon stays healthy", async () => {
    const chunk = (n: number) => `${n.toString(16)}\r\n${"x".repeat(n)}\r\n`;
    const head = rawGet("/small/echo", ["Transfer-Encoding: chunked"], "POST");
    // Over the limit in the third chunk; the body never ends (no 0-chunk): portico must not wait.
    const { responses, closed } = await rawRequest(p.port, head + chunk(500) + chunk(500), {
      more: [chunk(500), chunk(500)],
      gapMs: 50,
      waitClose: true,
      timeoutMs: 3000,
    });
    const res = responses[0];
    assert.ok(res, "a 413 for the chunked body");
    assert.equal(res.statusLine, "HTTP/1.1 413 Payload Too Large");
    assert.equal(res.body.toString(), '{"error":"request body too large"}');
    assert.equal(closed, true, "the rest of the body is not read: the connection is closed");
    // A chunked body within the limit still passes.
    const okRes = await rawRequest(p.port, `${head + chunk(512) + chunk(512)}0\r\n\r\n`);
    assert.equal(okRes.responses[0]?.status, 200);
    // Healthy afterwards: the plugin never saw the oversized requests and everything answers.
    assert.equal((await health(p)).plugins.find((x) => x.id === "small")?.state, "ready");
    assert.equal(p.portico.plugins.get("small")?.status().inFlight, 0);
    assert.equal((await fetch(`${p.url}/small/echo`, { method: "POST", body: "tiny" })).status, 200);
  });
});

describe("reply shapes and stdout noise", { timeout: 30_000 }, () => {
  test("a thin Event reply (topic, source, payload only) is accepted", async () => {
    const res = await fetch(`${p.url}/alpha/thin`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { thin: true });
  });

  test("a bare reply (no Message layer) is accepted", async () => {
    const res = await fetch(`${p.url}/alpha/bare`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { bare: true });
  });

  test("garbage lines on stdout are skipped and logged; the request still succeeds", async () => {
    const before = p.logs.length;
    const res = await fetch(`${p.url}/alpha/garbage`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { ok: true });
    const fresh = () => p.logs.slice(before).filter((l) => l.plugin === "alpha" && typeof l.line === "string");
    await until(() => fresh().length >= 3, 2000, "garbage lines logged");
    const lines = fresh().map((l) => l.line);
    assert.ok(lines.includes("this is not json"), JSON.stringify(lines));
    assert.ok(lines.includes("[1,2,3]"), JSON.stringify(lines));
    assert.ok(lines.includes('{"jsonrpc":"1.0"}'), JSON.stringify(lines));
    assert.ok(
      fresh().every((l) => Number(l.level) >= 40),
      "logged as warnings",
    );
    assert.equal(p.portico.plugins.get("alpha")?.state, "ready");
  });

  test("a plugin's JSON-RPC request to the host gets error -32601", async () => {
    const res = await fetch(`${p.url}/alpha/call`);
    assert.equal(res.status, 200);
    const answer = (await res.json()) as { jsonrpc: string; id: number; error?: { code: number; message: string }; result?: unknown };
    assert.equal(answer.jsonrpc, "2.0");
    assert.equal(typeof answer.id, "number");
    assert.equal(answer.error?.code, -32601);
    assert.match(answer.error?.message ?? "", /memory\.recall/);
    assert.equal(answer.result, undefined);
  });
});

describe("concurrency", { timeout: 30_000 }, () => {
  test("200 concurrent requests with random delays each get their own reply", async () => {
    const n = 200;
    const tags = Array.from({ length: n }, (_, i) => `n=${i}&r=${Math.random().toString(36).slice(2)}`);
    const delays = tags.map(() => Math.floor(Math.random() * 300));
    let peak = 0;
    const sampler = setInterval(() => {
      peak = Math.max(peak, p.portico.plugins.get("alpha")?.status().inFlight ?? 0);
    }, 5);
    const started = Date.now();
    try {
      const results = await Promise.all(
        tags.map(async (tag, i) => {
          const res = await fetch(`${p.url}/alpha/sleep/${delays[i]}?${tag}`);
          return { status: res.status, body: (await res.json()) as { slept: number; query: string } };
        }),
      );
      results.forEach((r, i) => {
        assert.equal(r.status, 200, `request ${i}`);
        assert.equal(r.body.query, tags[i], `request ${i} got another request's reply`);
        assert.equal(r.body.slept, delays[i]);
      });
    } finally {
      clearInterval(sampler);
    }
    const elapsed = Date.now() - started;
    // One at a time would take the sum of the delays (~30 s).
    assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
    assert.ok(peak > 10, `expected many exchanges in flight at once, peak was ${peak}`);
    assert.equal(p.portico.plugins.get("alpha")?.status().inFlight, 0);
  });
});

describe("overload", { timeout: 30_000 }, () => {
  let o: Running;
  before(async () => {
    o = await startPortico([{ id: "alpha" }], { maxInFlight: 3 });
  });
  after(() => o?.close());

  test("over max_in_flight exchanges for one plugin: 503 + Retry-After, and served again once they finish", async () => {
    const busy = [0, 1, 2].map((i) => httpRequest(`${o.url}/alpha/sleep/800?i=${i}`));
    await until(() => (o.portico.plugins.get("alpha")?.status().inFlight ?? 0) === 3, 2000, "three in flight");
    const res = await assertError(o.port, "/alpha/echo", "HTTP/1.1 503 Service Unavailable", '{"error":"plugin overloaded"}');
    assert.equal(header(res, "retry-after"), "1");
    for (const r of await Promise.all(busy)) assert.equal(r.status, 200);
    assert.equal((await fetch(`${o.url}/alpha/echo`)).status, 200);
  });
});

describe("crash and restart", { timeout: 30_000 }, () => {
  let c: Running;
  before(async () => {
    // A restart delay long enough (0.5–1.5 s with jitter) to see the `restarting` state from a client.
    c = await startPortico([{ id: "crashy" }, { id: "bystander" }], {
      supervisor: { ...FAST_SUPERVISOR, restartDelayMs: 1000, restartMaxDelayMs: 1000 },
    });
  });
  after(() => c?.close());

  test("a plugin crashing mid-request: 502, then 503 + Retry-After while it restarts, then served again", async () => {
    const inFlight = httpRequest(`${c.url}/crashy/sleep/2000?doomed=1`);
    await until(() => (c.portico.plugins.get("crashy")?.status().inFlight ?? 0) === 1, 2000, "the sleep to be in flight");
    const crash = await httpRequest(`${c.url}/crashy/crash`);
    assert.equal(crash.status, 502);
    assert.equal(crash.statusMessage, "Bad Gateway");
    assert.equal(crash.headers["content-type"], JSON_TYPE);
    assert.deepEqual(JSON.parse(crash.body.toString()), { error: "plugin exited before replying" });
    // Every exchange in flight on the dead process fails the same way, at once.
    const doomed = await inFlight;
    assert.equal(doomed.status, 502);

    const res = await assertError(c.port, "/crashy/echo", "HTTP/1.1 503 Service Unavailable", '{"error":"plugin unavailable"}');
    assert.match(header(res, "retry-after") ?? "", /^[12]$/);
    const h = await health(c);
    const s = h.plugins.find((x) => x.id === "crashy");
    assert.equal(s?.state, "restarting");
    assert.match(s?.lastExit ?? "", /code 3/);
    assert.ok(s?.nextAttemptAt && Date.parse(s.nextAttemptAt) > Date.now() - 100);
    assert.equal(h.status, "degraded");
    const during = await (await fetch(`${c.url}/metrics`)).text();
    assert.match(during, /^portico_plugin_state\{plugin="crashy",state="restarting"\} 1$/m);

    await until(async () => (await stateOf(c, "crashy")) === "ready", 5000, "crashy to be restarted");
    const back = await fetch(`${c.url}/crashy/echo?again=1`);
    assert.equal(back.status, 200);
    assert.equal(((await back.json()) as { query: string }).query, "again=1");
    const after = await (await fetch(`${c.url}/metrics`)).text();
    assert.match(after, /^portico_plugin_restarts_total\{plugin="crashy"\} 1$/m);
    assert.match(after, /^portico_plugin_state\{plugin="crashy",state="ready"\} 1$/m);
    assert.match(after, /^portico_requests_total\{plugin="crashy",route="\/crashy",status="502"\} 2$/m);
    assert.match(after, /^portico_plugin_restarts_total\{plugin="bystander"\} 0$/m);
    assert.equal((await health(c)).plugins.find((x) => x.id === "crashy")?.restarts, 1);
  });

  test("one plugin crashing does not affect another plugin's requests", async () => {
    await until(async () => (await stateOf(c, "crashy")) === "ready", 5000, "crashy ready");
    const n = 20;
    const bystanders = Array.from({ length: n }, (_, i) => httpRequest(`${c.url}/bystander/sleep/${600 + i * 10}?i=${i}`));
    await until(() => (c.portico.plugins.get("bystander")?.status().inFlight ?? 0) === n, 3000, "bystander requests in flight");
    const crash = await httpRequest(`${c.url}/crashy/crash`);
    assert.equal(crash.status, 502);
    // While crashy is down, bystander keeps answering, old requests and new ones.
    const fresh = await httpRequest(`${c.url}/bystander/echo?fresh=1`);
    assert.equal(fresh.status, 200);
    const results = await Promise.all(bystanders);
    results.forEach((r, i) => {
      assert.equal(r.status, 200, `bystander request ${i}`);
      assert.equal((JSON.parse(r.body.toString()) as { query: string }).query, `i=${i}`);
    });
    assert.equal(await stateOf(c, "bystander"), "ready");
    assert.equal(c.portico.plugins.get("bystander")?.status().restarts, 0);
    await until(async () => (await stateOf(c, "crashy")) === "ready", 5000, "crashy restarted again");
  });
});
