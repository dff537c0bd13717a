/**
 * What docs/protocol.md promises a plugin written from it alone (test/fixtures/hostile/v2-eager-ws:
 * no SDK), each checked against a real portico: a 101 HEAD with END keeps its tunnel; messages sent
 * with the 101 arrive; a HEAD request answered with END on the HEAD keeps the plugin's
 * Content-Length; an empty END DATA needs no credit; a route's max_body_bytes holds for v2 too.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { type Running, startPortico } from "./support/portico.js";
import { fetchRaw, labSpec, MiB, within } from "./support/v2.js";

const RAW_V2 = fileURLToPath(new URL("./fixtures/hostile/v2-eager-ws.mjs", import.meta.url));
let p: Running;
before(async () => {
  p = await startPortico([{ id: "raw", args: [RAW_V2] }, labSpec("capped", "max_body_bytes = 1000")]);
});
after(() => p?.close());

async function twoMessagesThenEcho(path: string): Promise<string[]> {
  const ws = new WebSocket(`${p.url.replace("http:", "ws:")}${path}`);
  const got: string[] = [];
  await within(
    new Promise<void>((resolve, reject) => {
      ws.on("message", (m: Buffer) => {
        got.push(m.toString());
        if (got.length === 2) ws.send("third");
        if (got.length === 3) resolve();
      });
      ws.on("error", reject);
    }),
    "three messages",
  );
  ws.close(1000);
  return got;
}

test("a 101 HEAD with END keeps its tunnel: messages flow both ways after it", async () => {
  assert.deepEqual(await twoMessagesThenEcho("/raw/ws/end-on-101"), ["first", "second", "third"]);
});

test("messages a plugin sends in the same write as its 101 arrive, in order", async () => {
  assert.deepEqual(await twoMessagesThenEcho("/raw/ws"), ["first", "second", "third"]);
});

test("a HEAD request answered with END on the HEAD: the plugin's Content-Length, no body", async () => {
  const head = await fetchRaw(`${p.url}/raw/head`, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers["content-length"], "1234");
  assert.equal(head.body.length, 0);
  const get = await fetchRaw(`${p.url}/raw/head`);
  assert.equal(get.body.length, 1234);
});

test("an empty END DATA needs no credit: a body of exactly one window ends", async () => {
  const r = await fetchRaw(`${p.url}/raw/full-window`);
  assert.equal(r.status, 200);
  assert.equal(r.body.length, MiB);
});

test("a route's max_body_bytes applies to a v2 plugin too (413)", async () => {
  assert.equal((await fetchRaw(`${p.url}/capped/upload`, { method: "POST", body: Buffer.alloc(2000) })).status, 413);
  assert.equal((await fetchRaw(`${p.url}/capped/upload`, { method: "POST", body: Buffer.alloc(500) })).status, 200);
});
