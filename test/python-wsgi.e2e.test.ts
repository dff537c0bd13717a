/**
 * The Python SDK's serve_wsgi (Flask and Django from Debian) and serve(handler) (no framework),
 * each a real Python process behind a real portico on loopback, over protocol v2: SCRIPT_NAME and
 * url_for/reverse under the prefix, a generator response chunk by chunk, wsgi.input streamed (a
 * full-duplex echo), a client going away reaching the app, slow requests on worker threads side by
 * side, a failing view, and the plain handler's streaming and WebSockets.
 */
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { chunkOf, crc32 } from "./fixtures/v2/pattern.mjs";
import { type Running, startPortico, until } from "./support/portico.js";
import { linesWithArrival, pySpec, pythonWith, readThenHangUp } from "./support/python.js";
import { fetchRaw, getJson, MiB, within } from "./support/v2.js";

let p: Running;

before(async () => {
  const python = pythonWith(["flask", "django"]);
  p = await startPortico([
    pySpec("flask_lab", "flask_lab.py", python, { prefix: "/web" }),
    pySpec("dj_wsgi", "django_app.py", python, { env: { MODE: "wsgi" } }),
    pySpec("raw_lab", "raw_lab.py", python, { prefix: "/raw" }),
  ]);
});
after(() => p?.close());

type Seen = { tag: string; how: string; code?: number };
const seen = async (prefix: string) => JSON.parse((await fetchRaw(`${p.url}${prefix}/seen`)).body.toString()) as Seen[];

/** POSTs `size` bytes of the test pattern, streamed (chunked unless `withLength`), and returns the answer's status, bytes and CRC. */
function postStreamed(
  url: string,
  size: number,
  withLength = false,
): Promise<{ status: number; bytes: number; crc: number; sentCrc: number; body: Buffer }> {
  return within(
    new Promise((resolve, reject) => {
      let sentCrc = 0;
      const headers: Record<string, string> = { "content-type": "application/octet-stream" };
      if (withLength) headers["content-length"] = String(size);
      const req = httpRequest(url, { method: "POST", agent: false, headers }, (res) => {
        let bytes = 0;
        let crc = 0;
        const head: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          crc = crc32(c, crc);
          if (head.length < 4) head.push(c);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, crc, sentCrc, body: Buffer.concat(head) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      void (async () => {
        for (let i = 0, at = 0; at < size; i++) {
          const c = chunkOf(i, Math.min(256 * 1024, size - at));
          at += c.length;
          sentCrc = crc32(c, sentCrc);
          if (!req.write(c)) await new Promise((r) => req.once("drain", r));
        }
        req.end();
      })().catch(reject);
    }),
    `POST ${url}`,
    60_000,
  );
}

test("Flask: SCRIPT_NAME is the prefix, routes are written without it, url_for includes it; HEAD", async () => {
  const home = await getJson(`${p.url}/web/`);
  assert.equal(home.script_root, "/web");
  assert.equal(home.path, "/");
  assert.match(String(home.url), /^http:\/\/127\.0\.0\.1:\d+\/web\/$/);
  assert.equal(home.url_for, "/web/items/7");
  assert.deepEqual(await getJson(`${p.url}/web/items/9?q=a%20b`), { id: "9", q: "a b" });
  assert.equal((await fetchRaw(`${p.url}/web/nope`)).status, 404);
  // HEAD: the GET's headers (its Content-Length included), no body.
  const head = await fetchRaw(`${p.url}/web/download?bytes=1000000`, { method: "HEAD" });
  assert.deepEqual([head.status, head.headers["content-length"], head.body.length], [200, "1000000", 0]);
});

test("Flask: a generator response reaches the client chunk by chunk", async () => {
  const r = await linesWithArrival(`${p.url}/web/stream?n=4&interval_ms=300`);
  assert.equal(r.status, 200);
  assert.deepEqual(
    r.lines.map((l) => l.text),
    ["data: 0", "data: 1", "data: 2", "data: 3"],
  );
  assert.ok((r.lines[3]?.at ?? 0) - (r.lines[0]?.at ?? 0) >= 500, JSON.stringify(r.lines));
});

test("Flask: wsgi.input is streamed; a generator echoes an 8 MiB body as it arrives; uploads are counted whole", async () => {
  const echo = await postStreamed(`${p.url}/web/echo`, 8 * MiB);
  assert.equal(echo.status, 200);
  assert.deepEqual({ bytes: echo.bytes, crc: echo.crc }, { bytes: 8 * MiB, crc: echo.sentCrc });
  const up = await postStreamed(`${p.url}/web/upload`, 8 * MiB + 3);
  assert.deepEqual(JSON.parse(up.body.toString()), { bytes: 8 * MiB + 3, crc: up.sentCrc });
});

test("Flask: a client going away closes the generator, and sets portico.cancelled for a waiting view", async () => {
  await readThenHangUp(`${p.url}/web/stream?n=1000&interval_ms=50&tag=gone`);
  await until(async () => (await seen("/web")).some((s) => s.tag === "gone" && s.how === "disconnect"), 5000, "GeneratorExit");
  const ac = new AbortController();
  const req = fetch(`${p.url}/web/slow?ms=10000&tag=wait`, { signal: ac.signal }).catch(() => undefined);
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  await req;
  await until(async () => (await seen("/web")).some((s) => s.tag === "wait" && s.how === "disconnect"), 5000, "portico.cancelled");
});

test("Flask: slow views run side by side on worker threads; a failing view is a 500 and the app goes on", async () => {
  const t0 = Date.now();
  const slow = await Promise.all(Array.from({ length: 8 }, () => getJson(`${p.url}/web/slow?ms=600`)));
  for (const r of slow) assert.deepEqual(r, { slept: 600 });
  // Eight 600 ms views one after another would take 4.8 s.
  assert.ok(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
  const quick = await Promise.all(Array.from({ length: 100 }, (_, i) => getJson(`${p.url}/web/items/${i}`)));
  assert.deepEqual(
    quick.map((r) => r.id),
    Array.from({ length: 100 }, (_, i) => String(i)),
  );
  assert.equal((await fetchRaw(`${p.url}/web/fail`)).status, 500);
  assert.equal((await fetchRaw(`${p.url}/web/items/1`)).status, 200);
});

test("Django WSGI: reverse() and SCRIPT_NAME under the prefix, a streamed response, request.read() in chunks", async () => {
  const dj = await getJson(`${p.url}/dj_wsgi/`);
  assert.deepEqual([dj.script_name, dj.path, dj.path_info, dj.reverse], ["/dj_wsgi", "/dj_wsgi/", "/", "/dj_wsgi/items/7"]);
  const s = await linesWithArrival(`${p.url}/dj_wsgi/stream?n=3`);
  assert.deepEqual(
    s.lines.map((l) => l.text),
    ["data: 0", "data: 1", "data: 2"],
  );
  // Django reads CONTENT_LENGTH bytes (it ignores wsgi.input_terminated): send one.
  const up = await postStreamed(`${p.url}/dj_wsgi/upload`, 4 * MiB, true);
  assert.deepEqual(JSON.parse(up.body.toString()), { bytes: 4 * MiB });
});

test("serve(handler): prefix and query, a full-duplex echo, events, a client going away", async () => {
  assert.deepEqual(await getJson(`${p.url}/raw/?a=1`), { hello: "raw", path: "/raw/", root_path: "/raw", query: "a=1" });
  const echo = await postStreamed(`${p.url}/raw/echo`, 8 * MiB);
  assert.deepEqual({ bytes: echo.bytes, crc: echo.crc }, { bytes: 8 * MiB, crc: echo.sentCrc });
  const ev = await linesWithArrival(`${p.url}/raw/events?n=3`);
  assert.deepEqual(
    ev.lines.map((l) => l.text),
    ["data: 0", "data: 1", "data: 2"],
  );
  await readThenHangUp(`${p.url}/raw/events?n=1000`);
  await until(async () => (await seen("/raw")).some((s) => s.tag === "raw-events"), 5000, "request.cancelled");
});

test("serve(handler): WebSocket echo, its close code to the client, the client's to the handler", async () => {
  const url = `${p.url.replace("http", "ws")}/raw/ws`;
  const ws = new WebSocket(url);
  const got: string[] = [];
  ws.on("message", (d: Buffer, binary) => got.push(binary ? `bin:${d.toString("hex")}` : d.toString()));
  const closed = within(new Promise<number>((r) => ws.on("close", (code) => r(code))), "the close");
  await within(new Promise((r, j) => ws.on("open", r).on("error", j)), "the open");
  ws.send("one");
  ws.send(Buffer.from([9, 8]));
  await until(() => got.length === 2, 5000, "the echoes");
  assert.deepEqual(got, ["one", "bin:0908"]);
  ws.send("close:4002");
  assert.equal(await closed, 4002);

  const ws2 = new WebSocket(url);
  await within(new Promise((r, j) => ws2.on("open", r).on("error", j)), "the second open");
  ws2.close(4200, "bye");
  await until(async () => (await seen("/raw")).some((s) => s.tag === "raw-ws" && s.code === 4200), 5000, "the handler to see 4200");
});
