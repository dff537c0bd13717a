/**
 * The Python SDK's serve_asgi with real frameworks from Debian (FastAPI, Starlette, Django's ASGI
 * handler), each a real Python process behind a real portico on loopback, over protocol v2: routing
 * under the mount prefix (root_path), SSE event by event, WebSockets (subprotocol, text and
 * binary, close codes both ways, a refusal), a client going away and a route timing out reaching
 * the app as http.disconnect, many requests at once, a crash and the restart, and lifespan
 * shutdown when portico stops.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { type Running, startPortico, until } from "./support/portico.js";
import { linesWithArrival, pySpec, pythonWith, readThenHangUp } from "./support/python.js";
import { fetchRaw, getJson, within } from "./support/v2.js";

let p: Running;
let python = "";
const dir = mkdtempSync(join(tmpdir(), "portico-pyasgi-"));
const LIFESPAN_FILE = join(dir, "lifespan.txt");

before(async () => {
  python = pythonWith(["fastapi", "starlette", "django"]);
  p = await startPortico([
    pySpec("fastapi_lab", "fastapi_lab.py", python, { prefix: "/api/v1", env: { LIFESPAN_FILE } }),
    pySpec("quick", "fastapi_lab.py", python, { http: "timeout_seconds = 1" }),
    pySpec("star", "starlette_app.py", python),
    pySpec("dj_asgi", "django_app.py", python, { env: { MODE: "asgi" } }),
  ]);
});
after(async () => {
  await p?.close();
  rmSync(dir, { recursive: true, force: true });
});

type Seen = { tag: string; how: string; code?: number };
const seen = async (prefix: string) => JSON.parse((await fetchRaw(`${p.url}${prefix}/seen`)).body.toString()) as Seen[];

test("FastAPI: routes without the prefix, root_path is the prefix, url_for includes it; JSON both ways", async () => {
  const health = await getJson<{ plugins: { id: string; protocol: number; state: string }[] }>(`${p.url}/health`);
  for (const id of ["fastapi_lab", "quick", "star", "dj_asgi"]) {
    assert.deepEqual(
      health.plugins.filter((x) => x.id === id).map((x) => [x.state, x.protocol]),
      [["ready", 2]],
      id,
    );
  }
  const home = await getJson(`${p.url}/api/v1/`);
  assert.equal(home.root_path, "/api/v1");
  assert.match(String(home.url), /^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/$/);
  assert.match(String(home.url_for), /^http:\/\/127\.0\.0\.1:\d+\/api\/v1\/items\/7$/);
  assert.deepEqual(await getJson(`${p.url}/api/v1/items/42?q=x%20y`), { id: "42", q: "x y" });
  const posted = await fetchRaw(`${p.url}/api/v1/json`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ a: [1, "ü"] }),
  });
  assert.equal(posted.status, 200);
  assert.deepEqual(JSON.parse(posted.body.toString()), { got: { a: [1, "ü"] }, type: "application/json" });
  assert.equal((await fetchRaw(`${p.url}/api/v1/nope`)).status, 404);
});

test("Starlette: a Mount and url_for across it, lifespan state; Django ASGI: reverse() under the prefix, no lifespan", async () => {
  const home = await getJson(`${p.url}/star/`);
  assert.equal(home.root_path, "/star");
  assert.match(String(home.inner), /\/star\/sub\/x$/);
  assert.equal(home.state, "set at startup");
  const inner = await fetchRaw(`${p.url}/star/sub/abc`);
  assert.equal(inner.body.toString(), "inner abc root_path=/star/sub");

  const dj = await getJson(`${p.url}/dj_asgi/`);
  assert.deepEqual([dj.script_name, dj.path, dj.path_info, dj.reverse], ["/dj_asgi", "/dj_asgi/", "/", "/dj_asgi/items/7"]);
  assert.deepEqual(await getJson(`${p.url}/dj_asgi/items/4?q=c`), { id: "4", q: "c" });
});

test("SSE (StreamingResponse): each event reaches the client when the app yields it", async () => {
  const r = await linesWithArrival(`${p.url}/api/v1/events?n=4&interval_ms=300`);
  assert.equal(r.status, 200);
  assert.deepEqual(
    r.lines.map((l) => l.text),
    ["data: 0", "data: 1", "data: 2", "data: 3"],
  );
  // Four events 300 ms apart: the first arrives long before the last (not all at the end).
  const first = r.lines[0]?.at ?? 0;
  const last = r.lines[3]?.at ?? 0;
  assert.ok(last - first >= 500, `events arrived ${first} and ${last} ms after the request`);
});

test("a client that goes away: the streaming generator is cancelled, a waiting route gets http.disconnect", async () => {
  const got = await readThenHangUp(`${p.url}/api/v1/events?n=1000&interval_ms=50&tag=gone`);
  assert.match(got, /^data: 0/);
  await until(async () => (await seen("/api/v1")).some((s) => s.tag === "gone" && s.how === "disconnect"), 5000, "the SSE cancel");

  // The route answers nothing for 10 s; the client hangs up after 300 ms.
  const ac = new AbortController();
  const req = fetch(`${p.url}/api/v1/slow?ms=10000&tag=hang2`, { signal: ac.signal }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  await req;
  await until(async () => (await seen("/api/v1")).some((s) => s.tag === "hang2" && s.how === "disconnect"), 5000, "http.disconnect");
});

test("the route's timeout: the client gets 504 and the app gets http.disconnect", async () => {
  const r = await fetchRaw(`${p.url}/quick/slow?ms=5000&tag=late`);
  assert.equal(r.status, 504);
  await until(
    async () => (await seen("/quick")).some((s) => s.tag === "late" && s.how === "disconnect"),
    5000,
    "http.disconnect on timeout",
  );
});

/** Opens a WebSocket and collects what happens on it. */
function openWs(url: string, protocols: string[] = []) {
  const ws = new WebSocket(url, protocols);
  const messages: { data: string; binary: boolean }[] = [];
  ws.on("message", (data: Buffer, binary) => messages.push({ data: binary ? data.toString("hex") : data.toString(), binary }));
  const closed = within(
    new Promise<{ code: number; reason: string }>((resolve) =>
      ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
    ),
    "the WebSocket to close",
  );
  const opened = within(
    new Promise<void>((resolve, reject) => {
      ws.on("open", () => resolve());
      ws.on("error", reject);
    }),
    "the WebSocket to open",
  );
  return { ws, messages, closed, opened };
}

test("WebSocket: subprotocol, text and binary echo, the app's close code reaches the client", async () => {
  const c = openWs(`${p.url.replace("http", "ws")}/api/v1/ws`, ["x-other", "chat"]);
  await c.opened;
  assert.equal(c.ws.protocol, "chat");
  c.ws.send("hello");
  c.ws.send(Buffer.from([1, 2, 3]));
  await until(() => c.messages.length === 2, 5000, "two echoes");
  assert.deepEqual(c.messages, [
    { data: "hello", binary: false },
    { data: "010203", binary: true },
  ]);
  c.ws.send("close:4001");
  assert.deepEqual(await c.closed, { code: 4001, reason: "closed on request" });
});

test("WebSocket: the client's close code reaches the app; a close before accept is a 403", async () => {
  const c = openWs(`${p.url.replace("http", "ws")}/api/v1/ws`);
  await c.opened;
  assert.equal(c.ws.protocol, "");
  c.ws.close(4100, "client bye");
  assert.equal((await c.closed).code, 4100);
  await until(async () => (await seen("/api/v1")).some((s) => s.tag === "ws" && s.code === 4100), 5000, "the app to see 4100");

  const refused = await within(
    new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${p.url.replace("http", "ws")}/api/v1/ws-refuse`);
      ws.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on("open", () => reject(new Error("accepted")));
      ws.on("error", () => {});
    }),
    "the refusal",
  );
  assert.equal(refused, 403);
});

test("many requests at once: 200 quick ones and 20 slow ones overlap on one plugin", async () => {
  const t0 = Date.now();
  const slow = Array.from({ length: 20 }, (_, i) => getJson(`${p.url}/api/v1/slow?ms=500&tag=c${i}`));
  const quick = Array.from({ length: 200 }, (_, i) => getJson(`${p.url}/api/v1/items/${i}`));
  const results = await Promise.all(quick);
  assert.deepEqual(
    results.map((r) => r.id),
    Array.from({ length: 200 }, (_, i) => String(i)),
  );
  for (const r of await Promise.all(slow)) assert.deepEqual(r, { slept: 500 });
  // Twenty 500 ms waits one after another would take 10 s: they ran together.
  assert.ok(Date.now() - t0 < 8000, `took ${Date.now() - t0} ms`);
});

test("a crash: the request gets 502, portico restarts the plugin, it serves again", async () => {
  const before = (await getJson<{ pid: number }>(`${p.url}/quick/pid`)).pid;
  const r = await fetchRaw(`${p.url}/quick/crash`);
  assert.equal(r.status, 502);
  let after = before;
  await until(
    async () => {
      const res = await fetchRaw(`${p.url}/quick/pid`);
      if (res.status === 200) after = (JSON.parse(res.body.toString()) as { pid: number }).pid;
      return after !== before;
    },
    10_000,
    "the restarted plugin",
  );
  assert.notEqual(after, before);
});

test("lifespan: startup ran before the first request, shutdown runs when portico stops", async () => {
  assert.equal(readFileSync(LIFESPAN_FILE, "utf8"), "startup\n");
  await p.close();
  assert.equal(readFileSync(LIFESPAN_FILE, "utf8"), "startup\nshutdown\n");
});
