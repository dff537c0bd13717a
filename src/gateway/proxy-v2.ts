/**
 * One HTTP exchange over a protocol v2 stream: the request body is pumped to the plugin as credit
 * allows, the response is written to the client as frames arrive, and credit goes back only once
 * bytes have left for the client's socket. Memory per exchange stays within one window each way.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "../errors.js";
import { type HeaderList, validateHeaders } from "../protocol/v1.js";
import type { Stream } from "../protocol/v2.js";
import type { Route } from "../router/index.js";
import { responseHead } from "./headers.js";

export interface ResponseHeadV2 {
  status: number;
  headers: HeaderList;
}

/** A response HEAD from the plugin, validated like a v1 reply. */
export function validateHeadV2(value: unknown, allowUpgrade = false): ResponseHeadV2 {
  if (typeof value !== "object" || value === null) throw new GatewayError("bad_reply", "response HEAD is not an object");
  const h = value as Record<string, unknown>;
  const status = h.status;
  const ok =
    typeof status === "number" && Number.isInteger(status) && ((status >= 200 && status <= 599) || (allowUpgrade && status === 101));
  if (!ok) throw new GatewayError("bad_reply", `status ${JSON.stringify(status)} is not an integer in 200..599`);
  return { status: status as number, headers: validateHeaders(h.headers ?? []) };
}

/** Whether the request has a body at all (RFC 9112 §6.3). */
export function requestHasBody(req: IncomingMessage): boolean {
  const te = req.headers["transfer-encoding"];
  if (te !== undefined) return true;
  const cl = req.headers["content-length"];
  return cl !== undefined && cl !== "0";
}

export interface ProxyOptions {
  route: Route;
  /** Largest request body accepted (Infinity for none). */
  maxBodyBytes: number;
  requestId: string;
}

/**
 * Resolves with the status sent (499 when the client went away first). Rejects with a
 * GatewayError only while nothing has been written to the client yet, so the caller can answer it.
 */
export function proxyV2(req: IncomingMessage, res: ServerResponse, stream: Stream, hasBody: boolean, opts: ProxyOptions): Promise<number> {
  const { route, maxBodyBytes } = opts;
  const noBody = req.method === "HEAD";
  return new Promise<number>((resolve, reject) => {
    let status = 0;
    let done = false;
    let requestEnded = !hasBody;

    const settle = (result: number | GatewayError) => {
      if (done) return;
      done = true;
      clearTimeout(firstByte);
      clearTimeout(idle);
      if (typeof result === "number") resolve(result);
      else reject(result);
    };
    /** Ends the exchange with an error: an answer if nothing was sent yet, else a cut connection. */
    const fail = (err: GatewayError) => {
      if (!res.headersSent) return settle(err);
      settle(status);
      // What was written may still sit in the socket's cork buffer: let it leave, then cut. The
      // client sees a chunked body without its last chunk, or fewer bytes than announced.
      const socket = res.socket;
      while (socket && socket.writableCorked > 0) socket.uncork();
      res.destroy(err);
    };

    const firstByte = setTimeout(() => {
      stream.reset("timeout", "no response head in time");
      fail(new GatewayError("plugin_timeout", `no response head within ${route.timeoutMs} ms`));
    }, route.timeoutMs);
    const onIdle = () => {
      // The whole request is sent and the head is awaited: that wait is bounded by timeout_seconds
      // alone, which a route may set longer than its idle timeout (a slow first byte, then a stream).
      if (requestEnded && status === 0) return void idle?.refresh();
      stream.reset("timeout", "stream idle");
      // Before the plugin answered, an idle stream means the client stopped sending its body.
      fail(requestEnded ? new GatewayError("plugin_timeout", "stream idle") : new GatewayError("request_timeout", "request body stalled"));
    };
    /**
     * Armed only once something streams (a request body, a response body in more than one piece):
     * a small exchange, over in one turn, never pays for it.
     */
    let idle: NodeJS.Timeout | undefined = hasBody ? setTimeout(onIdle, route.idleTimeoutMs) : undefined;
    const touch = () => {
      if (idle) idle.refresh();
      else if (!done) idle = setTimeout(onIdle, route.idleTimeoutMs);
    };
    let headReceived = false;
    /** A response head not yet written: see onHead. */
    let pending: { flat: string[]; lengthKnown: boolean } | undefined;
    const writePending = (wholeBody?: number) => {
      const p = pending as { flat: string[]; lengthKnown: boolean };
      pending = undefined;
      if (wholeBody !== undefined && !p.lengthKnown) p.flat.push("Content-Length", String(wholeBody));
      res.writeHead(status, p.flat);
    };

    stream.handlers = {
      onHead(value, end) {
        if (headReceived) {
          stream.reset("error", "a second response HEAD");
          return fail(new GatewayError("bad_reply", "a second response HEAD"));
        }
        clearTimeout(firstByte);
        idle?.refresh();
        let head: ResponseHeadV2;
        try {
          head = validateHeadV2(value);
        } catch (err) {
          stream.reset("error", (err as Error).message);
          return fail(err as GatewayError);
        }
        if (done) return;
        headReceived = true;
        status = head.status;
        const h = responseHead(head.headers);
        const bodyless = noBody || status === 204 || status === 304;
        let lengthKnown = bodyless;
        if (h.contentLength !== undefined && /^\d+$/.test(h.contentLength) && status !== 204) {
          h.flat.push("Content-Length", h.contentLength);
          lengthKnown = true;
          // Node then refuses to send more or fewer bytes than announced instead of corrupting the framing.
          if (!bodyless) res.strictContentLength = true;
        } else if (end && !bodyless) {
          h.flat.push("Content-Length", "0");
        }
        if (!h.hasRequestId) h.flat.push("X-Request-Id", opts.requestId);
        if (end) {
          res.writeHead(status, h.flat);
          res.end();
          return;
        }
        // Held for this turn: if the whole body follows in the same read (a small response), it
        // goes out with a Content-Length in one write; otherwise (a stream, SSE) the head goes out
        // alone right after, so the client sees the response open at once.
        pending = { flat: h.flat, lengthKnown };
        setImmediate(() => {
          if (!pending || done) return;
          writePending();
          res.flushHeaders();
          touch();
        });
      },
      onData(chunk, end) {
        if (!end || idle) touch();
        if (!headReceived || done) {
          stream.consumed(chunk.length);
          if (!headReceived) fail(new GatewayError("bad_reply", "DATA before HEAD"));
          return;
        }
        if (pending) writePending(end ? chunk.length : undefined);
        try {
          if (chunk.length > 0) {
            if (noBody) stream.consumed(chunk.length);
            else res.write(chunk, () => stream.consumed(chunk.length));
          }
          if (end) res.end();
        } catch (err) {
          // The head is stored (headersSent means only that) but maybe not sent: send it, then cut,
          // so the client sees a short body.
          res.flushHeaders();
          stream.reset("error", "response body does not match its Content-Length");
          fail(new GatewayError("bad_reply", (err as Error).message));
        }
      },
      onReset(code, message) {
        // The plugin gave up, or its process went away ("gone").
        fail(new GatewayError(code === "gone" ? "plugin_crashed" : "plugin_reset", message ?? code));
      },
    };

    res.on("finish", () => settle(status));
    res.on("close", () => {
      if (!done && !res.writableFinished) {
        stream.reset("cancel", "client went away");
        settle(499);
        return;
      }
      // The answer is complete. A request body still on its way won't end now (node closes a
      // connection whose answer went out before its body was read, say a plugin's early 413):
      // without END or RESET the stream would stay open on both sides, counted in flight.
      if (!requestEnded && !stream.closed) stream.reset("cancel", "answered before the request body ended");
    });

    if (!hasBody) return;
    let received = 0;
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      touch();
      if (received > maxBodyBytes) {
        req.off("data", onData);
        stream.reset("cancel", "request body too large");
        return fail(new GatewayError("payload_too_large", `body over ${maxBodyBytes} bytes`));
      }
      if (stream.closed) return; // the plugin finished without reading it all: drop the rest
      const sent = stream.sendData(chunk);
      // Backpressure: stop reading the client only while the plugin has no credit for us.
      if (stream.blocked) {
        req.pause();
        sent.then(() => req.resume());
      }
    };
    req.on("data", onData);
    req.on("end", () => {
      requestEnded = true;
      if (!stream.closed) void stream.end();
    });
  });
}
