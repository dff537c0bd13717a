/**
 * Protocol v2 behind the one Exchange interface: each exchange is a stream of the session, and the
 * plugin's frames are checked here (a valid head, once, before any body) so that what reaches the
 * gateway is an HTTP response or an error, never a protocol question.
 */
import { GatewayError } from "../errors.js";
import { type Exchange, type ExchangeEvents, IGNORE_EVENTS, type ResetCode } from "../exchange/index.js";
import type { Logger } from "../log.js";
import { type RequestHead, validateResponseHead } from "../protocol/http.js";
import type { Session, Stream, StreamHandlers } from "../protocol/v2.js";

export class V2Codec {
  readonly protocol = 2;
  readonly #session: Session;
  readonly #log: Logger;

  constructor(session: Session, log: Logger) {
    this.#session = session;
    this.#log = log;
  }

  get inFlight(): number {
    return this.#session.streamCount;
  }

  /** Nothing waits here: DATA goes out as credit and the transport allow. */
  readonly queued = 0;

  drained(): void {}

  sendRpc(msg: unknown): void {
    this.#session.sendRpc(msg);
  }

  open(head: RequestHead, end: boolean): Exchange {
    if (this.#session.failed) throw new GatewayError("plugin_unavailable", "plugin not running");
    return new V2Exchange(this.#session.open(head, end), head.upgrade === "websocket");
  }

  onPublish(): boolean {
    this.#log.debug("broker.publish from a v2 plugin; ignored");
    return false;
  }

  /** The plugin is gone: every open stream ends. */
  close(reason: string): void {
    this.#session.fail(new Error(reason));
  }
}

/** How a peer's RESET (or the session's end: code "gone") becomes the gateway's error. */
export type ResetMapper = (code: string, message: string | undefined, detail: Record<string, unknown>) => GatewayError;

/** A plugin's reset: it gave up, or its process went away ("gone"). */
const pluginReset: ResetMapper = (code, message) => new GatewayError(code === "gone" ? "plugin_crashed" : "plugin_reset", message ?? code);

export class V2Exchange implements Exchange, StreamHandlers {
  events: ExchangeEvents = IGNORE_EVENTS;
  readonly #stream: Stream;
  readonly #upgrade: boolean;
  readonly #errorOf: ResetMapper;
  #headSeen = false;

  constructor(stream: Stream, upgrade: boolean, errorOf: ResetMapper = pluginReset) {
    this.#stream = stream;
    this.#upgrade = upgrade;
    this.#errorOf = errorOf;
    // The exchange is the stream's handlers itself: no closures made per request.
    stream.handlers = this;
  }

  /** @internal The plugin's response HEAD. */
  onHead(value: unknown, end: boolean): void {
    if (this.#headSeen) {
      this.#refuse("a second response HEAD");
      return;
    }
    let head: ReturnType<typeof validateResponseHead>;
    try {
      head = validateResponseHead(value, this.#upgrade);
    } catch (err) {
      this.#refuse((err as GatewayError).detail ?? String(err));
      return;
    }
    this.#headSeen = true;
    this.events.head(head, end);
  }

  /** @internal Response body bytes. */
  onData(chunk: Buffer, end: boolean): void {
    if (!this.#headSeen) {
      this.#stream.consumed(chunk.length);
      this.#refuse("DATA before HEAD");
      return;
    }
    this.events.data(chunk, end);
  }

  /** @internal A WebSocket message. */
  onWs(opcode: number, payload: Buffer): void {
    this.events.ws(opcode, payload);
  }

  /** @internal The plugin reset the stream, or went away. */
  onReset(code: string, message: string | undefined, detail: Record<string, unknown>): void {
    this.events.error(this.#errorOf(code, message, detail));
  }

  get closed(): boolean {
    return this.#stream.closed;
  }

  get blocked(): boolean {
    return this.#stream.blocked;
  }

  write(chunk: Buffer): Promise<void> {
    return this.#stream.sendData(chunk);
  }

  end(): void {
    if (!this.#stream.closed) void this.#stream.end();
  }

  sendWs(opcode: number, payload: Buffer): Promise<void> {
    return this.#stream.sendWs(opcode, payload);
  }

  consumed(n: number): void {
    this.#stream.consumed(n);
  }

  reset(code: ResetCode, message?: string): void {
    this.#stream.reset(code, message);
  }

  finish(): void {
    this.#stream.finish();
  }

  /** The plugin sent what no client can be given: reset the stream, report a malformed reply. */
  #refuse(detail: string): void {
    this.#stream.reset("error", detail);
    this.events.error(new GatewayError("bad_reply", detail));
  }
}
