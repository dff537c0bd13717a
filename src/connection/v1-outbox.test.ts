import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { LineOutbox, textLine, withBase64 } from "./v1-outbox.js";

describe("withBase64", () => {
  test("the pieces join up to the base64 of the whole body, however it was cut", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 700 }), { maxLength: 8 }), (parts) => {
        const body = parts.map((p) => Buffer.from(p));
        const joined = [...withBase64("<", body, ">")].join("");
        assert.equal(joined, `<${Buffer.concat(body).toString("base64")}>`);
      }),
      { numRuns: 500 },
    );
  });

  test("a big body comes in several pieces", () => {
    const pieces = [...withBase64("", [Buffer.alloc(1024 * 1024, 1)], "")];
    assert.ok(pieces.length > 4, `${pieces.length} pieces`);
  });
});

describe("LineOutbox", () => {
  /** A sink whose backlog the test controls. */
  const sink = () => {
    const written: string[] = [];
    return { written, backlog: 0, write: (p: string[]) => void written.push(...p) };
  };

  test("lines go out whole and in order; a waiting line whose owner is dropped never goes out", () => {
    const s = sink();
    const box = new LineOutbox(s);
    s.backlog = 2 * 1024 * 1024; // the plugin isn't reading
    const a = {};
    const b = {};
    box.push({ owner: a, size: 10, pieces: withBase64("A:", [Buffer.from("aaaa")], "\n") });
    box.push({ owner: b, size: 10, pieces: withBase64("B:", [Buffer.from("bbbb")], "\n") });
    box.push(textLine("C\n"));
    assert.deepEqual(s.written, []);
    assert.equal(box.queued, 22, "both bodies and the text line are counted");
    box.drop(a);
    assert.equal(box.queued, 12);
    s.backlog = 0;
    box.drained();
    assert.equal(s.written.join(""), `B:${Buffer.from("bbbb").toString("base64")}\nC\n`);
    assert.equal(box.queued, 0);
  });

  test("a big line goes out over several turns, and nothing cuts into it", async () => {
    const s = sink();
    const box = new LineOutbox(s);
    box.push({ size: 3 << 20, pieces: withBase64("BIG:", [Buffer.alloc(3 << 20, 7)], "\n") });
    box.push(textLine("after\n"));
    const firstTurn = s.written.join("").length;
    assert.ok(firstTurn < 1 << 20, `${firstTurn} characters in the first turn`);
    for (let i = 0; i < 100 && !s.written.join("").endsWith("after\n"); i++) await new Promise((r) => setImmediate(r));
    const all = s.written.join("");
    assert.equal(all, `BIG:${Buffer.alloc(3 << 20, 7).toString("base64")}\nafter\n`);
  });
});
