import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type Running, startPortico } from "./support/portico.js";

let p: Running;
before(async () => {
  p = await startPortico([{ id: "alpha" }]);
});
after(() => p.close());

test("a raw nexo plugin answers through portico", async () => {
  const res = await fetch(`${p.url}/alpha/echo?x=1`);
  assert.equal(res.status, 200);
  const body = (await res.json()) as { path: string; query: string };
  assert.equal(body.path, "/alpha/echo");
  assert.equal(body.query, "x=1");
});
