/**
 * Lines on their way to a v1 plugin, in order and never interleaved, handed to the transport only
 * as the plugin takes them. A request's line is made when it goes out, its body's base64 a piece
 * at a time, a few hundred kilobytes per turn of the event loop: a big body costs portico a
 * buffer, not a stall, and one that is no longer wanted (its request ended while it waited) is
 * dropped without being encoded at all.
 */

/** Lines go to the transport while its backlog is under this; the rest wait here. */
const HAND_OVER_BELOW = 1024 * 1024;
/** Bytes written in one turn of the event loop before the rest waits for the next. */
const PER_TURN = 256 * 1024;
/** Body bytes encoded per piece (a multiple of 3, so the pieces' base64 joins up). */
const PIECE = 192 * 1024;

/** One line to go out: whole (`text`), or made piece by piece as it goes (`pieces`). */
export interface OutLine {
  /** A request's line names its exchange: dropped while waiting once that has ended. */
  owner?: object;
  /** Bytes it holds in memory while it waits, for max_queued_bytes. */
  size: number;
  text?: string;
  pieces?: Iterator<string>;
}

/** Where the lines go. */
export interface LineSink {
  write(pieces: string[]): void;
  /** Bytes written but not yet taken by the plugin. */
  readonly backlog: number;
}

export class LineOutbox {
  readonly #sink: LineSink;
  #queue: OutLine[] = [];
  /** The line being written: once started, a line is finished before any other begins. */
  #current: OutLine | undefined;
  #queued = 0;
  #scheduled = false;

  constructor(sink: LineSink) {
    this.#sink = sink;
  }

  /** Bytes held here for lines not yet fully written. */
  get queued(): number {
    return this.#queued;
  }

  push(line: OutLine): void {
    // The common case: nothing waits, the plugin keeps up, the line is whole. Straight out.
    if (line.text !== undefined && !this.#current && this.#queue.length === 0 && !this.#scheduled && this.#sink.backlog < HAND_OVER_BELOW) {
      this.#sink.write([line.text]);
      return;
    }
    this.#queue.push(line);
    this.#queued += line.size;
    this.#pump();
  }

  /** Forgets the line of `owner` if it hasn't started going out. */
  drop(owner: object): void {
    const at = this.#queue.findIndex((l) => l.owner === owner);
    if (at < 0) return;
    this.#queued -= (this.#queue[at] as OutLine).size;
    this.#queue.splice(at, 1);
  }

  /** The transport took what it had: go on. */
  drained(): void {
    this.#pump();
  }

  #pump(): void {
    // Out of budget this turn: the next turn's run goes on from where it stopped.
    if (!this.#scheduled) this.#run();
  }

  #run = (): void => {
    this.#scheduled = false;
    let spent = 0;
    while (this.#sink.backlog < HAND_OVER_BELOW) {
      if (spent >= PER_TURN) {
        this.#scheduled = true;
        setImmediate(this.#run);
        return;
      }
      const line = this.#current ?? this.#queue.shift();
      if (!line) return;
      if (line.text !== undefined) {
        this.#queued -= line.size;
        this.#sink.write([line.text]);
        spent += line.text.length;
        continue;
      }
      this.#current = line;
      const next = (line.pieces as Iterator<string>).next();
      if (next.done) {
        this.#current = undefined;
        this.#queued -= line.size;
        continue;
      }
      this.#sink.write([next.value]);
      spent += next.value.length;
    }
  };
}

/** A whole line known up front (JSON-RPC messages, small requests). */
export function textLine(text: string, owner?: object): OutLine {
  return { owner, size: text.length, text };
}

/**
 * `before`, the base64 of `body` (in pieces whose base64 joins up: each covers a multiple of 3
 * bytes, a part's leftover carried to the next), then `after`.
 */
export function* withBase64(before: string, body: readonly Buffer[], after: string): Generator<string> {
  yield before;
  let carry = Buffer.alloc(0);
  for (const part of body) {
    let at = 0;
    if (carry.length > 0) {
      const fill = Math.min(3 - carry.length, part.length);
      carry = Buffer.concat([carry, part.subarray(0, fill)]);
      at = fill;
      if (carry.length < 3) continue;
      yield carry.toString("base64");
      carry = Buffer.alloc(0);
    }
    while (part.length - at >= 3) {
      const n = Math.min(PIECE, part.length - at - ((part.length - at) % 3));
      yield part.subarray(at, at + n).toString("base64");
      at += n;
    }
    if (at < part.length) carry = Buffer.from(part.subarray(at));
  }
  if (carry.length > 0) yield carry.toString("base64");
  yield after;
}
