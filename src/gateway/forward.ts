/**
 * One exchange between a client and a plugin, whatever carries it: the request body is pumped to
 * the plugin as it allows (a paused client while it has no credit), the response is written as it
 * arrives, and credit goes back only once bytes have left for the client's socket. The HTTP rules
 * of a response (HEAD, 204 and 304 bodiless; who says Content-Length) and the exchange's clocks
 * (time to the response head, idle time) live here and nowhere else.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { GatewayError } from "../errors.js";
import type { Exchange, ExchangeEvents, ResponseHead } from "../exchange/index.js";
import type { Route } from "../router/index.js";
import { responseHead } from "./headers.js";
import { tunnel } from "./websocket.js";

export interface ForwardOptions {
  route: Route;
  requestId: string;
  /** Largest request body accepted (Infinity for none). */
  maxBodyBytes: number;
  /** Slowest upload accepted, bytes per second over each RATE_WINDOW_MS (0: none). */
  minUploadRate: number;
  /** Whether the client sends a body (RFC 9112 §6.3). */
  hasBody: boolean;
  /** A WebSocket upgrade: where the tunnel goes once the plugin accepts it with 101. */
  upgrade?: { socket: Duplex; head: Buffer };
}

/** The window over which an upload's rate is judged against min_upload_rate. */
export const RATE_WINDOW_MS = 10_000;

/** Whether the request has a body at all (RFC 9112 §6.3). */
export function requestHasBody(req: IncomingMessage): boolean {
  if (req.headers["transfer-encoding"] !== undefined) return true;
  const cl = req.headers["content-length"];
  return cl !== undefined && cl !== "0";
}

/**
 * Resolves with the status the client got (101 once a WebSocket tunnel is handed over). Rejects
 * with a GatewayError while nothing has been written to the client yet, so the caller answers it,
 * and with `client_closed` when the client went away first.
 *
 * Clocks: while the request body is on its way, the exchange lives as long as bytes move
 * (`idleTimeoutMs`); from its end, the response head must come within `timeoutMs`; after the
 * head, the stream lives as long as bytes move again.
 */
export function forward(req: IncomingMessage, res: ServerResponse, exchange: Exchange, opts: ForwardOptions): Promise<number> {
  return new Promise<number>((resolve, reject) => new Forwarding(req, res, exchange, opts, resolve, reject).start());
}

/** Where the node:http objects' listeners (shared functions, below) find their exchange. */
const FORWARDING = Symbol("portico.forwarding");
type Carrying = { [FORWARDING]?: Forwarding };
const of = (emitter: unknown) => (emitter as Carrying)[FORWARDING] as Forwarding;

/**
 * One exchange's state, and its handlers as methods. It runs once per request, so nothing here is
 * a closure made per request: the exchange's events are this object's methods, the listeners on
 * the request and response are functions shared by all exchanges, and timers get `this` as their
 * argument. (The closures a function-per-exchange needed were a measurable share of the
 * collector's work under small requests.)
 */
class Forwarding implements ExchangeEvents {
  #status = 0;
  #done = false;
  #requestEnded: boolean;
  /** The client is paused because the plugin gave no credit: a stall is then the plugin's. */
  #waitingForPlugin = false;
  #headReceived = false;
  /** HEAD, 204 and 304 answers carry no body, whatever the plugin sends. */
  #bodyless = false;
  /** Body bytes the plugin's Content-Length still announces: at 0 the response ends, END or not. */
  #remaining: number | undefined;
  /** A response head held for this turn: see `head`. */
  #pending: { flat: string[]; lengthKnown: boolean } | undefined;
  #firstByte: NodeJS.Timeout | undefined;
  /** Armed only once something streams: a small exchange, over in one turn, never pays for it. */
  #idle: NodeJS.Timeout | undefined;
  /** Judges the upload's rate while it lasts (min_upload_rate). */
  #rate: NodeJS.Timeout | undefined;
  #received = 0;
  /** Bytes in the current rate window, and whether the plugin held the client back in it. */
  #windowBytes = 0;
  #heldBack = false;
  /** The client's socket while this turn's pieces of a streamed body gather on it: see `#corkTurn`. */
  #corked: Duplex | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly exchange: Exchange,
    readonly opts: ForwardOptions,
    readonly resolve: (status: number) => void,
    readonly reject: (err: GatewayError) => void,
  ) {
    this.#requestEnded = !opts.hasBody;
  }

  start(): void {
    const { req, res, exchange, opts } = this;
    exchange.events = this;
    (res as Carrying)[FORWARDING] = this;
    res.on("finish", onResponseFinish);
    res.on("close", onResponseClose);
    if (!opts.hasBody) {
      this.#armFirstByte();
      return;
    }
    this.touch();
    if (opts.minUploadRate > 0) this.#rate = setInterval(judgeRate, RATE_WINDOW_MS, this);
    (req as Carrying)[FORWARDING] = this;
    req.on("data", onRequestData);
    req.on("end", onRequestEnd);
  }

  settle(result: number | GatewayError): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#firstByte);
    clearTimeout(this.#idle);
    clearInterval(this.#rate);
    if (typeof result === "number") this.resolve(result);
    else this.reject(result);
  }

  /** Ends the exchange with an error: an answer if nothing was sent yet, else a cut connection. */
  fail(err: GatewayError): void {
    const { res } = this;
    if (!res.headersSent) {
      this.settle(err);
      return;
    }
    this.settle(this.#status);
    // Everything the head announced was written and the response ended: the client has its
    // answer, and the connection may carry its next request already. Nothing to cut.
    if (res.writableEnded) return;
    // What was written may still sit in the socket's cork buffer: let it leave, then cut. The
    // client sees a chunked body without its last chunk, or fewer bytes than announced.
    const socket = res.socket;
    while (socket && socket.writableCorked > 0) socket.uncork();
    res.destroy(err);
  }

  #armFirstByte(): void {
    this.#firstByte = setTimeout(firstByteTimeout, this.opts.route.timeoutMs, this);
  }

  firstByteTimeout(): void {
    this.exchange.reset("timeout", "no response head in time");
    this.fail(new GatewayError("plugin_timeout", `no response head within ${this.opts.route.timeoutMs} ms`));
  }

  idleTimeout(): void {
    // The whole request is sent and the head is awaited: that wait is timeout_seconds' alone.
    if (this.#requestEnded && !this.#headReceived) return;
    this.exchange.reset("timeout", "stream idle");
    if (this.#headReceived || this.#waitingForPlugin) {
      this.fail(new GatewayError("plugin_timeout", "stream idle"));
      return;
    }
    this.fail(new GatewayError("request_timeout", "request body stalled"));
  }

  touch(): void {
    if (this.#idle) this.#idle.refresh();
    else if (!this.#done) this.#idle = setTimeout(idleTimeout, this.opts.route.idleTimeoutMs, this);
  }

  #writePending(wholeBody?: number): void {
    const p = this.#pending as { flat: string[]; lengthKnown: boolean };
    this.#pending = undefined;
    if (wholeBody !== undefined && !p.lengthKnown) p.flat.push("Content-Length", String(wholeBody));
    this.res.writeHead(this.#status, p.flat);
  }

  head(head: ResponseHead, end: boolean): void {
    if (this.#done) return;
    const { req, res, exchange, opts } = this;
    clearTimeout(this.#firstByte);
    this.#idle?.refresh();
    this.#headReceived = true;
    const status = head.status;
    this.#status = status;
    if (status === 101) {
      // Only an upgrade request may be answered 101 (the codec refuses it otherwise).
      const up = opts.upgrade;
      if (!up) {
        exchange.reset("error", "101 to a request that asked for no upgrade");
        this.fail(new GatewayError("bad_reply", "101 to a request that asked for no upgrade"));
        return;
      }
      this.settle(101);
      tunnel(req, up.socket, up.head, head.headers, exchange);
      return;
    }
    const h = responseHead(head.headers);
    const bodyless = req.method === "HEAD" || status === 204 || status === 304;
    this.#bodyless = bodyless;
    // A 204 has no length at all; a 304 may only repeat the plugin's own (RFC 9110 §8.6).
    let lengthKnown = status === 204 || status === 304;
    if (h.contentLength !== undefined && /^\d+$/.test(h.contentLength) && status !== 204) {
      h.flat.push("Content-Length", h.contentLength);
      lengthKnown = true;
      // Node then refuses to send more or fewer bytes than announced instead of corrupting the framing.
      if (!bodyless) {
        res.strictContentLength = true;
        this.#remaining = Number(h.contentLength);
      }
    } else if (end && !bodyless) {
      h.flat.push("Content-Length", "0");
    }
    if (!h.hasRequestId) h.flat.push("X-Request-Id", opts.requestId);
    if (end) {
      res.writeHead(status, h.flat);
      res.end();
      return;
    }
    // Held while this read is handled: if the whole body follows in it (a small response), it
    // goes out with a Content-Length in one write; otherwise (a stream, SSE) the head goes out
    // alone right after, so the client sees the response open at once.
    this.#pending = { flat: h.flat, lengthKnown };
    queueMicrotask(() => this.#flushPending());
  }

  #flushPending(): void {
    if (!this.#pending || this.#done) return;
    this.#writePending();
    this.res.flushHeaders();
    this.touch();
  }

  data(chunk: Buffer, end: boolean): void {
    const { res, exchange } = this;
    if (!end || this.#idle) this.touch();
    if (this.#done || res.writableEnded) {
      exchange.consumed(chunk.length);
      return;
    }
    const whole = this.#pending !== undefined && end;
    if (this.#pending) this.#writePending(end ? chunk.length : undefined);
    const bodyless = this.#bodyless;
    try {
      if (whole && !bodyless && chunk.length > 0) {
        // The whole body at once: head and body leave in one write.
        res.end(chunk, consumedAfterWrite(exchange, chunk.length));
        return;
      }
      if (chunk.length > 0) {
        if (bodyless) exchange.consumed(chunk.length);
        else {
          this.#corkTurn();
          res.write(chunk, consumedAfterWrite(exchange, chunk.length));
        }
      }
      if (this.#remaining !== undefined && !bodyless) this.#remaining -= chunk.length;
      // The announced length is complete: the response is over for the client now. A plugin
      // that never sends END (or a host that dies just before it) must not hold the response
      // open, nor later cut a keep-alive connection that has moved on to the next request.
      if (end || this.#remaining === 0) res.end();
    } catch (err) {
      // The head is stored (headersSent means only that) but maybe not sent: send it, then cut,
      // so the client sees a short body.
      res.flushHeaders();
      exchange.reset("error", "response body does not match its Content-Length");
      this.fail(new GatewayError("bad_reply", (err as Error).message));
    }
  }

  /**
   * A streamed body's pieces arrive as the plugin's pipe is read, tens of KiB at a time, and
   * node:http writes each turn of the microtask queue: one system call per read. Held corked until
   * the event loop's turn ends, everything that arrived in it leaves in one write (node:http's own
   * cork within a tick nests inside this one).
   */
  #corkTurn(): void {
    const socket = this.res.socket;
    if (this.#corked || !socket) return;
    this.#corked = socket;
    socket.cork();
    setImmediate(uncorkTurn, this);
  }

  uncorkTurn(): void {
    const socket = this.#corked;
    this.#corked = undefined;
    if (socket && socket.writableCorked > 0) socket.uncork();
  }

  ws(_opcode: number, payload: Buffer): void {
    // Before a 101 there is no WebSocket to give a message to.
    this.exchange.consumed(payload.length);
  }

  error(err: GatewayError): void {
    this.fail(err);
  }

  /** The response went out whole. */
  answered(): void {
    this.settle(this.#status);
  }

  responseClosed(): void {
    const { res, exchange } = this;
    if (!this.#done) {
      // Everything was handed to the socket when the client left: its 'finish' may never come
      // (the last write fails), so the exchange ends here, as answered.
      if (res.writableFinished) {
        this.settle(this.#status);
        return;
      }
      exchange.reset("cancel", "client went away");
      this.settle(new GatewayError("client_closed", "client went away"));
      return;
    }
    // The answer is complete. A request body still on its way won't end now (node closes a
    // connection whose answer went out before its body was read, say a plugin's early 413):
    // without END or RESET the exchange would stay open on both sides, counted in flight.
    if (!this.#requestEnded && !exchange.closed) exchange.reset("cancel", "answered before the request body ended");
  }

  judgeRate(): void {
    if (this.#requestEnded) {
      clearInterval(this.#rate);
      return;
    }
    const minRate = this.opts.minUploadRate;
    const tooSlow = !this.#heldBack && !this.#waitingForPlugin && this.#windowBytes < (minRate * RATE_WINDOW_MS) / 1000;
    this.#windowBytes = 0;
    this.#heldBack = false;
    if (!tooSlow) return;
    this.exchange.reset("timeout", "request body too slow");
    this.fail(new GatewayError("request_timeout", `request body slower than ${minRate} bytes/s`));
  }

  body(chunk: Buffer): void {
    const { req, exchange, opts } = this;
    this.#received += chunk.length;
    this.#windowBytes += chunk.length;
    this.touch();
    if (this.#received > opts.maxBodyBytes) {
      req.off("data", onRequestData);
      exchange.reset("cancel", "request body too large");
      this.fail(new GatewayError("payload_too_large", `body over ${opts.maxBodyBytes} bytes`));
      return;
    }
    if (exchange.closed) return; // the plugin finished without reading it all: drop the rest
    const sent = exchange.write(chunk);
    // Backpressure: stop reading the client only while the plugin has no credit for us.
    if (exchange.blocked) {
      req.pause();
      this.#waitingForPlugin = true;
      this.#heldBack = true;
      sent.then(() => {
        this.#waitingForPlugin = false;
        req.resume();
      });
    }
  }

  requestEnd(): void {
    this.#requestEnded = true;
    clearInterval(this.#rate);
    if (this.#done) return;
    if (!this.exchange.closed) this.exchange.end();
    if (!this.#headReceived) this.#armFirstByte();
  }
}

// Shared by every exchange: node:http calls them with the emitter as `this`; timers pass the exchange.
function onResponseFinish(this: ServerResponse): void {
  of(this).answered();
}
function onResponseClose(this: ServerResponse): void {
  of(this).responseClosed();
}
function onRequestData(this: IncomingMessage, chunk: Buffer): void {
  of(this).body(chunk);
}
function onRequestEnd(this: IncomingMessage): void {
  of(this).requestEnd();
}
const firstByteTimeout = (f: Forwarding) => f.firstByteTimeout();
const idleTimeout = (f: Forwarding) => f.idleTimeout();
const judgeRate = (f: Forwarding) => f.judgeRate();
const uncorkTurn = (f: Forwarding) => f.uncorkTurn();

/** Credit goes back once the bytes have left for the client's socket. */
function consumedAfterWrite(exchange: Exchange, n: number): () => void {
  return () => exchange.consumed(n);
}
