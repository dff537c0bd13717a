/** portico's TypeScript SDK speaking protocol v1 (as it does under nexo): the same handler works. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Running, startPortico } from "./support/portico.js";

const PLUGIN = fileURLToPath(new URL("./fixtures/v1-sdk/plugin.mjs", import.meta.url));
let p: Running;
before(async () => {
  p = await startPortico([{ id: "sdkv1", command: process.execPath, args: [PLUGIN] }]);
});
after(() => p?.close());

test("the plugin declined v2", async () => {
  const health = (await (await fetch(`${p.url}/health`)).json()) as { plugins: { id: string; protocol: number }[] };
  assert.equal(health.plugins.find((x) => x.id === "sdkv1")?.protocol, 1);
});

test("method, url, query, headers and a binary body reach the handler", async () => {
  const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  const res = await fetch(`${p.url}/sdkv1/echo?x=1&y=%20`, { method: "PUT", body, headers: { "x-test": "yes" } });
  assert.equal(res.status, 200);
  const got = (await res.json()) as Record<string, unknown>;
  assert.equal(got.method, "PUT");
  assert.match(String(got.url), /^http:\/\/127\.0\.0\.1:\d+\/sdkv1\/echo\?x=1&y=%20$/);
  assert.equal(got.header, "yes");
  assert.equal(got.body, body.toString("base64"));
  assert.equal(got.isRequest, true);
});

test("status, Location and repeated Set-Cookie come back; a streamed body is buffered", async () => {
  const res = await fetch(`${p.url}/sdkv1/cookies`, { redirect: "manual" });
  assert.equal(res.status, 302);
  assert.equal(res.headers.get("location"), "/there");
  assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.equal(await res.text(), "moved");
  const streamed = await fetch(`${p.url}/sdkv1/stream`);
  assert.equal(await streamed.text(), "one,two");
  assert.equal(streamed.headers.get("content-length"), "7");
});

test("a throwing handler is a 500, and the plugin goes on", async () => {
  assert.equal((await fetch(`${p.url}/sdkv1/throw`)).status, 500);
  assert.equal((await fetch(`${p.url}/sdkv1/echo`)).status, 200);
});
