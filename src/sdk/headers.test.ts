import assert from "node:assert/strict";
import { test } from "node:test";
import { inspect } from "node:util";
import { fill, LightHeaders } from "./headers.js";
import { type HeaderList, headersOf } from "./http.js";

const LIST: HeaderList = [
  ["Host", "example.test"],
  ["Accept", "text/html"],
  ["accept", "application/json"],
  ["X-Padded", "  spaced\t"],
  ["X-Bad", "a\u0000b"],
  ["bad name", "refused"],
  ["Set-Cookie", "a=1"],
  ["set-cookie", "b=2"],
  ["X-Empty", ""],
  ["X-Latin", "caf\u00e9"],
  ["X-Wide", "\u{1F600}"],
  ["Cookie", "a=1"],
  ["cookie", "b=2"],
];
const NAMES = ["host", "HOST", "accept", "x-padded", "x-bad", "set-cookie", "x-empty", "x-latin", "x-wide", "cookie", "absent"];

test("LightHeaders answers get and has as Headers filled pair by pair would, without filling", () => {
  const light = new LightHeaders(LIST);
  const real = headersOf(LIST);
  for (const name of NAMES) {
    assert.equal(light.get(name), real.get(name), `get(${name})`);
    assert.equal(light.has(name), real.has(name), `has(${name})`);
  }
  assert.throws(() => light.get("bad name"), TypeError, "a bad name throws, as Headers does");
  assert.ok(light instanceof Headers);
});

test("LightHeaders: everything else sees the filled Headers", () => {
  const light = new LightHeaders(LIST);
  const real = headersOf(LIST);
  assert.deepEqual([...light], [...real]);
  assert.deepEqual(light.getSetCookie(), real.getSetCookie());
  assert.deepEqual([...light.keys()], [...real.keys()]);
  const seen: string[] = [];
  new LightHeaders(LIST).forEach((v, k) => {
    seen.push(`${k}=${v}`);
  });
  assert.equal(seen.length, [...real].length);
  assert.equal(inspect(new LightHeaders(LIST)), inspect(real));
  assert.deepEqual([...new Headers(new LightHeaders(LIST))], [...real]);
});

test("LightHeaders: changes after reading and reading after changes", () => {
  const light = new LightHeaders(LIST);
  assert.equal(light.get("accept"), "text/html, application/json");
  light.set("accept", "*/*");
  light.delete("x-padded");
  light.append("x-new", "1");
  assert.equal(light.get("accept"), "*/*");
  assert.equal(light.get("x-padded"), null);
  assert.equal(light.get("x-new"), "1");
  assert.equal(light.get("host"), "example.test");
  assert.equal(fill(light), light);
  const empty = new LightHeaders(undefined);
  assert.equal(empty.get("host"), null);
  assert.deepEqual([...empty], []);
});

test("LightHeaders go into a Request whole", async () => {
  const request = new Request("http://x/", { headers: new LightHeaders(LIST) });
  assert.deepEqual([...request.headers], [...headersOf(LIST)]);
});
