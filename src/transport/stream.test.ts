import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { test } from "node:test";
import { READ_BUDGET, READ_TIME_BUDGET_MS, readFairly } from "./stream.js";

/**
 * Feeds `chunks` to readFairly at once and says how many of them each turn of the event loop
 * handled, `handle` running for each.
 */
async function chunksPerTurn(chunks: Buffer[], handle: () => void): Promise<number[]> {
  const input = new PassThrough({ highWaterMark: 64 * 1024 * 1024 });
  for (const c of chunks) input.write(c);
  let turn = 0;
  let done = false;
  const tick = () => {
    turn++;
    if (!done) setImmediate(tick);
  };
  setImmediate(tick);
  const perTurn = new Map<number, number>();
  let seen = 0;
  await new Promise<void>((resolve) => {
    readFairly(input, () => {
      handle();
      perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
      if (++seen === chunks.length) resolve();
    });
  });
  done = true;
  return [...perTurn.values()];
}

test("a peer's output is read at most READ_BUDGET bytes per turn", async () => {
  const counts = await chunksPerTurn(
    Array.from({ length: 16 }, () => Buffer.alloc(64 * 1024)),
    () => {},
  );
  assert.equal(
    counts.reduce((a, b) => a + b),
    16,
  );
  assert.ok(Math.max(...counts) <= READ_BUDGET / (64 * 1024), `chunks per turn: ${counts}`);
});

test("and at most READ_TIME_BUDGET_MS of handling it per turn, however few its bytes", async () => {
  // Short lines that are dear to handle (a flood of JSON-RPC requests): 1 KiB each, 3 ms each.
  const busy = () => {
    const until = performance.now() + (READ_TIME_BUDGET_MS * 3) / 4;
    while (performance.now() < until);
  };
  const counts = await chunksPerTurn(
    Array.from({ length: 8 }, () => Buffer.alloc(1024)),
    busy,
  );
  assert.equal(
    counts.reduce((a, b) => a + b),
    8,
  );
  // 3 ms, then 6 ms: over the budget after the second chunk of a turn.
  assert.ok(Math.max(...counts) <= 2, `chunks per turn: ${counts}`);
});
