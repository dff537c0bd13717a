import assert from "node:assert/strict";
import { test } from "node:test";
import { knownLength, wholeBody } from "./request.js";
import { LightResponse, responseHeaders, underlying } from "./response.js";

const Native = globalThis.Response;
const Light = LightResponse as unknown as typeof Response;

type Args = ConstructorParameters<typeof Response>;

/** What a handler or a framework can observe of a Response, read the same way from both kinds. */
async function observe(r: Response) {
  const before = { status: r.status, ok: r.ok, statusText: r.statusText, type: r.type, url: r.url, redirected: r.redirected };
  const headers = [...r.headers];
  const bodyUsed = r.bodyUsed;
  const text = await r.text();
  return { ...before, headers, bodyUsed, text, usedAfter: r.bodyUsed };
}

/** Each case makes its arguments afresh: a stream can back one Response only. */
const cases: [string, () => Args][] = [
  ["no arguments", () => []],
  ["a string", () => ["hello"]],
  ["a string with a content type", () => ["{}", { headers: { "content-type": "application/json" } }]],
  [
    "a string, status 404, header list",
    () => [
      "nope",
      {
        status: 404,
        headers: [
          ["x-a", "1"],
          ["set-cookie", "a=1"],
          ["set-cookie", "b=2"],
        ],
      },
    ],
  ],
  ["bytes", () => [new Uint8Array([104, 105])]],
  ["a Buffer view", () => [Buffer.from("xxhiyy").subarray(2, 4)]],
  ["an ArrayBuffer", () => [new Uint8Array([111, 107]).buffer]],
  ["null with 204", () => [null, { status: 204 }]],
  ["an empty string", () => [""]],
  ["a Headers object", () => ["x", { headers: new Headers({ "X-Mixed": "Case" }) }]],
  ["a status text", () => ["x", { status: 201, statusText: "Made" }]],
  ["a Blob (not light)", () => [new Blob(["blob"], { type: "text/x-blob" })]],
  [
    "a stream (not light)",
    () => [
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode("s"));
          c.close();
        },
      }),
    ],
  ],
];

for (const [name, args] of cases) {
  test(`light Response matches undici's: ${name}`, async () => {
    assert.deepEqual(await observe(new Light(...args())), await observe(new Native(...args())));
  });
}

test("light Response refuses what undici's refuses, at construction", () => {
  const bad: Args[] = [
    ["x", { status: 99 }],
    ["x", { status: 600 }],
    ["x", { status: 204 }],
    ["x", { status: 304 }],
    ["x", { headers: { "bad name": "v" } }],
  ];
  for (const args of bad) {
    const native = (() => {
      try {
        new Native(...args);
      } catch (e) {
        return (e as Error).constructor;
      }
    })();
    assert.ok(native, `undici refuses ${JSON.stringify(args[1])}`);
    assert.throws(() => new Light(...args), native as new () => Error);
  }
});

test("light Response: instanceof both ways, statics stay undici's, subclasses work", async () => {
  const light = new Light("a");
  assert.ok(light instanceof Light && light instanceof Native);
  assert.ok(new Native("b") instanceof Light, "undici's own Responses are Responses too");
  assert.ok(Light.json({ a: 1 }) instanceof Light);
  assert.equal(await Light.json({ a: 1 }).text(), '{"a":1}');
  assert.equal(Light.name, "Response");
  class Mine extends Light {
    get extra() {
      return "x";
    }
  }
  const mine = new Mine("m", { status: 202 });
  assert.ok(mine instanceof Mine && mine instanceof Light);
  assert.ok(!(light instanceof Mine));
  assert.equal(mine.extra, "x");
  assert.equal(mine.status, 202);
  assert.equal(await mine.text(), "m");
  assert.equal(Object.prototype.toString.call(light), "[object Response]");
});

test("light Response: clone, body, headers set before the body is read", async () => {
  const r = new Light("cloned", { headers: { "x-a": "1" } });
  r.headers.set("x-b", "2");
  const c = r.clone();
  assert.equal(await c.text(), "cloned");
  assert.equal(c.headers.get("x-b"), "2");
  assert.ok(r.body instanceof ReadableStream);
  assert.equal(await new Response(r.body).text(), "cloned");
  assert.equal(r.bodyUsed, true);
});

test("light Response: bytes are copied at construction, as undici copies them", async () => {
  const bytes = new Uint8Array([1, 2, 3]);
  const r = new Light(bytes);
  bytes[0] = 9;
  assert.deepEqual([...(wholeBody(r) as Buffer)], [1, 2, 3]);
  const buf = Buffer.from("abc");
  const r2 = new Light(buf);
  buf[0] = 122;
  assert.equal(await r2.text(), "abc");
});

test("wholeBody and knownLength read a light body without building undici's Response", () => {
  const r = new Light("héllo");
  assert.equal((wholeBody(r) as Buffer).toString(), "héllo");
  assert.equal(knownLength(r), 6);
  assert.equal(underlying(r), undefined, "still light");
  assert.equal(wholeBody(new Light(null)), null);
  assert.equal(knownLength(new Light(null)), undefined);
  // Once built, undici's record is read instead, and gives the same.
  const built = new Light("héllo");
  void built.body;
  assert.ok(underlying(built) instanceof Native);
  assert.equal((wholeBody(built) as Buffer).toString(), "héllo", "undici's record, as for any of its Responses");
  const viaRecord = new Light("héllo");
  void viaRecord.type; // answered without building
  assert.equal(underlying(viaRecord), undefined);
  assert.equal(knownLength(new Native("héllo")), 6);
});

test("light Response: the headers object is one and the same before and after undici's is built", async () => {
  const r = new Light("x", { headers: { "x-a": "1" } });
  const h = r.headers;
  assert.ok(r.body);
  h.set("x-b", "2");
  assert.equal(r.headers, h);
  assert.equal(responseHeaders(r).get("x-b"), "2");
  assert.equal(await r.text(), "x");
});

test("light Response: a deleted default content type stays deleted; init is read once", () => {
  const r = new Light("x");
  r.headers.delete("content-type");
  assert.equal(responseHeaders(r).get("content-type"), null);
  const init: { headers: Record<string, string> } = { headers: { "x-a": "1" } };
  const r2 = new Light("y", init);
  init.headers = { "x-late": "1" };
  assert.equal(responseHeaders(r2).get("x-late"), null);
  assert.equal(r2.headers.get("x-late"), null);
  assert.equal(r2.headers.get("x-a"), "1");
});

test("responseHeaders reads a light Response's headers without building undici's", () => {
  const r = new Light("x", { headers: { "x-a": "1" } });
  assert.equal(responseHeaders(r).get("x-a"), "1");
  assert.equal(responseHeaders(r).get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(responseHeaders(new Light(new Uint8Array(1))).get("content-type"), null);
  assert.equal(underlying(r), undefined);
});

test("Response.prototype's members still work on undici's own Responses", async () => {
  const native = new Native("n", { status: 201 });
  assert.equal(await Light.prototype.text.call(native), "n");
  const status = Object.getOwnPropertyDescriptor(Light.prototype, "status")?.get;
  assert.equal(status?.call(new Native("n", { status: 202 })), 202);
});
