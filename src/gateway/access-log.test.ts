import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pino } from "pino";
import { type AccessEntry, accessLine } from "./access-log.js";

/** What pino itself writes for the entry, with the logger createLogger makes (isoTime, no base). */
function pinoLine(entry: AccessEntry, time: string): string {
  let out = "";
  const sink = new Writable({
    write(chunk, _enc, done) {
      out += String(chunk);
      done();
    },
  });
  const log = pino({ level: "info", base: undefined, timestamp: () => `,"time":"${time}"` }, sink);
  log.info(entry, "request");
  return out;
}

test("the hand-written access line is byte for byte pino's, for every shape of entry", async () => {
  const time = new Date().toISOString();
  const entries: AccessEntry[] = [
    { reqId: "a1", method: "GET", path: "/v1/small", plugin: "bench-v1", status: 200, websocket: undefined, ms: 0.4 },
    { reqId: "b2", method: "POST", path: '/x/"q"\\\\?a=\u0001é😀', plugin: undefined, status: 404, websocket: undefined, ms: 12 },
    { reqId: "c3", method: "GET", path: "/ws", plugin: "chat", status: 101, websocket: true, ms: 1234.5 },
    { reqId: "d4", method: undefined, path: undefined, plugin: "p", status: 400, websocket: false, ms: 0 },
  ];
  for (const e of entries) {
    const expected = pinoLine(e, time);
    await new Promise((r) => setImmediate(r));
    assert.equal(accessLine(e, time), expected);
  }
});
