import assert from "node:assert/strict";
import { test } from "node:test";
import { newUuid } from "./ids.js";

test("newUuid: RFC 9562 version 4 layout, no repeats over many draws", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 100_000; i++) {
    const id = newUuid();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(id);
  }
  assert.equal(seen.size, 100_000);
});
