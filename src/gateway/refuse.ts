/**
 * How portico says no: an error answer on a request node:http still manages, or on a raw socket
 * (an upgrade, a request node's parser refused). The status always comes from src/errors.ts.
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import { errorResponse, GatewayError, type GatewayErrorCode, statusOf } from "../errors.js";
import { newUuid } from "../ids.js";
import type { Logger } from "../log.js";
import { endWithResponse } from "./raw.js";

/** Connections whose last answer is written or being written (it said Connection: close). */
export const closing = new WeakSet<object>();

/** Writes the answer for `err` if nothing was written yet; returns the status to record. */
export function writeError(req: IncomingMessage, res: ServerResponse, err: GatewayError, requestId: string): number {
  if (res.destroyed) return statusOf("client_closed");
  if (res.headersSent) {
    res.destroy(err);
    return err.status;
  }
  const { status, headers, body } = errorResponse(err);
  const flat = headers.flat();
  flat.push("X-Request-Id", requestId);
  // Close after a body we refused to read (not worth draining), and after a request we could not
  // make sense of (400): the bytes that follow it on the connection are not trusted either. A
  // request without a body is not `complete` yet while its handler runs synchronously (node marks
  // it right after the 'request' event), so `complete` alone would close every connection on a 404.
  if (err.code === "payload_too_large" || err.status === 400 || bodyPending(req)) {
    flat.push("Connection", "close");
    closing.add(req.socket);
  }
  res.writeHead(status, flat);
  res.end(req.method === "HEAD" ? undefined : body);
  return status;
}

/**
 * Requests node's parser refuses never reach the handler (a NUL, control or non-ASCII byte in the
 * target, a bad header, broken framing). Node's default answer is a bare "400" with no body and no
 * request id; answer like every other error instead, then close: the stream can't be trusted.
 */
export function onClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger, maxHeaderBytes: number): void {
  // Bytes after a request that said `Connection: close`: ignored, not answered (RFC 9112 §9.6).
  // That request's own answer is still on its way, and node closes the connection after it.
  if (err.code === "HPE_CLOSED_CONNECTION") return;
  // The client hung up in the middle of its request: nobody to answer, nothing to report.
  if (err.code === "HPE_INVALID_EOF_STATE") return void socket.destroy();
  const current = (socket as { _httpMessage?: ServerResponse })._httpMessage;
  if (!socket.writable || current?.headersSent || err.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const answer = () => {
    const { status, headers, body } = errorResponse(new GatewayError(parserErrorCode(err, maxHeaderBytes), err.message));
    const requestId = newUuid();
    endWithResponse(socket, status, [...withoutLength(headers), ["X-Request-Id", requestId]], body);
    log.warn({ reqId: requestId, status, err: err.code ?? err.message }, "request refused by the HTTP parser");
  };
  // Bad bytes pipelined behind a complete request still being answered: that answer goes first,
  // then this one, then the connection closes. (Bad bytes inside the current request's own body
  // make that request the bad one: answered now.)
  if (current && (current as ServerResponse & { req?: IncomingMessage }).req?.complete) {
    closing.add(socket);
    current.once("finish", answer);
    current.once("close", () => {
      if (!current.writableFinished) socket.destroy();
    });
    return;
  }
  answer();
}

function parserErrorCode(err: NodeJS.ErrnoException & { rawPacket?: Buffer }, maxHeaderBytes: number): GatewayErrorCode {
  switch (err.code) {
    case "HPE_INVALID_URL":
      return "bad_target";
    case "HPE_INVALID_VERSION":
      // A well-formed version portico doesn't speak (HTTP/3.0, HTTP/1.2) is 505; a malformed one 400.
      return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+ \S+ HTTP\/\d\.\d\r\n/.test(err.rawPacket?.subarray(0, 8192).toString("latin1") ?? "")
        ? "http_version"
        : "bad_request";
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return "request_timeout";
    case "HPE_HEADER_OVERFLOW": {
      // The request line alone over the limit, when the bytes show it: 414, else 431.
      const raw = err.rawPacket;
      const lineEnd = raw?.indexOf(0x0a) ?? -1;
      const startsLine = raw !== undefined && /^[A-Za-z]+ /.test(raw.subarray(0, 16).toString("latin1"));
      return startsLine && (lineEnd === -1 || lineEnd >= maxHeaderBytes) ? "uri_too_long" : "headers_too_large";
    }
    default:
      return "bad_request";
  }
}

/** endWithResponse sets Content-Length itself. */
const withoutLength = (headers: [string, string][]) => headers.filter(([k]) => k !== "Content-Length");

/** True while a declared request body may still be on the wire, unread. */
function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}
