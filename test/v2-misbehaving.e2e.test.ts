/** A v2 plugin that breaks the protocol gets its client a 502, is restarted, and never takes portico down. */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Running, startPortico, until } from "./support/portico.js";

const BAD = fileURLToPath(new URL("./fixtures/v2-bad.mjs", import.meta.url));
let p: Running;
before(async () => {
  p = await startPortico([{ id: "bad", command: process.execPath, args: [BAD], http: "timeout_seconds = 3" }, { id: "alpha" }]);
});
after(() => p?.close());

const get = async (path: string) => {
  try {
    const res = await fetch(`${p.url}${path}`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  } catch (err) {
    return { status: 0, body: String(err) };
  }
};
const ready = () => until(async () => (await get("/bad/ok")).status === 200, 10_000, "bad plugin ready again");

test("the fixture works when it behaves", async () => {
  assert.deepEqual(await get("/bad/ok"), { status: 200, body: "fine" });
});

test("an unknown frame type is ignored", async () => {
  assert.deepEqual(await get("/bad/unknown"), { status: 200, body: "fine" });
});

for (const [path, why] of [
  ["/bad/data-first", "DATA before HEAD"],
  ["/bad/bad-json", "a HEAD that is not JSON"],
  ["/bad/huge-frame", "a frame over 16 MiB"],
  ["/bad/junk", "bytes that are not frames"],
] as const) {
  test(`${why}: 502, portico and the other plugins stay up, the plugin comes back`, async () => {
    const r = await get(path);
    assert.ok(r.status === 502 || r.status === 503, `${why}: got ${r.status} ${r.body}`);
    assert.equal((await get("/alpha/echo")).status, 200);
    assert.equal((await get("/health")).status, 200);
    await ready();
  });
}

test("a second HEAD on one stream: the response is cut or refused, nothing crashes", async () => {
  const r = await get("/bad/two-heads");
  assert.notEqual(r.body, "x", "a response with two heads must not pass as complete");
  assert.equal((await get("/health")).status, 200);
  await ready();
});
