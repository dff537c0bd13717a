/**
 * The SDK with real frameworks, through portico over protocol v2: a Hono app's `app.fetch` served
 * unchanged (routing, params, JSON, headers, SSE with hono/streaming), and an Express app served
 * through fromNodeHandler (JSON body parsing, a response written over time with res.write, a
 * request body read as a stream).
 */
import assert from "node:assert/strict";
import { get as httpGet } from "node:http";
import { after, before, test } from "node:test";
import { defined } from "./support/assert.js";
import { type Running, startPortico } from "./support/portico.js";
import { fetchRaw, fixtureSpec, getJson, MiB, within } from "./support/v2.js";

let p: Running;
before(async () => {
  // The apps route on full paths (/hono/…, /ex/…): portico passes the path with its prefix.
  p = await startPortico([fixtureSpec("hono_app", "hono", "/hono"), fixtureSpec("express_app", "express", "/ex")]);
});
after(() => p?.close());

/** Reads a streamed GET, noting when each line arrived. */
function linesWithArrival(
  url: string,
): Promise<{ status: number; headers: Record<string, unknown>; lines: { at: number; text: string }[] }> {
  return within(
    new Promise((resolve, reject) => {
      const req = httpGet(url, { agent: false }, (res) => {
        const lines: { at: number; text: string }[] = [];
        let rest = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => {
          const at = Date.now();
          rest += c;
          for (let i = rest.indexOf("\n"); i >= 0; i = rest.indexOf("\n")) {
            lines.push({ at, text: rest.slice(0, i) });
            rest = rest.slice(i + 1);
          }
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, lines }));
        res.on("error", reject);
      });
      req.on("error", reject);
    }),
    `GET ${url}`,
  );
}

test("Hono: routes, params, query, JSON in and out", async () => {
  const hello = await fetchRaw(`${p.url}/hono`);
  assert.equal(hello.status, 200);
  assert.equal(hello.body.toString(), "hello from hono");
  assert.match(String(hello.headers["content-type"]), /^text\/plain/);

  assert.deepEqual(await getJson(`${p.url}/hono/users/42?q=x%20y`), { id: "42", q: "x y" });

  const echo = await fetchRaw(`${p.url}/hono/echo`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ a: [1, "ü"] }),
  });
  assert.equal(echo.status, 200);
  assert.deepEqual(JSON.parse(echo.body.toString()), { got: { a: [1, "ü"] }, type: "application/json" });

  const missing = await fetchRaw(`${p.url}/hono/nope`);
  assert.equal(missing.status, 404);
});

test("Hono: response headers (repeated Set-Cookie) and a 204", async () => {
  const r = await fetchRaw(`${p.url}/hono/headers`);
  assert.equal(r.status, 204);
  assert.equal(r.headers["x-hono"], "yes");
  assert.deepEqual(r.headers["set-cookie"], ["a=1; Path=/", "b=2; Path=/"]);
  assert.equal(r.body.length, 0);
});

test("Hono: streamSSE events arrive one by one", async () => {
  const r = await linesWithArrival(`${p.url}/hono/sse`);
  assert.equal(r.status, 200);
  assert.match(String(r.headers["content-type"]), /^text\/event-stream/);
  const events = r.lines
    .filter((l) => l.text.startsWith("data: "))
    .map((l) => ({ at: l.at, ...(JSON.parse(l.text.slice(6)) as { i: number; t: number }) }));
  assert.deepEqual(
    events.map((e) => e.i),
    [0, 1, 2, 3, 4],
  );
  // The first event reached the client before Hono produced the last one.
  const first = defined(events[0], "event 0");
  const last = defined(events[4], "event 4");
  assert.ok(first.at < last.t, `first arrived at ${first.at}, last produced at ${last.t}`);
});

test("Express via fromNodeHandler: GET, JSON body parsing, 404 from express", async () => {
  const hello = await fetchRaw(`${p.url}/ex/hello?name=portico`);
  assert.equal(hello.status, 200);
  assert.equal(hello.body.toString(), "hello from express portico");

  const json = await fetchRaw(`${p.url}/ex/json`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ x: 1 }),
  });
  assert.equal(json.status, 201);
  assert.deepEqual(JSON.parse(json.body.toString()), { got: { x: 1 }, path: "/ex/json", forwardedPrefix: "/ex" });

  const missing = await fetchRaw(`${p.url}/ex/nothing-here`);
  assert.equal(missing.status, 404);
  assert.deepEqual(JSON.parse(missing.body.toString()), { error: "express 404", path: "/ex/nothing-here" });
});

test("Express via fromNodeHandler: res.write over time reaches the client as written", async () => {
  const r = await linesWithArrival(`${p.url}/ex/stream?n=5`);
  assert.equal(r.status, 200);
  assert.equal(r.headers["transfer-encoding"], "chunked");
  assert.equal(r.lines.at(-1)?.text, "end");
  const parts = r.lines.slice(0, -1).map((l) => ({ at: l.at, ...(JSON.parse(l.text) as { i: number; t: number }) }));
  assert.deepEqual(
    parts.map((x) => x.i),
    [0, 1, 2, 3, 4],
  );
  const first = defined(parts[0], "piece 0");
  const last = defined(parts[4], "piece 4");
  assert.ok(first.at < last.t, `first piece arrived at ${first.at}, last written at ${last.t}`);
});

test("Express via fromNodeHandler: a 16 MiB request body streams through", async () => {
  const body = Buffer.alloc(16 * MiB, 0x5a);
  const r = await fetchRaw(`${p.url}/ex/count`, { method: "POST", headers: { "content-type": "application/octet-stream" }, body }, 30_000);
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body.toString()), { bytes: body.length });
});
