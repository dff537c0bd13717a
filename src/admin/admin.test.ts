/** The admin module's pure parts: traffic figures, loopback checks, and the [admin] settings. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError, loadConfigFile } from "../config.js";
import { isLoopback, isLoopbackHost } from "./guard.js";
import { bucketMiddleMs, bucketOf, HISTORY_SECONDS, PluginTraffic } from "./live-stats.js";

const dir = mkdtempSync(join(tmpdir(), "portico-admin-unit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("latency buckets: monotonic, and a bucket's middle within 13% of what fell in it", () => {
  let last = -1;
  for (let ms = 0.01; ms < 200_000; ms *= 1.07) {
    const b = bucketOf(ms);
    assert.ok(b >= last, `bucketOf(${ms})`);
    last = b;
    if (ms > 0.06 && ms < 100_000) assert.ok(Math.abs(bucketMiddleMs(b) / ms - 1) < 0.13, `${ms} → ${bucketMiddleMs(b)}`);
  }
  assert.equal(bucketOf(0), 0);
  assert.equal(bucketOf(Number.NaN), 0);
  assert.equal(bucketOf(1e9), 63);
});

test("figures: complete seconds only, rates over the last 10, percentiles, a minute of history", () => {
  const t = new PluginTraffic();
  // Second 100: 90 answers in 1 ms, 9 in 100 ms, one 500 in 1 s.
  for (let i = 0; i < 90; i++) t.record(200, 0.001, 100);
  for (let i = 0; i < 9; i++) t.record(200, 0.1, 100);
  t.record(500, 1, 100);
  const during = t.figures(100);
  assert.equal(during.rps, 0, "the second under way is not counted yet");
  assert.equal(during.requests, 100);
  const f = t.figures(101);
  assert.equal(f.rps, 10);
  assert.equal(f.errorRate, 0.01);
  assert.ok(f.p50Ms !== null && Math.abs(f.p50Ms - 1) < 0.13, `p50 ${f.p50Ms}`);
  assert.ok(f.p99Ms !== null && Math.abs(f.p99Ms / 100 - 1) < 0.13, `p99 ${f.p99Ms}`);
  assert.equal(f.history.length, HISTORY_SECONDS);
  assert.equal(f.history.at(-1), 100);
  assert.equal(f.errorHistory.at(-1), 1);
  // Ten seconds on, out of the window but still in the history; a minute on, gone from both.
  const later = t.figures(111);
  assert.equal(later.rps, 0);
  assert.equal(later.p50Ms, null);
  assert.equal(later.errorRate, null);
  assert.equal(later.history.at(-11), 100);
  const gone = t.figures(100 + HISTORY_SECONDS + 1);
  assert.deepEqual(gone.history, new Array(HISTORY_SECONDS).fill(0));
  assert.equal(gone.requests, 100, "totals are kept");
  assert.equal(gone.errors, 1);
  // A row reused after the ring went round starts from zero.
  t.record(200, 0.001, 100 + HISTORY_SECONDS + 1);
  assert.equal(t.figures(100 + HISTORY_SECONDS + 2).history.at(-1), 1);
});

test("loopback: addresses and Host names", () => {
  for (const a of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) assert.ok(isLoopback(a), a);
  for (const a of [undefined, "", "10.0.0.1", "::ffff:10.0.0.1", "128.0.0.1", "::2"]) assert.ok(!isLoopback(a), String(a));
  for (const h of ["localhost", "localhost:8080", "LOCALHOST:1", "app.localhost", "127.0.0.1:80", "127.0.1.1", "[::1]:8080", "[::1]"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  for (const h of [undefined, "", "evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]:80", "10.0.0.1"]) {
    assert.ok(!isLoopbackHost(h), String(h));
  }
});

async function settings(text: string) {
  const file = join(dir, `portico-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(file, text);
  return loadConfigFile(file);
}

async function problems(text: string): Promise<string> {
  const err = await settings(text).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof ConfigError, `expected a ConfigError for ${text}`);
  return err.message;
}

test("[admin] settings: enabled, token or token_file (relative to the file), and what is refused", async () => {
  assert.deepEqual((await settings("[admin]\nenabled = true\n")).admin, { enabled: true, token: undefined });
  assert.deepEqual((await settings('[admin]\ntoken = "0123456789abcdef0123"\n')).admin, { enabled: false, token: "0123456789abcdef0123" });
  writeFileSync(join(dir, "token"), "  file-token-0123456789abcdef \n");
  assert.deepEqual((await settings('[admin]\nenabled = true\ntoken_file = "token"\n')).admin, {
    enabled: true,
    token: "file-token-0123456789abcdef",
  });
  assert.equal((await settings('listen = "127.0.0.1:1"\n')).admin, undefined, "no section: the defaults");
  assert.match(
    await problems('[admin]\ntoken = "short"\n'),
    /admin\.token: the token must be at least 16 characters \(found 5\) — fix: .*openssl rand -hex 32/,
  );
  assert.match(await problems('[admin]\ntoken = "has spaces in the middle"\n'), /admin\.token: the token must be printable ASCII/);
  assert.match(
    await problems('[admin]\ntoken = "0123456789abcdef0123"\ntoken_file = "token"\n'),
    /admin\.token: and token_file are both set/,
  );
  assert.match(await problems('[admin]\ntoken_file = "missing"\n'), /admin\.token_file: cannot read .*missing/);
  assert.match(await problems('[admin]\nenabled = "yes"\n'), /admin\.enabled: must be true or false/);
  assert.match(
    await problems("[admin]\nenable = true\n"),
    /admin\.enable: is not a portico setting — fix: remove it, or use one of enabled, token, token_file/,
  );
});
