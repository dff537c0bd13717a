import assert from "node:assert/strict";
import { test } from "node:test";
import { publishPieces } from "./v1.js";

test("publishPieces: the pieces make exactly the line JSON.stringify makes of the whole reply", () => {
  const replies = [
    { status: 200, headers: [["content-type", "text/plain"]] as [string, string][], body_base64: Buffer.from("hello").toString("base64") },
    { status: 204, headers: [], body_base64: "" },
    {
      status: 500,
      headers: [
        ["x-quote", 'a "b" \\ c'],
        ["x-unicode", "café"],
      ] as [string, string][],
      body_base64: "AAAA",
    },
  ];
  for (const reply of replies) {
    const whole = `${JSON.stringify({
      jsonrpc: "2.0",
      method: "broker.publish",
      params: {
        topic: "_inbox.1",
        event: { topic: "_inbox.1", source: "my_plugin", payload: { topic: "_inbox.1", reply_to: null, payload: reply } },
      },
    })}\n`;
    const pieces = publishPieces("my_plugin", "_inbox.1", reply);
    assert.equal(pieces.join(""), whole);
    assert.equal(pieces[1], reply.body_base64, "the base64 is a piece of its own");
  }
});
