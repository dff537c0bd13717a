import assert from "node:assert/strict";
import { test } from "node:test";
import { appFailure, appRequestHeaders, headerPairs, mayRetry } from "./request.js";

test("with a token: portico's Authorization, the client's moved to X-Forwarded-Authorization, Expect dropped", () => {
  const out = appRequestHeaders(
    [
      ["Host", "example.org"],
      ["Authorization", "Basic a"],
      ["authorization", "Bearer b"],
      ["X-Forwarded-Authorization", "made up"],
      ["X_Forwarded_Authorization", "made up too"],
      ["Expect", "100-continue"],
      ["X-Request-Id", "r1"],
    ],
    "tok",
  );
  assert.deepEqual(out, [
    ["Host", "example.org"],
    ["X-Forwarded-Authorization", "Basic a"],
    ["X-Forwarded-Authorization", "Bearer b"],
    ["X-Request-Id", "r1"],
    ["Authorization", "Bearer tok"],
  ]);
});

test("without a token: the client's Authorization passes unchanged, nothing is added", () => {
  const out = appRequestHeaders(
    [
      ["Authorization", "Basic a"],
      ["expect", "100-continue"],
    ],
    undefined,
  );
  assert.deepEqual(out, [["Authorization", "Basic a"]]);
});

test("raw header lists become pairs (latin-1 bytes kept)", () => {
  assert.deepEqual(headerPairs([Buffer.from("X-A"), Buffer.from([0x63, 0xe9]), "Set-Cookie", "a=1", "Set-Cookie", "b=2"]), [
    ["X-A", "c\u00e9"],
    ["Set-Cookie", "a=1"],
    ["Set-Cookie", "b=2"],
  ]);
});

test("failures reaching the app map to one typed error each", () => {
  const of = (code: string | undefined, message = "x") => appFailure(Object.assign(new Error(message), { code })).code;
  assert.equal(of("ECONNREFUSED"), "app_unreachable");
  assert.equal(of("UND_ERR_CONNECT_TIMEOUT"), "app_unreachable");
  assert.equal(of("UND_ERR_SOCKET"), "app_disconnected");
  assert.equal(of("ECONNRESET"), "app_disconnected");
  assert.equal(of("HPE_INVALID_CONSTANT"), "bad_reply");
  assert.equal(of("UND_ERR_RES_CONTENT_LENGTH_MISMATCH"), "bad_reply");
  assert.equal(of("WS_ERR_INVALID_OPCODE"), "bad_reply");
  assert.equal(of(undefined, "Invalid Sec-WebSocket-Accept header"), "bad_reply");
  assert.equal(of("UND_ERR_REQ_CONTENT_LENGTH_MISMATCH"), "bad_request");
  assert.equal(appFailure(Object.assign(new Error("x"), { code: "ECONNREFUSED" })).status, 502);
});

test("retried once: a lost connection under an idempotent request without a body, nothing else", () => {
  const lost = (code: string) => Object.assign(new Error("other side closed"), { code });
  assert.equal(mayRetry(lost("UND_ERR_SOCKET"), "GET", false), true);
  assert.equal(mayRetry(lost("ECONNRESET"), "DELETE", false), true);
  assert.equal(mayRetry(lost("EPIPE"), "HEAD", false), true);
  assert.equal(mayRetry(lost("UND_ERR_SOCKET"), "POST", false), false, "not idempotent");
  assert.equal(mayRetry(lost("UND_ERR_SOCKET"), "PUT", true), false, "a body that can't be sent again");
  assert.equal(mayRetry(lost("ECONNREFUSED"), "GET", false), false, "refused: nothing listens, trying again won't change it");
  assert.equal(mayRetry(lost("HPE_INVALID_STATUS"), "GET", false), false, "an answer, a malformed one");
  assert.equal(mayRetry(new Error("no code"), "GET", false), false);
});
