/**
 * A link's byte stream over NATS messages. One link joins one gateway and one host and carries a
 * protocol v2 session (src/protocol/v2.ts) both ways, so every exchange across NATS gets the same
 * frames, credit and resets as a stdio child's.
 *
 * NATS keeps the order of one publisher's messages to one subscriber but may lose them (a slow
 * consumer cut off, a reconnect). So each message carries the link's epoch and a sequence number:
 * the receiver takes them strictly in order, and a gap breaks the link (every exchange on it ends
 * with a clean error) instead of corrupting a body silently. Messages are cut from the bytes the
 * session writes in one turn, up to the server's max_payload, so a frame may span messages and
 * no frame is ever refused for its size.
 *
 *   message = epoch u32 BE · seq u32 BE · bytes
 *   seq 0xFFFFFFFF with no bytes: "this epoch is broken" (the peer saw a gap or doesn't know it)
 */

export const WIRE_HEADER = 8;
export const BROKEN_SEQ = 0xffffffff;

/** Bytes of session output per message at most: what max_payload leaves after the header. */
export function messageRoom(maxPayload: number): number {
  return Math.max(1, maxPayload - WIRE_HEADER);
}

/** Batches what a session writes in one turn into numbered messages. */
export class WireSender {
  readonly epoch: number;
  readonly #room: number;
  readonly #publish: (payload: Uint8Array) => void;
  #seq = 0;
  #parts: Buffer[] = [];
  #size = 0;
  #scheduled = false;
  #stopped = false;

  constructor(epoch: number, maxPayload: number, publish: (payload: Uint8Array) => void) {
    this.epoch = epoch;
    this.#room = messageRoom(maxPayload);
    this.#publish = publish;
  }

  write(chunks: readonly Buffer[]): void {
    if (this.#stopped) return;
    for (const c of chunks) {
      if (c.length === 0) continue;
      this.#parts.push(c);
      this.#size += c.length;
    }
    if (!this.#scheduled && this.#size > 0) {
      this.#scheduled = true;
      // Frames written in one turn of the event loop (a HEAD and the first DATA, a run of DATA
      // frames, many WINDOWs) share messages: fewer, bigger publishes.
      setImmediate(this.#flush);
    }
  }

  /** Nothing more goes out on this epoch. */
  stop(): void {
    this.#stopped = true;
    this.#parts = [];
    this.#size = 0;
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#stopped) return;
    while (this.#size > 0) {
      const n = Math.min(this.#size, this.#room);
      const msg = Buffer.allocUnsafe(WIRE_HEADER + n);
      msg.writeUInt32BE(this.epoch, 0);
      msg.writeUInt32BE(this.#seq, 4);
      this.#seq = this.#seq === BROKEN_SEQ - 1 ? 0 : this.#seq + 1;
      let at = WIRE_HEADER;
      while (at < msg.length) {
        const part = this.#parts[0] as Buffer;
        const take = Math.min(part.length, msg.length - at);
        part.copy(msg, at, 0, take);
        at += take;
        if (take === part.length) this.#parts.shift();
        else this.#parts[0] = part.subarray(take);
      }
      this.#size -= n;
      this.#publish(msg);
    }
  };
}

/** What a received message means to the link it names. */
export type Received =
  | { kind: "bytes"; epoch: number; seq: number; bytes: Buffer }
  | { kind: "broken"; epoch: number }
  | { kind: "invalid" };

export function parseMessage(data: Uint8Array): Received {
  if (data.length < WIRE_HEADER) return { kind: "invalid" };
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const epoch = buf.readUInt32BE(0);
  const seq = buf.readUInt32BE(4);
  if (seq === BROKEN_SEQ) return { kind: "broken", epoch };
  return { kind: "bytes", epoch, seq, bytes: buf.subarray(WIRE_HEADER) };
}

/** The "broken" message for an epoch. */
export function brokenMessage(epoch: number): Uint8Array {
  const msg = Buffer.allocUnsafe(WIRE_HEADER);
  msg.writeUInt32BE(epoch, 0);
  msg.writeUInt32BE(BROKEN_SEQ, 4);
  return msg;
}

/** Checks that messages arrive with no gap. */
export class WireReceiver {
  #next = 0;

  /** True when `seq` is the one expected (and moves on); false on a gap. */
  accept(seq: number): boolean {
    if (seq !== this.#next) return false;
    this.#next = seq === BROKEN_SEQ - 1 ? 0 : seq + 1;
    return true;
  }
}
