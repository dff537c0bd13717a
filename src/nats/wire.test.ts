import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { BROKEN_SEQ, brokenMessage, parseMessage, WireReceiver, WireSender } from "./wire.js";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("link wire", () => {
  test("what is written in one turn arrives whole, in order, in messages no bigger than max_payload", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 6 }), { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 1024, max: 4096 }),
        async (turns, maxPayload) => {
          const sent: Uint8Array[] = [];
          const sender = new WireSender(7, maxPayload, (m) => sent.push(m));
          for (const chunks of turns) {
            sender.write(chunks.map((c) => Buffer.from(c)));
            await turn();
          }
          const receiver = new WireReceiver();
          const got: Buffer[] = [];
          for (const m of sent) {
            assert.ok(m.length <= maxPayload, `${m.length} > ${maxPayload}`);
            const r = parseMessage(m);
            assert.equal(r.kind, "bytes");
            if (r.kind !== "bytes") return;
            assert.equal(r.epoch, 7);
            assert.ok(receiver.accept(r.seq), `seq ${r.seq} in order`);
            got.push(r.bytes);
          }
          assert.deepEqual(Buffer.concat(got), Buffer.concat(turns.flat().map((c) => Buffer.from(c))));
        },
      ),
      { numRuns: 200 },
    );
  });

  test("a lost message is a gap the receiver sees", async () => {
    const sent: Uint8Array[] = [];
    const sender = new WireSender(1, 1024, (m) => sent.push(m));
    sender.write([Buffer.alloc(5000)]);
    await turn();
    assert.ok(sent.length >= 5);
    const receiver = new WireReceiver();
    const seqs = sent.map((m) => (parseMessage(m) as { seq: number }).seq);
    assert.ok(receiver.accept(seqs[0] as number));
    assert.equal(receiver.accept(seqs[2] as number), false);
  });

  test("the broken message names its epoch; short messages are invalid; a stopped sender sends nothing", async () => {
    assert.deepEqual(parseMessage(brokenMessage(42)), { kind: "broken", epoch: 42 });
    assert.deepEqual(parseMessage(new Uint8Array(3)), { kind: "invalid" });
    const sent: Uint8Array[] = [];
    const sender = new WireSender(1, 1024, (m) => sent.push(m));
    sender.write([Buffer.from("x")]);
    sender.stop();
    await turn();
    assert.equal(sent.length, 0);
    assert.notEqual(BROKEN_SEQ, 0);
  });
});
