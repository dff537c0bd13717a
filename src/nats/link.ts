/**
 * One link: a protocol v2 session between one gateway and one host, carried by NATS messages
 * (src/nats/wire.ts). The gateway opens streams on it, one per exchange; the host accepts them
 * and relays each to a local plugin. Both sides use this class.
 */
import { DEFAULT_WINDOW, Session, type Stream } from "../protocol/v2.js";
import { brokenMessage, WireReceiver, WireSender } from "./wire.js";

export interface LinkOptions {
  epoch: number;
  maxPayload: number;
  /** Sends one message to the peer. Throwing breaks the link. */
  publish(payload: Uint8Array): void;
  /** Host side: the gateway opened a stream. */
  onStream?: (stream: Stream, head: unknown, end: boolean) => void;
  /** The link is over (broken by either side, or closed): the owner forgets it. */
  onBroken(reason: string): void;
}

export class Link {
  readonly epoch: number;
  readonly session: Session;
  readonly #opts: LinkOptions;
  readonly #sender: WireSender;
  readonly #receiver = new WireReceiver();
  #broken: string | undefined;

  constructor(opts: LinkOptions) {
    this.#opts = opts;
    this.epoch = opts.epoch;
    this.#sender = new WireSender(opts.epoch, opts.maxPayload, (payload) => {
      try {
        opts.publish(payload);
      } catch (err) {
        queueMicrotask(() => this.break(`could not publish: ${(err as Error).message}`, false));
      }
    });
    this.session = new Session({
      write: (chunks) => {
        this.#sender.write(chunks);
        // Per-stream credit bounds what can be in flight; the link itself never asks to wait.
        return true;
      },
      sendWindow: DEFAULT_WINDOW,
      recvWindow: DEFAULT_WINDOW,
      onStream: opts.onStream,
    });
  }

  get broken(): string | undefined {
    return this.#broken;
  }

  /** Session bytes from the peer, in the message numbered `seq`. */
  receive(seq: number, bytes: Buffer): void {
    if (this.#broken) return;
    if (!this.#receiver.accept(seq)) {
      this.break("a link message was lost");
      return;
    }
    try {
      this.session.push(bytes);
    } catch (err) {
      this.break(`link protocol error: ${(err as Error).message}`);
    }
  }

  /**
   * Ends the link: every stream on it ends with `reason`. `tellPeer`: send "broken" so the other
   * side ends its half at once instead of noticing later. `code`: what the streams' onReset hears
   * ("unreachable": NATS said nobody is there, the host has not seen what was last sent).
   */
  break(reason: string, tellPeer = true, code: "gone" | "unreachable" = "gone"): void {
    if (this.#broken) return;
    this.#broken = reason;
    this.#sender.stop();
    if (tellPeer) {
      try {
        this.#opts.publish(brokenMessage(this.epoch));
      } catch {
        // The connection is gone: the peer notices by itself.
      }
    }
    this.session.fail(new Error(reason), code);
    this.#opts.onBroken(reason);
  }
}
