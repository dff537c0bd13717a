/**
 * nexo's v1 exchange behind the one Exchange interface: the request body is gathered, sent whole
 * (base64) in one `broker.event` line when it ends, and the reply (one `broker.publish` to the
 * request's inbox) comes back as a head and, if any, one body chunk. No streaming, no WebSockets.
 *
 * Lines go out through a LineOutbox (v1-outbox.ts): in order, as the plugin takes them, a big
 * body's base64 made a piece at a time.
 */
import { GatewayError } from "../errors.js";
import { type Exchange, type ExchangeEvents, IGNORE_EVENTS } from "../exchange/index.js";
import type { Logger } from "../log.js";
import type { HeaderList, RequestHead } from "../protocol/http.js";
import { decodeReply, newInbox, replyEnvelope, requestLine } from "../protocol/v1.js";
import { LineOutbox, type LineSink, textLine, withBase64 } from "./v1-outbox.js";

/** Bodies up to this size are encoded in one go (a few tens of microseconds). */
const WHOLE_LINE_BODY = 64 * 1024;
/** nexo's TypeScript SDK silently drops incoming frames larger than this. */
const NEXO_TS_SDK_MAX_FRAME = 1024 * 1024;
const RESOLVED = Promise.resolve();

export class V1Codec implements V1Carrier {
  readonly protocol = 1;
  readonly #pluginId: string;
  readonly #outbox: LineOutbox;
  readonly #log: Logger;
  readonly #waiting = new Map<string, V1Exchange>();
  /** Open exchanges, those still gathering their body included. */
  readonly #open = new Set<V1Exchange>();
  /** Set once the plugin is gone. */
  #gone: GatewayError | undefined;

  constructor(pluginId: string, sink: LineSink, log: Logger) {
    this.#pluginId = pluginId;
    this.#outbox = new LineOutbox(sink);
    this.#log = log;
  }

  /** Bytes held for lines not yet handed to the transport (its own backlog not counted). */
  get queued(): number {
    return this.#outbox.queued;
  }

  get inFlight(): number {
    return this.#open.size;
  }

  /** The transport took what it had: hand over what waits. */
  drained(): void {
    this.#outbox.drained();
  }

  /** A JSON-RPC message: a line of its own, in turn with the requests' lines. */
  sendRpc(msg: unknown): void {
    this.#outbox.push(textLine(`${JSON.stringify(msg)}\n`));
  }

  open(head: RequestHead, end: boolean): Exchange {
    if (this.#gone) throw new GatewayError("plugin_unavailable", "plugin not running");
    const exchange = new V1Exchange(this, head);
    this.#open.add(exchange);
    if (end) exchange.end();
    return exchange;
  }

  /** A `broker.publish` from the plugin: the reply to a waiting request, or a publish we ignore. */
  onPublish(params: unknown): boolean {
    const env = replyEnvelope(params);
    const exchange = env && this.#waiting.get(env.topic);
    if (!env || !exchange) {
      this.#log.debug({ topic: env?.topic }, "broker.publish to a topic with no waiting request; ignored");
      return false;
    }
    this.#waiting.delete(env.topic);
    exchange._reply(env.event);
    return true;
  }

  /** The plugin is gone: every open exchange ends. */
  close(reason: string): void {
    const err = new GatewayError("plugin_crashed", reason);
    this.#gone = err;
    for (const x of [...this.#open]) x._fail(err);
  }

  /** @internal Queues the request's line and waits for its reply under a fresh inbox. */
  _send(exchange: V1Exchange, head: RequestHead, body: Buffer[], size: number): string | undefined {
    if (this.#gone) {
      exchange._fail(this.#gone);
      return undefined;
    }
    const inbox = newInbox();
    const { before, after } = requestLine(this.#pluginId, inbox, {
      method: head.method,
      path: head.path,
      query: head.query,
      headers: withLength(head.headers, size),
    });
    const rest = 4 * Math.ceil(size / 3) + after.length;
    // A UTF-16 unit is at most 3 bytes of UTF-8: only a line that might be over is measured
    // (measuring flattens its string, a copy every request would otherwise pay for).
    if (before.length * 3 + rest > NEXO_TS_SDK_MAX_FRAME && Buffer.byteLength(before) + rest > NEXO_TS_SDK_MAX_FRAME) {
      this.#log.warn(
        { bytes: Buffer.byteLength(before) + rest },
        "request frame over 1 MiB: nexo's SDKs drop such frames without replying (the client then gets a 504); keep v1 bodies under ~750 KiB or use protocol v2",
      );
    }
    this.#waiting.set(inbox, exchange);
    // A small body is encoded at once, the line whole; a big one a piece at a time as it goes out.
    if (size <= WHOLE_LINE_BODY) {
      const base64 = size === 0 ? "" : (body.length === 1 ? (body[0] as Buffer) : Buffer.concat(body, size)).toString("base64");
      this.#outbox.push(textLine(`${before}${base64}${after}`, exchange));
    } else {
      this.#outbox.push({ owner: exchange, size, pieces: withBase64(before, body, after) });
    }
    return inbox;
  }

  /** @internal The exchange is over, however it ended. */
  _closed(exchange: V1Exchange, inbox: string | undefined): void {
    this.#open.delete(exchange);
    if (!inbox) return;
    this.#waiting.delete(inbox);
    // Still waiting to go out: nobody wants it any more.
    this.#outbox.drop(exchange);
  }
}

/** A body sent chunked by the client reaches a v1 plugin whole: it gets the Content-Length. */
export function withLength(headers: HeaderList, length: number): HeaderList {
  if (length === 0) return headers;
  for (const [k] of headers) if (k.length === 14 && k.toLowerCase() === "content-length") return headers;
  return [...headers, ["Content-Length", String(length)]];
}

/**
 * What carries a v1 exchange's whole request to the plugin and its reply back: the stdio codec, or
 * NATS for a nexo plugin that talks it itself (src/nats/nexo-plugin.ts).
 */
export interface V1Carrier {
  /** Sends the request; returns what names the wait for its reply (undefined: failed at once). */
  _send(exchange: V1Exchange, head: RequestHead, body: Buffer[], size: number): string | undefined;
  /** The exchange is over, however it ended. */
  _closed(exchange: V1Exchange, inbox: string | undefined): void;
}

export class V1Exchange implements Exchange {
  events: ExchangeEvents = IGNORE_EVENTS;
  readonly #codec: V1Carrier;
  readonly #head: RequestHead;
  #parts: Buffer[] = [];
  #size = 0;
  #inbox: string | undefined;
  #sent = false;
  #closed = false;

  constructor(codec: V1Carrier, head: RequestHead) {
    this.#codec = codec;
    this.#head = head;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // The body is only gathered: the gateway bounds it (max_body_bytes) before it gets here.
  readonly blocked = false;

  write(chunk: Buffer): Promise<void> {
    if (!this.#closed && !this.#sent && chunk.length > 0) {
      this.#parts.push(chunk);
      this.#size += chunk.length;
    }
    return RESOLVED;
  }

  end(): void {
    if (this.#closed || this.#sent) return;
    this.#sent = true;
    const parts = this.#parts;
    this.#parts = [];
    this.#inbox = this.#codec._send(this, this.#head, parts, this.#size);
  }

  sendWs(): Promise<void> {
    return RESOLVED; // never accepted: a v1 reply can't be a 101
  }

  consumed(): void {}

  reset(): void {
    this.#close();
  }

  finish(): void {
    this.#close();
  }

  /** @internal The plugin's reply event. */
  _reply(event: unknown): void {
    if (this.#closed) return;
    let reply: ReturnType<typeof decodeReply>;
    try {
      reply = decodeReply(event);
    } catch (err) {
      this._fail(err instanceof GatewayError ? err : new GatewayError("bad_reply", String(err)));
      return;
    }
    this.#close();
    const { status, body } = reply;
    // The body is whole, so its length is portico's to say; the plugin's Content-Length stands only
    // where no body goes out to say otherwise (HEAD, 304).
    const keepLength = this.#head.method === "HEAD" || status === 304;
    const headers = keepLength ? reply.headers : reply.headers.filter(([k]) => !(k.length === 14 && k.toLowerCase() === "content-length"));
    this.events.head({ status, headers }, body.length === 0);
    if (body.length > 0) this.events.data(body, true);
  }

  /** @internal */
  _fail(err: GatewayError): void {
    if (this.#closed) return;
    this.#close();
    this.events.error(err);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#parts = [];
    this.#codec._closed(this, this.#inbox);
  }
}
