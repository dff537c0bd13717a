/**
 * A Transport moves bytes between portico and one plugin connection, in order, and says when the
 * peer is slow to take them. What the bytes mean (JSON-RPC lines, then v2 frames) is the
 * connection's business (src/connection); where they go is the transport's. A child's stdio is
 * one transport; the plugin side (the SDK) uses the same one over its own stdin and stdout.
 */
export interface Transport {
  /**
   * Queues chunks for the peer. Chunks written in one turn of the event loop may leave together.
   * Returns false once a real backlog built up: writers then wait for `drain`.
   */
  write(chunks: readonly (Buffer | string)[]): boolean;
  /** Nothing more will be written: the peer sees the end once the queue is out. */
  end(): void;
  /** Bytes written but not yet taken by the peer (or the OS on its way). */
  readonly backlog: number;
  /** Bytes the peer (or the OS on its way) has taken so far: grows while the peer reads. */
  readonly taken: number;
  /** Stops taking the peer's bytes for `ms` (its output is being thrown away: slow it down). */
  holdInput(ms: number): void;
  /** Sets the handlers (once, before any byte can arrive). */
  attach(handlers: TransportHandlers): void;
}

export interface TransportHandlers {
  /** Bytes from the peer, in order. */
  data(chunk: Buffer): void;
  /** The backlog that made `write` return false has drained. */
  drain(): void;
  /** The peer will send nothing more. */
  end(): void;
}

export { streamTransport, tickWriter } from "./stream.js";
