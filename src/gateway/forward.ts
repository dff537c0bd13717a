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
import type { Exchange, ResponseHead } from "../exchange/index.js";
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
 * head, the stream lives as long as bytes move again. One closure per exchange keeps its state
 * where every event can reach it: a class would only spread the same lines wider.
 */
export function forward(req: IncomingMessage, res: ServerResponse, exchange: Exchange, opts: ForwardOptions): Promise<number> {
  const { route, maxBodyBytes, hasBody } = opts;
  return new Promise<number>((resolve, reject) => {
    let status = 0;
    let done = false;
    let requestEnded = !hasBody;
    /** The client is paused because the plugin gave no credit: a stall is then the plugin's. */
    let waitingForPlugin = false;
    let headReceived = false;
    /** HEAD, 204 and 304 answers carry no body, whatever the plugin sends. */
    let bodyless = false;
    /** Body bytes the plugin's Content-Length still announces: at 0 the response ends, END or not. */
    let remaining: number | undefined;
    /** A response head held for this turn: see `head`. */
    let pending: { flat: string[]; lengthKnown: boolean } | undefined;
    let firstByte: NodeJS.Timeout | undefined;
    /** Armed only once something streams: a small exchange, over in one turn, never pays for it. */
    let idle: NodeJS.Timeout | undefined;
    /** Judges the upload's rate while it lasts (min_upload_rate). */
    let rate: NodeJS.Timeout | undefined;

    const settle = (result: number | GatewayError) => {
      if (done) return;
      done = true;
      clearTimeout(firstByte);
      clearTimeout(idle);
      clearInterval(rate);
      if (typeof result === "number") resolve(result);
      else reject(result);
    };
    /** Ends the exchange with an error: an answer if nothing was sent yet, else a cut connection. */
    const fail = (err: GatewayError) => {
      if (!res.headersSent) return settle(err);
      settle(status);
      // Everything the head announced was written and the response ended: the client has its
      // answer, and the connection may carry its next request already. Nothing to cut.
      if (res.writableEnded) return;
      // What was written may still sit in the socket's cork buffer: let it leave, then cut. The
      // client sees a chunked body without its last chunk, or fewer bytes than announced.
      const socket = res.socket;
      while (socket && socket.writableCorked > 0) socket.uncork();
      res.destroy(err);
    };
    const armFirstByte = () => {
      firstByte = setTimeout(() => {
        exchange.reset("timeout", "no response head in time");
        fail(new GatewayError("plugin_timeout", `no response head within ${route.timeoutMs} ms`));
      }, route.timeoutMs);
    };
    const onIdle = () => {
      // The whole request is sent and the head is awaited: that wait is timeout_seconds' alone.
      if (requestEnded && !headReceived) return;
      exchange.reset("timeout", "stream idle");
      if (headReceived || waitingForPlugin) return fail(new GatewayError("plugin_timeout", "stream idle"));
      fail(new GatewayError("request_timeout", "request body stalled"));
    };
    const touch = () => {
      if (idle) idle.refresh();
      else if (!done) idle = setTimeout(onIdle, route.idleTimeoutMs);
    };
    const writePending = (wholeBody?: number) => {
      const p = pending as { flat: string[]; lengthKnown: boolean };
      pending = undefined;
      if (wholeBody !== undefined && !p.lengthKnown) p.flat.push("Content-Length", String(wholeBody));
      res.writeHead(status, p.flat);
    };

    const onHead = (head: ResponseHead, end: boolean) => {
      if (done) return;
      clearTimeout(firstByte);
      idle?.refresh();
      headReceived = true;
      status = head.status;
      if (status === 101) {
        // Only an upgrade request may be answered 101 (the codec refuses it otherwise).
        const up = opts.upgrade;
        if (!up) {
          exchange.reset("error", "101 to a request that asked for no upgrade");
          return fail(new GatewayError("bad_reply", "101 to a request that asked for no upgrade"));
        }
        settle(101);
        tunnel(req, up.socket, up.head, head.headers, exchange);
        return;
      }
      const h = responseHead(head.headers);
      bodyless = req.method === "HEAD" || status === 204 || status === 304;
      // A 204 has no length at all; a 304 may only repeat the plugin's own (RFC 9110 §8.6).
      let lengthKnown = status === 204 || status === 304;
      if (h.contentLength !== undefined && /^\d+$/.test(h.contentLength) && status !== 204) {
        h.flat.push("Content-Length", h.contentLength);
        lengthKnown = true;
        // Node then refuses to send more or fewer bytes than announced instead of corrupting the framing.
        if (!bodyless) {
          res.strictContentLength = true;
          remaining = Number(h.contentLength);
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
      pending = { flat: h.flat, lengthKnown };
      queueMicrotask(flushPending);
    };
    const flushPending = () => {
      if (!pending || done) return;
      writePending();
      res.flushHeaders();
      touch();
    };

    const onData = (chunk: Buffer, end: boolean) => {
      if (!end || idle) touch();
      if (done || res.writableEnded) return exchange.consumed(chunk.length);
      const whole = pending !== undefined && end;
      if (pending) writePending(end ? chunk.length : undefined);
      try {
        if (whole && !bodyless && chunk.length > 0) {
          // The whole body at once: head and body leave in one write.
          res.end(chunk, () => exchange.consumed(chunk.length));
          return;
        }
        if (chunk.length > 0) {
          if (bodyless) exchange.consumed(chunk.length);
          else res.write(chunk, () => exchange.consumed(chunk.length));
        }
        if (remaining !== undefined && !bodyless) remaining -= chunk.length;
        // The announced length is complete: the response is over for the client now. A plugin
        // that never sends END (or a host that dies just before it) must not hold the response
        // open, nor later cut a keep-alive connection that has moved on to the next request.
        if (end || remaining === 0) res.end();
      } catch (err) {
        // The head is stored (headersSent means only that) but maybe not sent: send it, then cut,
        // so the client sees a short body.
        res.flushHeaders();
        exchange.reset("error", "response body does not match its Content-Length");
        fail(new GatewayError("bad_reply", (err as Error).message));
      }
    };

    exchange.events = {
      head: onHead,
      data: onData,
      // Before a 101 there is no WebSocket to give a message to.
      ws: (_opcode, payload) => exchange.consumed(payload.length),
      error: fail,
    };

    res.on("finish", () => settle(status));
    res.on("close", () => {
      if (!done) {
        // Everything was handed to the socket when the client left: its 'finish' may never come
        // (the last write fails), so the exchange ends here, as answered.
        if (res.writableFinished) return settle(status);
        exchange.reset("cancel", "client went away");
        settle(new GatewayError("client_closed", "client went away"));
        return;
      }
      // The answer is complete. A request body still on its way won't end now (node closes a
      // connection whose answer went out before its body was read, say a plugin's early 413):
      // without END or RESET the exchange would stay open on both sides, counted in flight.
      if (!requestEnded && !exchange.closed) exchange.reset("cancel", "answered before the request body ended");
    });

    if (!hasBody) return armFirstByte();
    touch();
    let received = 0;
    /** Bytes in the current rate window, and whether the plugin held the client back in it. */
    let windowBytes = 0;
    let heldBack = false;
    if (opts.minUploadRate > 0) {
      rate = setInterval(() => {
        if (requestEnded) return clearInterval(rate);
        const tooSlow = !heldBack && !waitingForPlugin && windowBytes < (opts.minUploadRate * RATE_WINDOW_MS) / 1000;
        windowBytes = 0;
        heldBack = false;
        if (!tooSlow) return;
        exchange.reset("timeout", "request body too slow");
        fail(new GatewayError("request_timeout", `request body slower than ${opts.minUploadRate} bytes/s`));
      }, RATE_WINDOW_MS);
    }
    const onBody = (chunk: Buffer) => {
      received += chunk.length;
      windowBytes += chunk.length;
      touch();
      if (received > maxBodyBytes) {
        req.off("data", onBody);
        exchange.reset("cancel", "request body too large");
        return fail(new GatewayError("payload_too_large", `body over ${maxBodyBytes} bytes`));
      }
      if (exchange.closed) return; // the plugin finished without reading it all: drop the rest
      const sent = exchange.write(chunk);
      // Backpressure: stop reading the client only while the plugin has no credit for us.
      if (exchange.blocked) {
        req.pause();
        waitingForPlugin = true;
        heldBack = true;
        sent.then(() => {
          waitingForPlugin = false;
          req.resume();
        });
      }
    };
    req.on("data", onBody);
    req.on("end", () => {
      requestEnded = true;
      clearInterval(rate);
      if (done) return;
      if (!exchange.closed) exchange.end();
      if (!headReceived) armFirstByte();
    });
  });
}
