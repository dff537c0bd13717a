/**
 * One exchange, whatever carries it: the gateway's whole view of a request it handed to a plugin.
 *
 * Every way of reaching a plugin (a stdio child speaking nexo's v1 or portico's v2, later a host
 * across NATS or an app's own HTTP server) opens exchanges of this one shape, so the gateway has
 * one code path for all of them: request body in with backpressure, response head then body
 * chunks out, WebSocket messages both ways after a 101, and one way to cancel.
 */
import type { GatewayError } from "../errors.js";
import type { RequestHead, ResponseHead } from "../protocol/http.js";

export type { HeaderList, RequestHead, ResponseHead } from "../protocol/http.js";

/** Why the gateway ends an exchange early (sent to a v2 plugin as RESET's code). */
export type ResetCode = "cancel" | "timeout" | "error";

/** What an exchange tells the gateway. Set on `Exchange.events` right after `open`: none fires before. */
export interface ExchangeEvents {
  /** The response head, already validated. `end`: no body follows. */
  head(head: ResponseHead, end: boolean): void;
  /** Response body bytes, in order; the last piece has `end`. Acknowledge with `consumed`. */
  data(chunk: Buffer, end: boolean): void;
  /** A WebSocket message (after a 101), flags = opcode. Acknowledge with `consumed`. */
  ws(opcode: number, payload: Buffer): void;
  /**
   * The exchange ended on the plugin's side without completing: it reset it, sent something
   * unusable, or went away. Not called after the gateway's own `reset`.
   */
  error(err: GatewayError): void;
}

export interface Exchange {
  events: ExchangeEvents;
  /** Request body bytes. Resolves once they are on their way; check `blocked` right after calling. */
  write(chunk: Buffer): Promise<void>;
  /** True while a write waits (for credit or the transport): the caller pauses its source. */
  readonly blocked: boolean;
  /** The request body is complete. */
  end(): void;
  /** One WebSocket message from the client (opcode per RFC 6455); counts against credit like body bytes. */
  sendWs(opcode: number, payload: Buffer): Promise<void>;
  /** `n` bytes of response body or WebSocket payload have left for the client: the plugin may send more. */
  consumed(n: number): void;
  /** Ends the exchange both ways at once and tells the plugin why. */
  reset(code: ResetCode, message?: string): void;
  /** Forgets the exchange without a word: both sides already know it is over (a WebSocket close echo). */
  finish(): void;
  readonly closed: boolean;
}

/** Something exchanges can be opened with: a plugin, wherever and however it runs. */
export interface Upstream {
  readonly id: string;
  /**
   * Opens an exchange with the request head (`end`: the request has no body). Throws a
   * GatewayError when the plugin can't take it now (not running, overloaded).
   */
  open(head: RequestHead, end: boolean): Exchange;
  /** False when the plugin takes whole bodies only (nexo's v1): the buffered-body limit applies. */
  readonly streamsBodies: boolean;
  /** Exchanges open right now. */
  readonly inFlight: number;
}

/** Event handlers that drop everything: an exchange's state before the gateway attaches its own. */
export const IGNORE_EVENTS: ExchangeEvents = {
  head() {},
  data() {},
  ws() {},
  error() {},
};
