import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { GatewayError } from "../errors.js";
import { decodeBase64, decodeBase64Bytes, decodeReply, endLine, parseLine, replyEnvelope } from "./v1.js";

const BODY = randomBytes(200 * 1024);

/** A nexo reply line (`broker.publish` to an inbox) around `http`, written by `stringify`. */
function replyLine(
  http: Record<string, unknown>,
  stringify: (v: unknown) => string = JSON.stringify,
  extra: Record<string, unknown> = {},
): Buffer {
  const msg = {
    jsonrpc: "2.0",
    method: "broker.publish",
    params: {
      topic: "_inbox.1",
      event: { topic: "_inbox.1", source: "p", ...extra, payload: { topic: "_inbox.1", reply_to: null, payload: http } },
    },
  };
  return Buffer.from(stringify(msg));
}

/** The reply as the daemon reads it: parsed (spliced or not), then decoded. */
function read(line: Buffer, parse: (l: Buffer) => unknown) {
  const value = parse(line) as { params: unknown };
  try {
    const env = replyEnvelope(value.params);
    assert.ok(env);
    return decodeReply(env.event);
  } finally {
    endLine();
  }
}
const plain = (l: Buffer) => JSON.parse(l.toString("utf8"));

test("parseLine: a big body reads the same spliced out as parsed whole, however the JSON is spaced", () => {
  const http = {
    status: 200,
    headers: [
      ["Content-Type", "application/octet-stream"],
      ["X-Name", "café"],
    ],
    body_base64: BODY.toString("base64"),
  };
  const pythonish = (v: unknown) => JSON.stringify(v, null, 1).replace(/\n\s*/g, " ");
  for (const stringify of [JSON.stringify, pythonish]) {
    const line = replyLine(http, stringify);
    const spliced = read(line, parseLine);
    assert.deepEqual(spliced, read(line, plain));
    assert.ok(spliced.body.equals(BODY));
    assert.deepEqual(spliced.headers[1], ["X-Name", "café"]);
  }
});

test("parseLine: escaped slashes, and a long body_base64 elsewhere in the line, are read as JSON.parse reads them", () => {
  const http = { status: 200, headers: [], body_base64: BODY.toString("base64") };
  const escaped = Buffer.from(replyLine(http).toString().replaceAll("/", "\\/"));
  assert.ok(read(escaped, parseLine).body.equals(BODY));
  // The last body_base64 key is not the reply's: the reply's is parsed as usual.
  const decoy = { body_base64: randomBytes(100 * 1024).toString("base64") };
  const line = Buffer.from(`${replyLine(http).toString().slice(0, -1)},"decoy":${JSON.stringify(decoy)}}`);
  assert.ok(read(line, parseLine).body.equals(BODY));
});

test("parseLine: a body that is not valid base64 is refused as it is without splicing", () => {
  const bad = { status: 200, headers: [], body_base64: `${BODY.toString("base64url")}` };
  const line = replyLine(bad);
  assert.throws(() => read(line, parseLine), GatewayError);
  assert.throws(() => read(line, plain), GatewayError);
});

test("the placeholder is nobody's to use: written by a plugin, or left from an earlier line, it is not a body", () => {
  const forged = replyLine({ status: 200, headers: [], body_base64: "\u0000portico:spliced-body" });
  assert.throws(() => read(forged, parseLine), GatewayError);
  // A big line whose body nobody took, then a forged placeholder: the old body is gone.
  parseLine(replyLine({ status: 200, headers: [], body_base64: BODY.toString("base64") }));
  endLine();
  assert.throws(() => decodeBase64("\u0000portico:spliced-body"), GatewayError);
});

test("decodeBase64Bytes decodes in pieces what decodeBase64 and Buffer.from decode whole", () => {
  // Over a piece (512 Ki characters) and not a multiple of it; each padding; an empty body.
  for (const size of [0, 1, 2, 3, 700 * 1024 + 1, 700 * 1024 + 2, 384 * 1024]) {
    const body = randomBytes(size);
    const b64 = body.toString("base64");
    assert.ok(decodeBase64Bytes(Buffer.from(b64, "latin1"), true).equals(body), `strict, ${size} bytes`);
    assert.ok(decodeBase64Bytes(Buffer.from(b64, "latin1"), false).equals(decodeBase64(b64)), `lenient, ${size} bytes`);
  }
  const strictRefuses = ["abc", "ab=c", "a-bc", "a_bc", "ab!c", "ab\nc"];
  for (const bad of strictRefuses) {
    assert.throws(() => decodeBase64Bytes(Buffer.from(bad, "latin1"), true), GatewayError, bad);
    assert.throws(() => decodeBase64(bad), GatewayError, bad);
    assert.ok(decodeBase64Bytes(Buffer.from(bad, "latin1"), false).equals(Buffer.from(bad, "base64")), `lenient ${bad}`);
  }
});
