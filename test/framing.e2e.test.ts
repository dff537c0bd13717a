/**
 * Request framing over raw sockets: smuggling attempts (ambiguous or malformed message framing)
 * must get a 400 or a closed connection, and nothing hidden in them may reach a plugin as a request
 * of its own. Valid pipelined requests on one connection are each answered, in order.
 *
 * Every attack carries a second request after the first one's (ambiguous) end, aimed at a plugin
 * path unique to the case; the fixture lists every path it received at /<prefix>/seen.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, test } from "node:test";
import { defined } from "./support/assert.js";
import { type Running, startPortico } from "./support/portico.js";

let p: Running;
before(async () => {
  p = await startPortico([{ id: "alpha" }, { id: "small", http: "max_body_bytes = 16" }]);
});
after(() => p.close());

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/**
 * Writes `raw` (in one write, or in the given pieces) and reads until the server closes or goes
 * quiet. `heads` lists which responses (by position) answer a HEAD, so carry no body.
 */
async function send(
  raw: string | string[],
  quietMs = 400,
  maxMs = 5000,
  heads: number[] = [],
): Promise<{ responses: RawResponse[]; closed: boolean; rest: Buffer }> {
  const socket = connect(p.port, "127.0.0.1");
  socket.on("error", () => {}); // a reset is a closed connection, which the caller sees
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  const chunks: Buffer[] = [];
  let closed = false;
  let last = Date.now();
  socket.on("data", (c: Buffer) => {
    chunks.push(c);
    last = Date.now();
  });
  const done = new Promise<void>((resolve) =>
    socket.once("close", () => {
      closed = true;
      resolve();
    }),
  );
  for (const piece of Array.isArray(raw) ? raw : [raw]) {
    socket.write(piece, "latin1");
    await new Promise((r) => setTimeout(r, 20));
  }
  const started = Date.now();
  while (!closed && Date.now() - started < maxMs && Date.now() - last < quietMs) await new Promise((r) => setTimeout(r, 25));
  if (!closed) {
    socket.destroy();
    await done;
    closed = false; // we closed it, not the server
  }
  const { responses, rest } = parseResponses(Buffer.concat(chunks), heads);
  return { responses, closed, rest };
}

/** HTTP/1.1 responses one after another: Content-Length or chunked framing, or to the end of the stream. */
function parseResponses(buf: Buffer, heads: number[]): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < buf.length) {
    const end = buf.indexOf("\r\n\r\n", at, "latin1");
    if (end === -1) break;
    const [statusLine, ...lines] = buf.subarray(at, end).toString("latin1").split("\r\n");
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? "");
    assert.ok(m, `a status line, got ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const l of lines) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const start = end + 4;
    const status = Number(m[1]);
    const bodiless = heads.includes(responses.length) || status === 204 || status === 304;
    if (!bodiless && headers["transfer-encoding"] === "chunked") {
      const parts: Buffer[] = [];
      let pos = start;
      for (let i = 0; i < 1000; i++) {
        const eol = buf.indexOf("\r\n", pos, "latin1");
        if (eol === -1) return { responses, rest: buf.subarray(at) };
        const size = parseInt(buf.subarray(pos, eol).toString("latin1"), 16);
        if (size === 0) {
          pos = eol + 4; // no trailers in the tests
          break;
        }
        parts.push(buf.subarray(eol + 2, eol + 2 + size));
        pos = eol + 2 + size + 2;
      }
      responses.push({ status, headers, body: Buffer.concat(parts) });
      at = pos;
      continue;
    }
    const length = bodiless ? 0 : headers["content-length"] !== undefined ? Number(headers["content-length"]) : buf.length - start;
    responses.push({ status, headers, body: buf.subarray(start, start + length) });
    at = start + length;
  }
  return { responses, rest: buf.subarray(at) };
}

async function seen(): Promise<string[]> {
  const res = await fetch(`${p.url}/alpha/seen`);
  return ((await res.json()) as { paths: string[] }).paths.filter((x) => x !== "/alpha/seen");
}

const SMUGGLED = (name: string) => `GET /alpha/smuggled-${name} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

// [name, raw bytes]; the first request is for /alpha/attack-<name>, the hidden one /alpha/smuggled-<name>.
const ATTACKS: [string, string][] = [
  [
    "cl-then-te",
    `POST /alpha/attack-cl-then-te HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED("cl-then-te")}`,
  ],
  [
    "te-then-cl",
    `POST /alpha/attack-te-then-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 60\r\n\r\n0\r\n\r\n${SMUGGLED("te-then-cl")}`,
  ],
  [
    "cl-dup-same",
    `POST /alpha/attack-cl-dup-same HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc${SMUGGLED("cl-dup-same")}`,
  ],
  [
    "cl-dup-diff",
    `POST /alpha/attack-cl-dup-diff HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 60\r\n\r\nabc${SMUGGLED("cl-dup-diff")}`,
  ],
  ["cl-list", `POST /alpha/attack-cl-list HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc${SMUGGLED("cl-list")}`],
  [
    "chunk-size-invalid",
    `POST /alpha/attack-chunk-size-invalid HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n${SMUGGLED("chunk-size-invalid")}`,
  ],
  [
    "chunk-size-negative",
    `POST /alpha/attack-chunk-size-negative HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n${SMUGGLED("chunk-size-negative")}`,
  ],
  [
    "chunk-size-overflow",
    `POST /alpha/attack-chunk-size-overflow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1000000000000000003\r\nabc\r\n0\r\n\r\n${SMUGGLED("chunk-size-overflow")}`,
  ],
  [
    "chunk-bare-lf",
    `POST /alpha/attack-chunk-bare-lf HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n${SMUGGLED("chunk-bare-lf")}`,
  ],
  [
    "te-not-chunked-last",
    `POST /alpha/attack-te-not-chunked-last HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED("te-not-chunked-last")}`,
  ],
  [
    "te-unknown",
    `POST /alpha/attack-te-unknown HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED("te-unknown")}`,
  ],
  ["obs-fold", `GET /alpha/attack-obs-fold HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n${SMUGGLED("obs-fold")}`],
  [
    "obs-fold-te",
    `POST /alpha/attack-obs-fold-te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED("obs-fold-te")}`,
  ],
  [
    "space-before-colon",
    `GET /alpha/attack-space-before-colon HTTP/1.1\r\nHost: x\r\nX-Spaced : a\r\n\r\n${SMUGGLED("space-before-colon")}`,
  ],
  [
    "space-before-colon-te",
    `POST /alpha/attack-space-before-colon-te HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED("space-before-colon-te")}`,
  ],
  ["request-line-bare-lf", `GET /alpha/attack-request-line-bare-lf HTTP/1.1\nHost: x\r\n\r\n${SMUGGLED("request-line-bare-lf")}`],
  ["request-line-bare-cr", `GET /alpha/attack-request-line-bare-cr HTTP/1.1\rHost: x\r\n\r\n${SMUGGLED("request-line-bare-cr")}`],
  ["header-bare-lf", `GET /alpha/attack-header-bare-lf HTTP/1.1\r\nHost: x\nX-A: 1\r\n\r\n${SMUGGLED("header-bare-lf")}`],
  ["no-host", `GET /alpha/attack-no-host HTTP/1.1\r\n\r\n${SMUGGLED("no-host")}`],
];

for (const [name, raw] of ATTACKS) {
  test(`framing attack ${name}: 400 or closed, nothing reaches the plugin`, async () => {
    const { responses, closed } = await send(raw);
    assert.ok(responses.length <= 1, `one answer at most, got ${responses.map((r) => r.status)}`);
    const [answer] = responses;
    if (answer) {
      assert.equal(answer.status, 400, `${name}: ${answer.body}`);
      assert.ok(closed, "the connection is closed after a framing error");
    } else {
      assert.ok(closed, "no answer: then the connection must be closed");
    }
    const paths = await seen();
    assert.ok(!paths.includes(`/alpha/smuggled-${name}`), `the smuggled request reached the plugin: ${paths}`);
    assert.ok(!paths.includes(`/alpha/attack-${name}`), `the malformed request reached the plugin: ${paths}`);
  });
}

test("two Host headers: 400 (RFC 9112 §3.2)", async () => {
  const { responses } = await send(`GET /alpha/attack-two-hosts HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n`);
  assert.equal(responses[0]?.status, 400);
  assert.ok(!(await seen()).includes("/alpha/attack-two-hosts"));
});

test("no smuggled request at all reached the plugin (whole run)", async () => {
  const paths = await seen();
  assert.deepEqual(
    paths.filter((x) => x.includes("smuggled") || x.includes("attack-")),
    [],
  );
});

test("a body that looks like a request is only a body", async () => {
  const hidden = SMUGGLED("in-body");
  const body = Buffer.from(hidden, "latin1");
  // Content-Length framed, to a plugin: one request, whose body is the hidden one.
  const { responses } = await send(`POST /alpha/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${hidden}`);
  assert.equal(responses.length, 1);
  const [res] = responses;
  assert.ok(res);
  assert.equal(res.status, 200);
  const echoed = JSON.parse(res.body.toString()) as { body_base64: string };
  assert.equal(Buffer.from(echoed.body_base64, "base64").toString("latin1"), hidden);

  // Chunked, to a plugin.
  const chunked = await send(
    `POST /alpha/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n`,
  );
  assert.deepEqual(
    chunked.responses.map((r) => r.status),
    [200],
  );

  // To no route (404), and to a route whose limit it exceeds (413): portico answers without reading
  // the body through a plugin, and the body must still not be parsed as the next request.
  const notFound = await send(`POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${hidden}`);
  assert.deepEqual(
    notFound.responses.map((r) => r.status),
    [404],
  );
  const tooLarge = await send(`POST /small/echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${hidden}`);
  assert.deepEqual(
    tooLarge.responses.map((r) => r.status),
    [413],
  );
  const tooLargeChunked = await send([
    `POST /small/echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n`,
    `${body.length.toString(16)}\r\n${hidden}\r\n0\r\n\r\n`,
  ]);
  assert.deepEqual(
    tooLargeChunked.responses.map((r) => r.status),
    [413],
  );

  assert.ok(!(await seen()).includes("/alpha/smuggled-in-body"));
});

test("pipelined requests on one socket are each answered, in order", async () => {
  const post = "hello";
  const raw =
    // The first is the slowest: its answer must still come first.
    `GET /alpha/sleep/300?n=1 HTTP/1.1\r\nHost: x\r\n\r\n` +
    `GET /alpha/echo?n=2 HTTP/1.1\r\nHost: x\r\n\r\n` +
    `POST /alpha/echo?n=3 HTTP/1.1\r\nHost: x\r\nContent-Length: ${post.length}\r\n\r\n${post}` +
    `GET /health HTTP/1.1\r\nHost: x\r\n\r\n` +
    `GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n` +
    `HEAD /alpha/echo?n=6 HTTP/1.1\r\nHost: x\r\n\r\n` +
    `GET /alpha/echo?n=7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
  const { responses, closed, rest } = await send(raw, 2000, 10_000, [5]);
  assert.equal(rest.length, 0, `trailing bytes: ${rest.toString("latin1")}`);
  assert.deepEqual(
    responses.map((r) => r.status),
    [200, 200, 200, 200, 404, 200, 200],
  );
  const json = (i: number) => JSON.parse(defined(responses[i], `response ${i}`).body.toString()) as Record<string, unknown>;
  assert.equal(json(0).query, "n=1");
  assert.equal(json(0).slept, 300);
  assert.equal(json(1).query, "n=2");
  assert.equal(json(2).query, "n=3");
  assert.equal(Buffer.from(json(2).body_base64 as string, "base64").toString(), post);
  assert.ok("plugins" in json(3));
  assert.equal(defined(responses[5], "response 5").body.length, 0, "HEAD: no body");
  assert.equal(json(6).query, "n=7");
  assert.ok(closed, "Connection: close honoured after the last one");
  // Request ids are distinct: each answer belongs to its own request.
  const ids = responses.map((r) => r.headers["x-request-id"]);
  assert.equal(new Set(ids).size, ids.length);
});

test("after a framing error on one connection, other connections are unaffected", async () => {
  const [, firstAttack] = defined(ATTACKS[0], "an attack");
  const bad = send(firstAttack);
  const good = fetch(`${p.url}/alpha/echo?still=ok`);
  await bad;
  const res = await good;
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { query: string }).query, "still=ok");
});
