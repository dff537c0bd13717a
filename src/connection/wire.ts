/**
 * What travels on a plugin connection, from either end: newline-delimited JSON-RPC until the
 * `initialize` reply takes protocol v2, binary frames from the byte after that reply's newline
 * (docs/protocol.md §1). portico's side (connection.ts) and the SDK's side both run on this.
 */
import { LineSplitter } from "../protocol/jsonrpc.js";
import { ProtocolError, Session, type SessionOptions } from "../protocol/v2.js";
import type { Transport } from "../transport/index.js";

export interface WireOptions {
  /** Longest line accepted; longer ones are dropped whole and reported. */
  maxLineBytes: number;
  /** One line (without its newline), until the switch. */
  onLine(line: Buffer): void;
  onOverflow(bytes: number): void;
  /** The peer will send nothing more. */
  onEnd?(): void;
  /** The transport's backlog drained (after a write that said to wait). */
  onDrain?(): void;
  /**
   * The peer broke protocol v2, or handling its frames threw: the connection can't go on. Called
   * instead of letting the error escape a transport's 'data' event (it would take the process down).
   */
  onBroken(err: Error): void;
}

export class Wire {
  readonly #transport: Transport;
  readonly #opts: WireOptions;
  readonly #lines: LineSplitter;
  #session: Session | undefined;

  constructor(transport: Transport, opts: WireOptions) {
    this.#transport = transport;
    this.#opts = opts;
    this.#lines = new LineSplitter(opts.maxLineBytes, opts.onLine, opts.onOverflow);
    transport.attach({
      data: (chunk) => (this.#session ? this.#feed(chunk) : this.#lines.push(chunk)),
      drain: () => {
        this.#session?.drained();
        opts.onDrain?.();
      },
      end: () => {
        if (!this.#session) this.#lines.end();
        opts.onEnd?.();
      },
    });
  }

  /** Bytes written but not yet taken by the peer. */
  get backlog(): number {
    return this.#transport.backlog;
  }

  /** Stops reading the peer for `ms`. */
  holdInput(ms: number): void {
    this.#transport.holdInput(ms);
  }

  /** Bytes the peer has taken so far. */
  get taken(): number {
    return this.#transport.taken;
  }

  /** The v2 session, once switched. */
  get session(): Session | undefined {
    return this.#session;
  }

  /** One JSON-RPC message as a line (before the switch; after it, RPC frames carry them). */
  sendLine(msg: unknown): void {
    this.write(`${JSON.stringify(msg)}\n`);
  }

  /** Raw text or bytes on the transport (a prepared line). */
  write(chunk: string | Buffer): void {
    this.#transport.write([chunk]);
  }

  /** Several pieces, in order (one line built in parts). */
  writeAll(pieces: (string | Buffer)[]): void {
    this.#transport.write(pieces);
  }

  /**
   * Called from inside `onLine`: the peer's bytes after the current line are frames, and so are
   * ours from now on. Returns the session that carries them.
   */
  switchToFrames(opts: Omit<SessionOptions, "write">): Session {
    const session = new Session({ ...opts, write: (chunks) => this.#transport.write(chunks) });
    this.#session = session;
    this.#lines.handOff((rest) => this.#feed(rest));
    return session;
  }

  /** Nothing more will be written. */
  end(): void {
    this.#transport.end();
  }

  #feed(chunk: Buffer): void {
    try {
      this.#session?.push(chunk);
    } catch (err) {
      // Frames are handled synchronously from the transport's 'data' event: whatever goes wrong
      // there, the peer's bytes must not take this process down. The connection ends instead.
      this.#opts.onBroken(err instanceof Error ? err : new ProtocolError(String(err)));
    }
  }
}
