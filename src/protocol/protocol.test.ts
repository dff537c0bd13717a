import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { GatewayError } from "../errors.js";
import { classify, LineSplitter } from "./jsonrpc.js";
import { decodeBase64, decodeReply, encodeRequest, replyEnvelope, validateReply } from "./v1.js";
import { encodeFrame, FrameParser, FrameType, frameHeader, ProtocolError, Session, type SessionOptions, type Stream } from "./v2.js";

const split = (chunks: Buffer[], max = 1024) => {
  const lines: string[] = [];
  const overflows: number[] = [];
  const s = new LineSplitter(
    max,
    (l) => lines.push(l.toString()),
    (n) => overflows.push(n),
  );
  for (const c of chunks) s.push(c);
  s.end();
  return { lines, overflows };
};

describe("LineSplitter", () => {
  test("any chunking of the stream gives the same lines", () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ unit: fc.constantFrom("a", "b", "{", "}", "é"), maxLength: 20 }), { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (lines, cuts) => {
          const whole = Buffer.from(lines.map((l) => `${l}\n`).join(""));
          const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b);
          const chunks: Buffer[] = [];
          let at = 0;
          for (const p of points) {
            chunks.push(whole.subarray(at, p));
            at = p;
          }
          chunks.push(whole.subarray(at));
          assert.deepEqual(
            split(chunks).lines,
            lines.filter((l) => l.length > 0),
          );
        },
      ),
    );
  });

  test("CRLF endings are accepted; a last line without newline counts", () => {
    assert.deepEqual(split([Buffer.from("a\r\nb\nc")]).lines, ["a", "b", "c"]);
  });

  test("a line over the limit is reported once, as soon as it passes it, and dropped whole; the next one survives", () => {
    const r = split(
      [Buffer.from("x".repeat(600)), Buffer.from("x".repeat(600)), Buffer.from("x".repeat(600)), Buffer.from("\nok\n")],
      1000,
    );
    assert.deepEqual(r.lines, ["ok"]);
    assert.deepEqual(r.overflows, [1200]);
  });
});

describe("classify", () => {
  test("requests, notifications, responses and junk", () => {
    assert.equal((classify({ jsonrpc: "2.0", id: 1, method: "m" }) as { kind: string }).kind, "request");
    assert.equal((classify({ jsonrpc: "2.0", method: "m" }) as { kind: string }).kind, "notification");
    assert.equal((classify({ jsonrpc: "2.0", id: 1, result: null }) as { kind: string }).kind, "response");
    for (const junk of [null, [1], "x", 3, { id: 1, method: "m" }, { jsonrpc: "2.0" }, { jsonrpc: "2.0", id: {}, method: "m" }]) {
      assert.equal(typeof classify(junk), "string", JSON.stringify(junk));
    }
  });
});

describe("v1 codec", () => {
  test("a body's base64 is put in place: the line is the same JSON as JSON.stringify would make", () => {
    const req = {
      method: "POST",
      path: "/demo/x",
      query: "",
      headers: [["Host", "h"]] as [string, string][],
      body_base64: "aGVsbG8gd29ybGQ=",
    };
    const f = JSON.parse(encodeRequest("demo", "_inbox.abc", req));
    assert.deepEqual(f.params.event.payload.payload, req);
    assert.deepEqual(Object.keys(f.params.event.payload.payload), ["method", "path", "query", "headers", "body_base64"]);
  });

  test("the hand-written request line is exactly JSON.stringify of nexo's envelope, escapes included", () => {
    const req = {
      method: "POST",
      path: '/demo/"quoted"\\back\u2028',
      query: "a=1&b=\u0001",
      headers: [
        ["Host", "h"],
        ["X-Odd", 'tab\tquote"nl\u00e9\ud83d\ude00'],
      ] as [string, string][],
      body_base64: "aGk=",
    };
    const line = encodeRequest("demo-1", "_inbox.abc", req);
    const f = JSON.parse(line);
    const rebuilt = JSON.stringify({
      jsonrpc: "2.0",
      method: "broker.event",
      params: {
        topic: "plugin.demo-1.http.request",
        event: {
          id: f.params.event.id,
          timestamp: f.params.event.timestamp,
          topic: "plugin.demo-1.http.request",
          source: "local",
          session_id: null,
          payload: { id: f.params.event.payload.id, topic: "plugin.demo-1.http.request", reply_to: "_inbox.abc", payload: req },
        },
      },
    });
    assert.equal(line, `${rebuilt}\n`);
    assert.match(f.params.event.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(f.params.event.id, f.params.event.payload.id);
  });

  test("the request frame is the seed's broker.event, byte for byte in shape", () => {
    const line = encodeRequest("demo", "_inbox.abc", {
      method: "GET",
      path: "/demo/x",
      query: "a=1",
      headers: [["Host", "h"]],
      body_base64: "",
    });
    assert.ok(line.endsWith("\n"));
    assert.ok(!line.slice(0, -1).includes("\n") && !line.includes("\r"));
    const f = JSON.parse(line);
    assert.equal(f.jsonrpc, "2.0");
    assert.equal(f.method, "broker.event");
    assert.equal(f.id, undefined);
    assert.equal(f.params.topic, "plugin.demo.http.request");
    const ev = f.params.event;
    assert.deepEqual(Object.keys(ev), ["id", "timestamp", "topic", "source", "session_id", "payload"]);
    assert.equal(ev.topic, "plugin.demo.http.request");
    assert.equal(ev.source, "local");
    assert.equal(ev.session_id, null);
    assert.ok(!Number.isNaN(Date.parse(ev.timestamp)));
    assert.deepEqual(ev.payload.topic, "plugin.demo.http.request");
    assert.equal(ev.payload.reply_to, "_inbox.abc");
    assert.deepEqual(ev.payload.payload, { method: "GET", path: "/demo/x", query: "a=1", headers: [["Host", "h"]], body_base64: "" });
  });

  test("replies: full Event, thin Event, and bare payload", () => {
    const http = { status: 201, headers: [["A", "1"]], body_base64: "aGk=" };
    const full = {
      topic: "_inbox.1",
      event: {
        id: "e",
        timestamp: "t",
        topic: "_inbox.1",
        source: "p",
        session_id: null,
        payload: { id: "m", topic: "_inbox.1", reply_to: null, payload: http },
      },
    };
    const thin = {
      topic: "_inbox.1",
      event: { topic: "_inbox.1", source: "p", payload: { topic: "_inbox.1", reply_to: null, payload: http } },
    };
    const bare = { topic: "_inbox.1", event: { topic: "_inbox.1", source: "p", payload: http } };
    for (const params of [full, thin, bare]) {
      const env = replyEnvelope(params);
      assert.ok(env);
      assert.equal(env.topic, "_inbox.1");
      const r = decodeReply(env.event);
      assert.equal(r.status, 201);
      assert.deepEqual(r.headers, [["A", "1"]]);
      assert.equal(r.body.toString(), "hi");
    }
  });

  test("defaults: headers [] and empty body", () => {
    const r = validateReply({ status: 204 });
    assert.deepEqual(r.headers, []);
    assert.equal(r.body.length, 0);
  });

  test("malformed replies are bad_reply", () => {
    const bad: Record<string, unknown>[] = [
      {},
      { status: "200" },
      { status: 99 },
      { status: 100 },
      { status: 600 },
      { status: 200.5 },
      { status: 200, headers: {} },
      { status: 200, headers: [["A"]] },
      { status: 200, headers: [["Bad Name", "x"]] },
      { status: 200, headers: [["", "x"]] },
      { status: 200, headers: [["X", "a\nb"]] },
      { status: 200, headers: [["X", "a\rb"]] },
      { status: 200, headers: [["X", "a\u0000b"]] },
      { status: 200, headers: [["X", "\u2028"]] },
      { status: 200, headers: [["X", 1]] },
      { status: 200, body_base64: 5 },
      { status: 200, body_base64: "abc" },
      { status: 200, body_base64: "ab$=" },
      { status: 200, body_base64: "a===" },
      { status: 200, body_base64: "aGk=\n" },
    ];
    for (const b of bad) {
      assert.throws(
        () => validateReply(b),
        (e: unknown) => e instanceof GatewayError && e.code === "bad_reply",
        JSON.stringify(b),
      );
    }
  });

  test("base64 round-trips every byte string", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const buf = Buffer.from(bytes);
        assert.deepEqual(decodeBase64(buf.toString("base64")), buf);
      }),
    );
  });
});

describe("LineSplitter.handOff", () => {
  test("bytes after the switching line go to the hand-off, not to onLine", () => {
    const lines: string[] = [];
    let rest: Buffer | undefined;
    const s: LineSplitter = new LineSplitter(
      1024,
      (l) => {
        lines.push(l.toString());
        if (l.toString() === "switch") s.handOff((r) => (rest = r));
      },
      () => {},
    );
    s.push(Buffer.from("a\nswitch\n\u0001\u0002\nnot a line"));
    assert.deepEqual(lines, ["a", "switch"]);
    assert.deepEqual(rest, Buffer.from("\u0001\u0002\nnot a line"));
  });
});

describe("v2 session", () => {
  const deliver = (to: () => Session, chunks: Buffer[]) => {
    const bytes = Buffer.concat(chunks);
    queueMicrotask(() => to().push(bytes));
    return true;
  };
  // Two sessions wired back to back, as host and plugin; like a pipe, delivery is asynchronous.
  const pair = (onStream: SessionOptions["onStream"], window = 1024) => {
    let host!: Session;
    let plugin!: Session;
    host = new Session({ sendWindow: window, recvWindow: window, write: (c) => deliver(() => plugin, c) });
    plugin = new Session({ sendWindow: window, recvWindow: window, write: (c) => deliver(() => host, c), onStream });
    return { host, plugin };
  };

  test("a request without body, answered, leaves no stream behind on either side", async () => {
    const { host, plugin } = pair((stream, _head, end) => {
      assert.equal(end, true);
      stream.sendHead({ status: 204, headers: [] }, true);
    });
    const s = host.open({ method: "GET", path: "/x" }, true);
    let head: unknown;
    s.handlers.onHead = (h) => (head = h);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(head, { status: 204, headers: [] });
    assert.equal(host.streamCount, 0);
    assert.equal(plugin.streamCount, 0);
  });

  test("DATA never exceeds the window until credit comes back", async () => {
    let sent = 0;
    let got = 0;
    let stream!: Stream;
    const { host } = pair((s) => {
      stream = s;
      s.handlers.onData = (chunk) => (got += chunk.length);
    }, 1000);
    const s = host.open({ method: "POST", path: "/x" }, false);
    const done = s.sendData(Buffer.alloc(5000)).then(() => (sent = 5000));
    await new Promise((r) => setImmediate(r));
    assert.equal(got, 1000);
    assert.equal(sent, 0);
    stream.consumed(1000);
    await new Promise((r) => setImmediate(r));
    assert.equal(got, 2000);
    for (let i = 0; i < 3; i++) {
      stream.consumed(1000);
      await new Promise((r) => setImmediate(r));
    }
    await done;
    assert.equal(got, 5000);
  });

  test("END waits for the bytes sent before it, even while they wait for credit", async () => {
    let got = 0;
    let endedAt = -1;
    let stream!: Stream;
    const { host } = pair((s) => {
      stream = s;
      s.handlers.onData = (chunk, end) => {
        got += chunk.length;
        if (end) endedAt = got;
      };
    }, 1000);
    const s = host.open({ method: "POST", path: "/x" }, false);
    const sent = s.sendData(Buffer.alloc(5000));
    const ended = s.end(); // called at once, as the gateway does on the request's 'end'
    await new Promise((r) => setImmediate(r));
    assert.equal(endedAt, -1, "END must not overtake the bytes still waiting for credit");
    for (let i = 0; i < 5 && endedAt < 0; i++) {
      stream.consumed(1000);
      await new Promise((r) => setImmediate(r));
    }
    await Promise.all([sent, ended]);
    assert.equal(endedAt, 5000);
  });

  test("RESET reaches the other side's handler; frames after it are ignored", async () => {
    let reset: string | undefined;
    const { host } = pair((s) => {
      s.handlers.onReset = (code) => (reset = code);
    });
    const s = host.open({ method: "GET", path: "/x" }, false);
    s.reset("cancel");
    await new Promise((r) => setImmediate(r));
    assert.equal(reset, "cancel");
    assert.equal(host.streamCount, 0);
  });

  test("a frame header announcing more than 16 MiB is a protocol error", () => {
    const parser = new FrameParser(() => {});
    const h = frameHeader(FrameType.DATA, 0, 1, 16 * 1024 * 1024 + 1);
    assert.throws(() => parser.push(h), ProtocolError);
  });

  test("frames survive any chunking of the byte stream", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 50 }), { maxLength: 6 }), fc.nat({ max: 7 }), (payloads, step) => {
        // Odd frames carry END, and a DATA payload may arrive in pieces: END only on the last one.
        const wire = Buffer.concat(payloads.map((p, i) => encodeFrame(FrameType.DATA, i % 2, i + 1, Buffer.from(p))));
        const got = new Map<number, Buffer[]>();
        const ends: number[] = [];
        const parser = new FrameParser((f) => {
          assert.ok(!ends.includes(f.stream), "nothing after END");
          got.set(f.stream, [...(got.get(f.stream) ?? []), Buffer.from(f.payload)]);
          if (f.flags & 1) ends.push(f.stream);
        });
        const size = step + 1;
        for (let at = 0; at < wire.length; at += size) parser.push(wire.subarray(at, at + size));
        assert.deepEqual(
          payloads.map((_, i) => Buffer.concat(got.get(i + 1) ?? [])),
          payloads.map((p) => Buffer.from(p)),
        );
        assert.deepEqual(
          ends,
          payloads.map((_, i) => i + 1).filter((id) => id % 2 === 0),
        );
      }),
    );
  });
});
