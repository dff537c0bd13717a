/**
 * Codec v2: binary frames, multiplexed streams, per-stream flow control (docs/protocol.md).
 *
 * The Session is symmetric and transport-agnostic: portico opens streams, the plugin SDK accepts
 * them, and both hand it bytes from and a writer to whatever carries them (src/transport). A
 * Stream needs only a StreamOwner, so one can also live outside a Session.
 */

export const FrameType = { RPC: 0, HEAD: 1, DATA: 2, WINDOW: 3, RESET: 4, WS: 5 } as const;
export type FrameType = (typeof FrameType)[keyof typeof FrameType];

export const END = 0x01;
export const HEADER_BYTES = 10;
export const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Largest DATA frame we send: bigger ones hold up the other streams on the pipe. */
export const MAX_DATA_FRAME = 64 * 1024;
export const DEFAULT_WINDOW = 1024 * 1024;

export const WsOpcode = { TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 } as const;

export type ResetCode = "cancel" | "timeout" | "error";

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export function frameHeader(type: number, flags: number, stream: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(HEADER_BYTES);
  h[0] = type;
  h[1] = flags;
  h.writeUInt32BE(stream, 2);
  h.writeUInt32BE(length, 6);
  return h;
}

/** One frame as a single buffer (for small payloads). */
export function encodeFrame(type: number, flags: number, stream: number, payload?: Buffer): Buffer {
  const length = payload?.length ?? 0;
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  out[0] = type;
  out[1] = flags;
  out.writeUInt32BE(stream, 2);
  out.writeUInt32BE(length, 6);
  if (payload) payload.copy(out, HEADER_BYTES);
  return out;
}

/** A frame whose payload is `value` as JSON, encoded straight into the frame's buffer. */
export function jsonFrame(type: number, flags: number, stream: number, value: unknown): Buffer {
  const json = JSON.stringify(value);
  const length = Buffer.byteLength(json);
  const out = Buffer.allocUnsafe(HEADER_BYTES + length);
  out[0] = type;
  out[1] = flags;
  out.writeUInt32BE(stream, 2);
  out.writeUInt32BE(length, 6);
  out.write(json, HEADER_BYTES, "utf8");
  return out;
}

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/**
 * Cuts a byte stream into frames. Payloads inside one chunk are views, not copies; a DATA payload
 * that spans chunks is delivered piece by piece (END on the last piece only) instead of being
 * copied together, since body bytes need no contiguity.
 */
export class FrameParser {
  #parts: Buffer[] = [];
  #size = 0;
  #header: { type: number; flags: number; stream: number; length: number } | undefined;

  constructor(readonly onFrame: (f: Frame) => void) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.#parts.push(chunk);
    this.#size += chunk.length;
    for (;;) {
      if (!this.#header) {
        if (this.#size < HEADER_BYTES) return;
        const h = this.#take(HEADER_BYTES);
        const length = h.readUInt32BE(6);
        if (length > MAX_PAYLOAD) throw new ProtocolError(`frame of ${length} bytes exceeds ${MAX_PAYLOAD}`);
        this.#header = { type: h[0] as number, flags: h[1] as number, stream: h.readUInt32BE(2), length };
      }
      const { type, flags, stream, length } = this.#header;
      if (this.#size < length) {
        // Everything buffered belongs to this DATA frame: hand it on now.
        if (type === FrameType.DATA) {
          for (const part of this.#parts) {
            this.#header.length -= part.length;
            this.onFrame({ type, flags: flags & ~END, stream, payload: part });
          }
          this.#parts = [];
          this.#size = 0;
        }
        return;
      }
      const payload = length === 0 ? EMPTY : this.#take(length);
      this.#header = undefined;
      this.onFrame({ type, flags, stream, payload });
    }
  }

  #take(n: number): Buffer {
    const first = this.#parts[0] as Buffer;
    this.#size -= n;
    if (first.length > n) {
      this.#parts[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    if (first.length === n) {
      this.#parts.shift();
      return first;
    }
    const out = Buffer.allocUnsafe(n);
    let at = 0;
    while (at < n) {
      const p = this.#parts[0] as Buffer;
      const want = n - at;
      if (p.length <= want) {
        p.copy(out, at);
        at += p.length;
        this.#parts.shift();
      } else {
        p.copy(out, at, 0, want);
        this.#parts[0] = p.subarray(want);
        at += want;
      }
    }
    return out;
  }
}

const EMPTY = Buffer.alloc(0);

export interface SessionOptions {
  /** Writes frames; returns false when the transport wants the writer to wait for `drained()`. */
  write(chunks: Buffer[]): boolean;
  /** Credit we start with towards the peer, per stream (the peer's window). */
  sendWindow: number;
  /** Credit the peer starts with towards us, per stream (our window). */
  recvWindow: number;
  /** The peer opened a stream (only the plugin side accepts streams). */
  onStream?: (stream: Stream, head: unknown, end: boolean) => void;
  onRpc?: (msg: unknown) => void;
}

/** What a Stream needs from whatever carries its frames. */
export interface StreamOwner {
  write(chunks: Buffer[]): void;
  /** A promise while the carrier wants writers to wait, else undefined. */
  whenWritable(): Promise<void> | undefined;
  /** The stream is over: drop it. */
  forget(id: number): void;
}

export class Session implements StreamOwner {
  readonly #opts: SessionOptions;
  readonly #streams = new Map<number, Stream>();
  readonly #parser: FrameParser;
  #nextId = 1;
  #saturated = false;
  #drainWaiters: (() => void)[] = [];
  #failed: Error | undefined;

  constructor(opts: SessionOptions) {
    this.#opts = opts;
    this.#parser = new FrameParser((f) => this.#onFrame(f));
  }

  get streamCount(): number {
    return this.#streams.size;
  }

  /** Bytes from the peer. Throws ProtocolError on a malformed stream (the caller ends the session). */
  push(chunk: Buffer): void {
    this.#parser.push(chunk);
  }

  /** The transport drained: let waiting writers go on. */
  drained(): void {
    this.#saturated = false;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }

  /** Opens a stream with a HEAD (the host side). */
  open(head: unknown, end: boolean): Stream {
    let id = this.#nextId;
    while (this.#streams.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.#nextId = id >= 0xffffffff ? 1 : id + 1;
    const stream = new Stream(this, id, this.#opts.sendWindow, this.#opts.recvWindow);
    this.#streams.set(id, stream);
    stream.sendHead(head, end);
    return stream;
  }

  sendRpc(msg: unknown): void {
    this.write([jsonFrame(FrameType.RPC, 0, 0, msg)]);
  }

  /**
   * Every open stream ends with `err` (transport closed, process died); their onReset hears
   * `code` ("gone", or a carrier's own, such as a link's "unreachable").
   */
  fail(err: Error, code = "gone"): void {
    if (this.#failed) return;
    this.#failed = err;
    for (const s of [...this.#streams.values()]) s._terminate(code, err.message);
    this.#streams.clear();
    this.drained();
  }

  get failed(): Error | undefined {
    return this.#failed;
  }

  /** @internal */
  write(chunks: Buffer[]): void {
    if (this.#failed) return;
    if (!this.#opts.write(chunks)) this.#saturated = true;
  }

  /** @internal Resolves when the transport can take more. */
  whenWritable(): Promise<void> | undefined {
    if (!this.#saturated || this.#failed) return undefined;
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  /** @internal */
  forget(id: number): void {
    this.#streams.delete(id);
  }

  #onFrame(f: Frame): void {
    if (f.type === FrameType.RPC) {
      let msg: unknown;
      try {
        msg = JSON.parse(f.payload.toString("utf8"));
      } catch {
        throw new ProtocolError("RPC frame is not JSON");
      }
      this.#opts.onRpc?.(msg);
      return;
    }
    let stream = this.#streams.get(f.stream);
    if (!stream) {
      if (f.type !== FrameType.HEAD || !this.#opts.onStream || f.stream === 0) return; // late frame of a finished stream
      const end = (f.flags & END) !== 0;
      stream = new Stream(this, f.stream, this.#opts.sendWindow, this.#opts.recvWindow);
      this.#streams.set(f.stream, stream);
      if (end) stream._remoteEnd();
      this.#opts.onStream(stream, parseJson(f.payload, "HEAD"), end);
      return;
    }
    stream._onFrame(f);
  }
}

const isUpgrade = (head: unknown) => (head as { status?: unknown } | null)?.status === 101;

function parseJson(payload: Buffer, what: string): unknown {
  try {
    return JSON.parse(payload.toString("utf8"));
  } catch {
    throw new ProtocolError(`${what} payload is not JSON`);
  }
}

export interface StreamHandlers {
  onHead?(head: unknown, end: boolean): void;
  onData?(chunk: Buffer, end: boolean): void;
  onWs?(opcode: number, payload: Buffer): void;
  /**
   * The stream was reset by the peer, or the session failed. Not called after a local reset.
   * `detail` is the RESET payload as the peer sent it (an object, else empty).
   */
  onReset?(code: string, message: string | undefined, detail: Record<string, unknown>): void;
  /** The stream is over, however it ended. */
  onClose?(): void;
}

/**
 * One exchange. Sending DATA respects the peer's credit; received DATA is acknowledged with
 * `consumed(n)` once it has really been used, which is what gives backpressure end to end.
 */
export class Stream {
  readonly id: number;
  handlers: StreamHandlers = {};
  readonly #session: StreamOwner;
  #credit: number;
  /** Senders waiting for credit. Several at once (a WS message and a pong, say): each is woken. */
  #creditWaiters: (() => void)[] | undefined;
  #unacked = 0;
  readonly #ackThreshold: number;
  #localEnded = false;
  #waits = 0;
  /** The send in progress, if any: the next one waits for it. */
  #sending: Promise<void> | undefined;
  #remoteEnded = false;
  #closed = false;
  /** A 101 went by: a WebSocket tunnel, which END flags don't end (a close exchange or RESET does). */
  #tunnel = false;

  constructor(session: StreamOwner, id: number, sendWindow: number, recvWindow: number) {
    this.#session = session;
    this.id = id;
    this.#credit = sendWindow;
    this.#ackThreshold = Math.max(1, Math.floor(recvWindow / 4));
  }

  get closed(): boolean {
    return this.#closed;
  }

  get remoteEnded(): boolean {
    return this.#remoteEnded;
  }

  sendHead(head: unknown, end: boolean): void {
    if (this.#closed) return;
    if (isUpgrade(head)) this.#tunnel = true;
    this.#session.write([jsonFrame(FrameType.HEAD, end ? END : 0, this.id, head)]);
    if (end) this.#endLocal();
  }

  /**
   * Sends body bytes in frames of at most 64 KiB as credit allows. Resolves when all are written.
   * Sends keep the order of the calls, whatever waits for credit: END never overtakes a chunk.
   */
  sendData(chunk: Buffer, end = false): Promise<void> {
    return this.#inOrder(() => this.#sendData(chunk, end));
  }

  /** One WebSocket message; counts against credit like DATA, and keeps its place like DATA. */
  sendWs(opcode: number, payload: Buffer): Promise<void> {
    return this.#inOrder(() => this.#sendWs(opcode, payload));
  }

  /** Runs `send` now if nothing is being sent, else after what is (counted as waiting meanwhile). */
  #inOrder(send: () => Promise<void>): Promise<void> {
    const previous = this.#sending;
    let p: Promise<void>;
    if (previous) {
      this.#waits++;
      p = previous.then(() => {
        this.#waits--;
        return send();
      });
    } else {
      p = send();
    }
    this.#sending = p;
    void p.then(() => {
      if (this.#sending === p) this.#sending = undefined;
    });
    return p;
  }

  async #sendData(chunk: Buffer, end: boolean): Promise<void> {
    let at = 0;
    do {
      if (this.#closed) return;
      if (this.#credit <= 0 && chunk.length > 0) {
        this.#waits++;
        await new Promise<void>((resolve) => this.#waitForCredit(resolve));
        this.#waits--;
        continue;
      }
      const n = Math.min(chunk.length - at, this.#credit, MAX_DATA_FRAME);
      const last = at + n >= chunk.length;
      const piece = n === chunk.length ? chunk : chunk.subarray(at, at + n);
      this.#credit -= n;
      at += n;
      const flags = end && last ? END : 0;
      this.#session.write(
        n > 0 ? [frameHeader(FrameType.DATA, flags, this.id, n), piece] : [frameHeader(FrameType.DATA, flags, this.id, 0)],
      );
      const writable = this.#session.whenWritable();
      if (writable) {
        this.#waits++;
        await writable;
        this.#waits--;
      }
    } while (at < chunk.length);
    if (end) this.#endLocal();
  }

  /**
   * True while a sendData waits for credit or for the transport. Checked right after calling
   * sendData, it tells whether the bytes all went out at once, so a producer pauses only then.
   */
  get blocked(): boolean {
    return this.#waits > 0;
  }

  /** END without more bytes. */
  end(): Promise<void> {
    return this.sendData(EMPTY, true);
  }

  async #sendWs(opcode: number, payload: Buffer): Promise<void> {
    while (!this.#closed && this.#credit <= 0 && payload.length > 0) {
      await new Promise<void>((resolve) => this.#waitForCredit(resolve));
    }
    if (this.#closed) return;
    this.#credit -= payload.length;
    this.#session.write([frameHeader(FrameType.WS, opcode, this.id, payload.length), payload]);
    const writable = this.#session.whenWritable();
    if (writable) await writable;
  }

  /**
   * Returns credit to the peer for `n` bytes we have used. Also after the peer's END: WebSocket
   * messages flow on a stream whose request HEAD ended it.
   */
  consumed(n: number): void {
    if (this.#closed) return;
    this.#unacked += n;
    if (this.#unacked >= this.#ackThreshold) this.#flushAck();
  }

  /** Forgets the stream without a frame: both sides already know it is over (WebSocket close echo). */
  finish(): void {
    this.#close();
  }

  /** Ends the stream both ways at once and tells the peer (`extra`: more fields for the RESET payload). */
  reset(code: ResetCode, message?: string, extra?: Record<string, unknown>): void {
    if (this.#closed) return;
    this.#session.write([jsonFrame(FrameType.RESET, 0, this.id, { code, ...(message ? { message } : {}), ...extra })]);
    this.#close();
  }

  /** @internal The peer opened the stream with END: it sends no body. */
  _remoteEnd(): void {
    this.#remoteEnded = true;
  }

  /** @internal */
  _terminate(code: string, message: string | undefined, detail: Record<string, unknown> = {}): void {
    if (this.#closed) return;
    this.#close();
    this.handlers.onReset?.(code, message, detail);
  }

  /** @internal */
  _onFrame(f: Frame): void {
    if (this.#closed) return;
    switch (f.type) {
      case FrameType.HEAD: {
        const end = (f.flags & END) !== 0;
        const head = parseJson(f.payload, "HEAD");
        if (isUpgrade(head)) this.#tunnel = true;
        if (end) this.#remoteEnded = true;
        this.handlers.onHead?.(head, end);
        if (end) this.#maybeClose();
        return;
      }
      case FrameType.DATA: {
        const end = (f.flags & END) !== 0;
        if (end) this.#remoteEnded = true;
        this.handlers.onData?.(f.payload, end);
        if (end) this.#maybeClose();
        return;
      }
      case FrameType.WINDOW: {
        if (f.payload.length !== 4) throw new ProtocolError("WINDOW payload must be 4 bytes");
        this.#credit += f.payload.readUInt32BE(0);
        this.#wakeSenders();
        return;
      }
      case FrameType.RESET: {
        // Any JSON ends the stream; only an object can say why.
        const parsed = f.payload.length ? parseJson(f.payload, "RESET") : undefined;
        const body = (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? parsed : {}) as Record<string, unknown>;
        this._terminate(
          typeof body.code === "string" ? body.code : "error",
          typeof body.message === "string" ? body.message : undefined,
          body,
        );
        return;
      }
      case FrameType.WS:
        this.handlers.onWs?.(f.flags, f.payload);
        return;
    }
  }

  #flushAck(): void {
    const n = this.#unacked;
    this.#unacked = 0;
    const p = Buffer.allocUnsafe(4);
    p.writeUInt32BE(n, 0);
    this.#session.write([encodeFrame(FrameType.WINDOW, 0, this.id, p)]);
  }

  #endLocal(): void {
    this.#localEnded = true;
    this.#maybeClose();
  }

  #maybeClose(): void {
    if (this.#localEnded && this.#remoteEnded && !this.#tunnel) this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wakeSenders();
    this.#session.forget(this.id);
    this.handlers.onClose?.();
  }

  #waitForCredit(wake: () => void): void {
    if (this.#creditWaiters) this.#creditWaiters.push(wake);
    else this.#creditWaiters = [wake];
  }

  #wakeSenders(): void {
    const waiters = this.#creditWaiters;
    if (!waiters) return;
    this.#creditWaiters = undefined;
    for (const w of waiters) w();
  }
}
