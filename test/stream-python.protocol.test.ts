/**
 * examples/plugins/stream-python against protocol v2 directly (docs/protocol.md), with no portico
 * in between: this test plays the host. It spawns the plugin, does the §1 handshake by hand, then
 * drives streams with the same Session class portico uses (src/protocol/v2.ts). A second parser
 * taps the raw frames so the test can see what Session hides (frames after a RESET, frame sizes).
 *
 * Timing is asserted loosely (orderings and lower bounds only) and every wait is bounded.
 */
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_WINDOW, encodeFrame, type Frame, FrameParser, FrameType, Session, type Stream, WsOpcode } from "../src/protocol/v2.js";

const PLUGIN_DIR = fileURLToPath(new URL("../examples/plugins/stream-python/", import.meta.url));
const PREFIX = "/stream";
const WAIT_MS = 10_000;

/** `p`, or a rejection naming `what` after `ms`. */
function within<T>(p: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `cond` every 10 ms until it holds (bounded). */
async function until(cond: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(10);
  }
}

interface Tapped {
  at: number;
  frame: Frame;
}

const running = new Set<ChildProcessWithoutNullStreams>();
after(() => {
  for (const child of running) child.kill("SIGKILL"); // only if a test failed half-way
});

/** One plugin process, seen from the host's side of its pipes. */
class Plugin {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr = "";
  /** Every frame the plugin sent after the switch, in order, with its arrival time. */
  readonly frames: Tapped[] = [];
  readonly rpcs: Record<string, unknown>[] = [];
  session: Session | undefined;
  #pending = Buffer.alloc(0);
  #onLine: ((line: string) => void) | undefined;
  #lines: string[] = [];
  #tap = new FrameParser((frame) => this.frames.push({ at: Date.now(), frame }));

  constructor() {
    this.child = spawn("python3", ["-u", "plugin.py"], { cwd: PLUGIN_DIR, stdio: ["pipe", "pipe", "pipe"] });
    running.add(this.child);
    this.exited = new Promise((resolve) =>
      this.child.on("exit", (code, signal) => {
        running.delete(this.child);
        resolve({ code, signal });
      }),
    );
    this.child.stderr.on("data", (c: Buffer) => (this.stderr += c.toString()));
    this.child.stdin.on("error", () => {}); // EPIPE once the plugin exited: the test sees the exit
    this.child.stdout.on("data", (chunk: Buffer) => this.#onStdout(chunk));
  }

  #onStdout(chunk: Buffer): void {
    if (this.session) {
      this.#tap.push(chunk);
      this.session.push(chunk);
      return;
    }
    this.#pending = Buffer.concat([this.#pending, chunk]);
    for (let nl = this.#pending.indexOf(10); nl >= 0 && !this.session; nl = this.#pending.indexOf(10)) {
      const line = this.#pending.subarray(0, nl).toString("utf8");
      this.#pending = this.#pending.subarray(nl + 1);
      const onLine = this.#onLine;
      this.#onLine = undefined;
      if (onLine) onLine(line);
      else this.#lines.push(line);
    }
    if (this.session && this.#pending.length > 0) {
      // §1: the byte after the reply's newline is the first byte of the frame stream.
      const rest = this.#pending;
      this.#pending = Buffer.alloc(0);
      this.#onStdout(rest);
    }
  }

  /** The next line on stdout (before the switch, or for ever under v1). */
  nextLine(what: string): Promise<Record<string, unknown>> {
    const queued = this.#lines.shift();
    if (queued !== undefined) return Promise.resolve(JSON.parse(queued) as Record<string, unknown>);
    return within(new Promise((resolve) => (this.#onLine = (line) => resolve(JSON.parse(line) as Record<string, unknown>))), what);
  }

  writeLine(msg: unknown): void {
    this.child.stdin.write(`${JSON.stringify(msg)}\n`);
  }

  /** Raw bytes to the plugin's stdin (a hand-made frame). */
  writeRaw(buf: Buffer): void {
    this.child.stdin.write(buf);
  }

  /** §1 with a v2 offer; switches to frames when the plugin takes it. Returns the reply. */
  handshake(window = DEFAULT_WINDOW): Promise<Record<string, unknown>> {
    const reply = within(
      new Promise<Record<string, unknown>>((resolve) => {
        // Called synchronously with the reply line, so that the session is in place before the
        // bytes that follow it in the same chunk are looked at.
        this.#onLine = (line) => {
          const msg = JSON.parse(line) as Record<string, unknown>;
          const portico = (msg.result as { portico?: { protocol?: number; window?: number } } | undefined)?.portico;
          if (portico?.protocol === 2) this.#startSession(portico.window ?? DEFAULT_WINDOW, window);
          resolve(msg);
        };
      }),
      "the initialize reply",
    );
    this.writeLine({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5", portico: { protocols: [2], window } } });
    return reply;
  }

  #startSession(sendWindow: number, recvWindow: number): void {
    const session = new Session({
      sendWindow,
      recvWindow,
      write: (chunks) => {
        let ok = true;
        for (const c of chunks) ok = this.child.stdin.write(c);
        return ok;
      },
      onRpc: (msg) => this.rpcs.push(msg as Record<string, unknown>),
    });
    this.child.stdin.on("drain", () => session.drained());
    this.session = session;
  }

  /** Opens a stream like portico would: full path with the prefix, forwarding headers added. */
  open(
    method: string,
    path: string,
    opts: { query?: string; headers?: [string, string][]; end?: boolean; upgrade?: boolean } = {},
  ): Stream {
    assert.ok(this.session, "v2 session");
    const headers: [string, string][] = [
      ["Host", "127.0.0.1:8080"],
      ...(opts.headers ?? []),
      ["X-Forwarded-Prefix", PREFIX],
      ["X-Request-Id", "test"],
    ];
    const head: Record<string, unknown> = { method, path: PREFIX + path, query: opts.query ?? "", headers };
    if (opts.upgrade) head.upgrade = "websocket";
    return this.session.open(head, opts.end ?? true);
  }

  dataFrames(stream: number): Tapped[] {
    return this.frames.filter((t) => t.frame.stream === stream && t.frame.type === FrameType.DATA);
  }

  async rpc(id: number, what: string): Promise<Record<string, unknown>> {
    await until(() => this.rpcs.some((m) => m.id === id), what);
    return this.rpcs.find((m) => m.id === id) as Record<string, unknown>;
  }

  async shutdown(id = 99, ms = WAIT_MS): Promise<void> {
    this.session?.sendRpc({ jsonrpc: "2.0", id, method: "shutdown", params: { reason: "host requested" } });
    const reply = await within(this.rpc(id, "the shutdown reply"), "the shutdown reply", ms);
    assert.deepEqual(reply, { jsonrpc: "2.0", id, result: { ok: true } });
    const exit = await within(this.exited, "the plugin's exit");
    assert.deepEqual(exit, { code: 0, signal: null }, this.stderr);
  }
}

async function startV2(window = DEFAULT_WINDOW): Promise<Plugin> {
  const p = new Plugin();
  const reply = await p.handshake(window);
  const result = reply.result as Record<string, unknown>;
  assert.equal(reply.id, 1);
  assert.equal((result.manifest as { plugin: { id: string } }).plugin.id, "stream_python");
  assert.equal(typeof result.server_version, "string");
  assert.deepEqual(result.portico, { protocol: 2, window: 1048576 });
  return p;
}

interface Response {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

/** Collects a response, returning credit as a prompt client would. Rejects on RESET. */
function collect(
  stream: Stream,
  what: string,
): { head: Promise<{ status: number; headers: [string, string][] }>; done: Promise<Response> } {
  let headOk!: (h: { status: number; headers: [string, string][] }) => void;
  let fail!: (e: Error) => void;
  let finish!: (r: Response) => void;
  const head = new Promise<{ status: number; headers: [string, string][] }>((resolve, reject) => {
    headOk = resolve;
    fail = reject;
  });
  const done = new Promise<Response>((resolve, reject) => {
    finish = resolve;
    head.catch(reject);
  });
  const parts: Buffer[] = [];
  let h: { status: number; headers: [string, string][] } | undefined;
  stream.handlers = {
    onHead(value, end) {
      h = value as { status: number; headers: [string, string][] };
      headOk(h);
      if (end) finish({ ...h, body: Buffer.alloc(0) });
    },
    onData(chunk, end) {
      parts.push(Buffer.from(chunk));
      stream.consumed(chunk.length);
      if (end && h) finish({ ...h, body: Buffer.concat(parts) });
    },
    onReset(code, message) {
      fail(new Error(`stream reset: ${code} ${message ?? ""}`));
    },
  };
  void done.catch(() => {});
  // Bounded waits, started only when awaited (a test that resets the stream never awaits `done`).
  return {
    get head() {
      return within(head, `${what}: response HEAD`);
    },
    get done() {
      return within(done, `${what}: response`);
    },
  };
}

const header = (r: { headers: [string, string][] }, name: string) => r.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];

function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = i % 251;
  return b;
}

const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

test("handshake, routes, errors; the plugin exits when stdin ends", { timeout: 30_000 }, async () => {
  const p = await startV2();
  const index = await collect(p.open("GET", "/"), "GET /").done;
  assert.equal(index.status, 200);
  assert.match(index.body.toString(), /\/stream\/events\?n=10&interval_ms=100/);
  assert.equal(header(index, "Content-Length"), String(index.body.length));

  assert.equal((await collect(p.open("GET", "/nope"), "GET /nope").done).status, 404);
  assert.equal((await collect(p.open("POST", "/events"), "POST /events").done).status, 405);
  const bad = await collect(p.open("GET", "/events", { query: "n=lots" }), "GET /events?n=lots").done;
  assert.equal(bad.status, 400);
  assert.match(bad.body.toString(), /n must be an integer/);
  const plain = await collect(p.open("GET", "/ws"), "GET /ws without upgrade").done;
  assert.equal(plain.status, 426);

  // An RPC request the plugin does not know gets -32601.
  p.session?.sendRpc({ jsonrpc: "2.0", id: 5, method: "frobnicate", params: {} });
  const unknown = await p.rpc(5, "the -32601 reply");
  assert.equal((unknown.error as { code: number }).code, -32601);

  p.child.stdin.end();
  assert.deepEqual(await within(p.exited, "exit after EOF"), { code: 0, signal: null });
});

test("SSE: one event per DATA frame, spaced out in time, then END", { timeout: 30_000 }, async () => {
  const p = await startV2();
  const stream = p.open("GET", "/events", { query: "n=5&interval_ms=150" });
  const r = collect(stream, "SSE");
  const head = await r.head;
  assert.equal(head.status, 200);
  assert.equal(header(head, "Content-Type"), "text/event-stream");
  assert.equal(header(head, "Cache-Control"), "no-cache");
  const res = await r.done;
  assert.equal(res.body.toString(), "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");

  const frames = p.dataFrames(stream.id).filter((t) => t.frame.payload.length > 0);
  assert.deepEqual(
    frames.map((t) => t.frame.payload.toString()),
    [0, 1, 2, 3, 4].map((i) => `data: ${i}\n\n`),
  );
  // Four intervals of 150 ms separate the first event from the last: allow a lot of slack, but
  // the first must have arrived well before the last (nothing was buffered up).
  const first = frames[0] as Tapped;
  const last = frames[4] as Tapped;
  assert.ok(last.at - first.at >= 300, `first event ${last.at - first.at} ms before the last`);
  await p.shutdown();
});

test("RESET mid-SSE stops the events and the handler", { timeout: 30_000 }, async () => {
  const p = await startV2();
  const stream = p.open("GET", "/events", { query: "n=1000&interval_ms=50" });
  const r = collect(stream, "SSE");
  assert.equal((await r.head).status, 200);
  await until(() => p.dataFrames(stream.id).length >= 3, "three events");
  stream.reset("cancel", "client went away");
  const atReset = p.dataFrames(stream.id).length;
  await sleep(500); // ten intervals
  // One event may have been on its way when the RESET arrived; no more after that.
  assert.ok(p.dataFrames(stream.id).length <= atReset + 1, `${p.dataFrames(stream.id).length - atReset} events after the RESET`);

  // A RESET also cuts the wait between two events short: this handler sleeps 5 s between them.
  const slow = p.open("GET", "/events", { query: "n=10&interval_ms=5000" });
  await until(() => p.dataFrames(slow.id).length >= 1, "the first slow event");
  slow.reset("cancel", "client went away");
  // shutdown waits for running handlers: an answer within 1.5 s proves both stopped (the first
  // had ~50 s to go, the second was in the middle of a 5 s pause).
  await p.shutdown(99, 1_500);
  assert.match(p.stderr, /reset by portico \(cancel/);
});

test("echo: full duplex, 5 MiB streamed back unchanged", { timeout: 60_000 }, async () => {
  const p = await startV2();
  const stream = p.open("POST", "/echo", { headers: [["Content-Type", "application/x-test"]], end: false });
  const r = collect(stream, "echo");
  // The response HEAD comes before any of the body was sent.
  const head = await r.head;
  assert.equal(head.status, 200);
  assert.equal(header(head, "Content-Type"), "application/x-test");

  const body = randomBytes(5 * 1024 * 1024);
  const sent = within(stream.sendData(body, true), "the upload");
  const res = await r.done;
  await sent;
  assert.equal(res.body.length, body.length);
  assert.ok(res.body.equals(body), "echoed bytes differ");
  for (const t of p.dataFrames(stream.id)) assert.ok(t.frame.payload.length <= 64 * 1024, "DATA frame over 64 KiB");
  await p.shutdown();
});

test("count: byte count and sha256 of 3 MiB", { timeout: 60_000 }, async () => {
  const p = await startV2();
  const stream = p.open("POST", "/count", { end: false });
  const r = collect(stream, "count");
  const body = randomBytes(3 * 1024 * 1024);
  // Sent in odd-sized pieces: the plugin must not care how the body is framed.
  for (let at = 0; at < body.length; at += 100_003) {
    await within(stream.sendData(body.subarray(at, Math.min(at + 100_003, body.length))), "an upload piece");
  }
  await within(stream.end(), "the upload's END");
  const res = await r.done;
  assert.equal(res.status, 200);
  assert.equal(header(res, "Content-Type"), "application/json");
  assert.deepEqual(JSON.parse(res.body.toString()), { bytes: body.length, sha256: sha256(body) });
  await p.shutdown();
});

test("bytes: 3 000 000 bytes of the i % 251 pattern in frames of at most 64 KiB", { timeout: 60_000 }, async () => {
  const p = await startV2();
  const stream = p.open("GET", "/bytes", { query: "n=3000000" });
  const res = await collect(stream, "bytes").done;
  assert.equal(res.status, 200);
  assert.equal(header(res, "Content-Length"), "3000000");
  assert.ok(res.body.equals(pattern(3_000_000)), "pattern mismatch");
  const frames = p.dataFrames(stream.id);
  assert.ok(
    frames.every((t) => t.frame.payload.length <= 64 * 1024),
    "DATA frame over 64 KiB",
  );
  await p.shutdown();
});

test("flow control: never more than the window without a WINDOW; other streams go on", { timeout: 60_000 }, async () => {
  const WINDOW = 200_000; // not a multiple of 64 KiB
  const N = 1_000_000;
  const p = await startV2(WINDOW);
  const stream = p.open("GET", "/bytes", { query: `n=${N}` });
  const parts: Buffer[] = [];
  let received = 0;
  let granted = 0;
  let granting = false;
  let overrun = "";
  let ended = false;
  const grant = (n: number) => {
    const c = Buffer.allocUnsafe(4);
    c.writeUInt32BE(n, 0);
    p.writeRaw(encodeFrame(FrameType.WINDOW, 0, stream.id, c));
    granted += n;
  };
  stream.handlers = {
    onData(chunk, end) {
      parts.push(Buffer.from(chunk));
      received += chunk.length;
      if (received > WINDOW + granted && !overrun) overrun = `received ${received} with window ${WINDOW} + granted ${granted}`;
      if (granting && chunk.length > 0) grant(chunk.length); // like a prompt client, from now on
      if (end) ended = true;
    },
  };

  // Until we grant anything, the plugin sends at most WINDOW bytes, and then it waits.
  let last = -1;
  let quietSince = Date.now();
  await until(() => {
    if (received !== last) {
      last = received;
      quietSince = Date.now();
    }
    return received > 0 && Date.now() - quietSince >= 400;
  }, "the stream to stall for lack of credit");
  assert.ok(received <= WINDOW, `received ${received} bytes before any WINDOW (window ${WINDOW})`);
  assert.ok(received > WINDOW - 64 * 1024, `only ${received} bytes sent out of a window of ${WINDOW}`);
  assert.equal(ended, false);

  // A stalled stream holds up only itself.
  const other = await collect(p.open("GET", "/"), "GET / beside the stalled stream").done;
  assert.equal(other.status, 200);
  assert.equal(received, last, "the stalled stream moved without credit");

  granting = true;
  grant(received);
  await until(() => ended, "the end of the body");
  assert.equal(overrun, "");
  assert.ok(Buffer.concat(parts).equals(pattern(N)), "pattern mismatch");
  await p.shutdown();
});

/** Collects WS messages from a stream and returns credit for them. */
function wsInbox(stream: Stream, grant = true) {
  const messages: { opcode: number; payload: Buffer }[] = [];
  let head: { status: number } | undefined;
  stream.handlers = {
    onHead(value) {
      head = value as { status: number };
    },
    onWs(opcode, payload) {
      messages.push({ opcode, payload: Buffer.from(payload) });
      if (grant) stream.consumed(payload.length);
    },
  };
  return {
    messages,
    head: async () => {
      await until(() => head !== undefined, "the 101");
      return head as { status: number };
    },
    next: async (what: string) => {
      await until(() => messages.length > 0, what);
      return messages.shift() as { opcode: number; payload: Buffer };
    },
  };
}

function closePayload(code: number, reason: string): Buffer {
  const r = Buffer.from(reason);
  const out = Buffer.allocUnsafe(2 + r.length);
  out.writeUInt16BE(code, 0);
  r.copy(out, 2);
  return out;
}

for (const headEnd of [true, false]) {
  test(`WebSocket (request HEAD ${headEnd ? "with" : "without"} END): echo text and binary, credit returned, close echoed`, {
    timeout: 60_000,
  }, async () => {
    const p = await startV2();
    const stream = p.open("GET", "/ws", { upgrade: true, end: headEnd, headers: [["Sec-WebSocket-Protocol", "chat"]] });
    const ws = wsInbox(stream);
    assert.equal((await ws.head()).status, 101);

    await within(stream.sendWs(WsOpcode.TEXT, Buffer.from("hello, wörld")), "send text");
    assert.deepEqual(await ws.next("the text echo"), { opcode: WsOpcode.TEXT, payload: Buffer.from("hello, wörld") });
    const bin = Buffer.from([0, 1, 2, 254, 255]);
    await within(stream.sendWs(WsOpcode.BINARY, bin), "send binary");
    assert.deepEqual(await ws.next("the binary echo"), { opcode: WsOpcode.BINARY, payload: bin });

    // 3 MiB of messages through a 1 MiB window each way: only works if the plugin grants credit
    // back for what it received, and waits for ours before sending.
    const big = randomBytes(100 * 1024);
    for (let i = 0; i < 30; i++) {
      await within(stream.sendWs(WsOpcode.BINARY, big), `send big message ${i}`);
    }
    for (let i = 0; i < 30; i++) {
      const m = await ws.next(`big echo ${i}`);
      assert.equal(m.opcode, WsOpcode.BINARY);
      assert.ok(m.payload.equals(big), `big echo ${i} differs`);
    }

    // The client closes: the plugin echoes the close, code and reason.
    const close = closePayload(1000, "bye");
    await within(stream.sendWs(WsOpcode.CLOSE, close), "send close");
    assert.deepEqual(await ws.next("the close echo"), { opcode: WsOpcode.CLOSE, payload: close });
    stream.finish();

    // "close:<code>" makes the plugin close with that code.
    const second = p.open("GET", "/ws", { upgrade: true, end: headEnd });
    const ws2 = wsInbox(second);
    assert.equal((await ws2.head()).status, 101);
    await within(second.sendWs(WsOpcode.TEXT, Buffer.from("close:nope")), "send bad close");
    assert.equal((await ws2.next("the complaint")).opcode, WsOpcode.TEXT);
    await within(second.sendWs(WsOpcode.TEXT, Buffer.from("close:4001")), "send close:4001");
    const closed = await ws2.next("the plugin's close");
    assert.equal(closed.opcode, WsOpcode.CLOSE);
    assert.equal(closed.payload.readUInt16BE(0), 4001);
    second.finish();

    // The client's close is echoed even when the plugin has no credit left: portico finished the
    // stream when it sent the close, so it would never grant more.
    const third = p.open("GET", "/ws", { upgrade: true, end: headEnd });
    const ws3 = wsInbox(third, false);
    assert.equal((await ws3.head()).status, 101);
    const piece = randomBytes(64 * 1024);
    for (let i = 0; i < 16; i++) await within(third.sendWs(WsOpcode.BINARY, piece), `send piece ${i}`);
    await until(() => ws3.messages.length === 16, "16 echoes: the plugin's whole window, never granted back");
    assert.ok(ws3.messages.splice(0).every((m) => m.payload.equals(piece)));
    await within(third.sendWs(WsOpcode.CLOSE, close), "send close");
    assert.deepEqual(await ws3.next("the close echo without credit"), { opcode: WsOpcode.CLOSE, payload: close });
    third.finish();

    // All three handlers are done: shutdown does not wait.
    await p.shutdown(99, 3_000);
  });
}

test("shutdown: running streams finish first, new ones get 503, then {ok:true} and exit 0", { timeout: 30_000 }, async () => {
  const p = await startV2();
  const sse = p.open("GET", "/events", { query: "n=5&interval_ms=100" });
  const r = collect(sse, "SSE during shutdown");
  assert.equal((await r.head).status, 200);
  p.session?.sendRpc({ jsonrpc: "2.0", id: 7, method: "shutdown", params: { reason: "host requested" } });
  const late = await collect(p.open("GET", "/"), "a stream opened after shutdown").done;
  assert.equal(late.status, 503);

  const res = await r.done;
  assert.equal(res.body.toString(), "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n");
  const reply = await p.rpc(7, "the shutdown reply");
  assert.deepEqual(reply, { jsonrpc: "2.0", id: 7, result: { ok: true } });
  // The reply comes after the stream's END on the wire.
  const endAt = p.frames.findIndex((t) => t.frame.stream === sse.id && t.frame.type === FrameType.DATA && (t.frame.flags & 1) === 1);
  const rpcAt = p.frames.findIndex((t) => t.frame.type === FrameType.RPC);
  assert.ok(endAt >= 0 && endAt < rpcAt, "shutdown answered before the running stream ended");
  assert.deepEqual(await within(p.exited, "exit after shutdown"), { code: 0, signal: null });
});

test("v1 fallback: without a v2 offer, the same routes answer buffered", { timeout: 30_000 }, async () => {
  const p = new Plugin();
  const replyP = p.nextLine("the initialize reply");
  p.writeLine({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5" } });
  const reply = await replyP;
  const result = reply.result as Record<string, unknown>;
  assert.equal((result.manifest as { plugin: { id: string } }).plugin.id, "stream_python");
  assert.equal(result.portico, undefined);

  const body = Buffer.from("hello v1");
  const request = (path: string, method: string, b: Buffer, query = "") => ({
    jsonrpc: "2.0",
    method: "broker.event",
    params: {
      topic: "plugin.stream_python.http.request",
      event: {
        id: "e1",
        timestamp: new Date().toISOString(),
        topic: "plugin.stream_python.http.request",
        source: "local",
        session_id: null,
        payload: {
          id: "m1",
          topic: "plugin.stream_python.http.request",
          reply_to: `_inbox.${path}`,
          payload: { method, path: PREFIX + path, query, headers: [["X-Forwarded-Prefix", PREFIX]], body_base64: b.toString("base64") },
        },
      },
    },
  });
  const answer = async (what: string) => {
    const line = await p.nextLine(what);
    assert.equal(line.method, "broker.publish");
    const params = line.params as {
      topic: string;
      event: { payload: { payload: { status: number; headers: [string, string][]; body_base64: string } } };
    };
    const r = params.event.payload.payload;
    return { topic: params.topic, status: r.status, headers: r.headers, body: Buffer.from(r.body_base64, "base64") };
  };

  p.writeLine(request("/count", "POST", body));
  const counted = await answer("the /count reply");
  assert.equal(counted.topic, "_inbox./count");
  assert.equal(counted.status, 200);
  assert.deepEqual(JSON.parse(counted.body.toString()), { bytes: body.length, sha256: sha256(body) });

  p.writeLine(request("/events", "GET", Buffer.alloc(0), "n=3&interval_ms=0"));
  const sse = await answer("the /events reply");
  assert.equal(sse.body.toString(), "data: 0\n\ndata: 1\n\ndata: 2\n\n");

  p.writeLine(request("/ws", "GET", Buffer.alloc(0)));
  assert.equal((await answer("the /ws reply")).status, 426);

  p.writeLine({ jsonrpc: "2.0", id: 9, method: "shutdown", params: {} });
  assert.deepEqual(await p.nextLine("the shutdown reply"), { jsonrpc: "2.0", id: 9, result: { ok: true } });
  assert.deepEqual(await within(p.exited, "exit after shutdown"), { code: 0, signal: null });
});
