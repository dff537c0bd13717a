import assert from "node:assert/strict";
import { test } from "node:test";
import { isoNow } from "./clock.js";

test("isoNow: the same string as new Date().toISOString(), and it moves with the clock", async () => {
  const before = Date.now();
  const stamp = isoNow();
  const after = Date.now();
  const t = Date.parse(stamp);
  assert.ok(t >= before && t <= after, `${stamp} within [${before}, ${after}]`);
  assert.equal(stamp, new Date(t).toISOString());
  await new Promise((r) => setTimeout(r, 5));
  assert.ok(Date.parse(isoNow()) > t);
});
