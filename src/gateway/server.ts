/**
 * The public node:http server and the limits a hostile client meets before any routing: time to
 * send a request head, idle keep-alive time, open connections, header count and size, HTTP
 * versions. (Mounted in an app's own server, `portico.handler` keeps the per-request checks; the
 * connection-level limits are then that server's.)
 */

import { createServer, type IncomingMessage, type RequestListener, type Server } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { PorticoConfig } from "../config.js";
import { errorResponse, GatewayError } from "../errors.js";
import { newUuid } from "../ids.js";
import type { Logger } from "../log.js";
import { endWithResponse } from "./raw.js";
import { closing, onClientError } from "./refuse.js";

export function publicServer(config: PorticoConfig, handler: RequestListener, log: Logger): Server {
  const headMs = Math.max(1, Math.round(config.headTimeoutSeconds * 1000));
  const server = createServer(
    {
      // requestTimeout 0: a streamed upload may take hours; a stalled or too slow one is cut by
      // the route's idle timeout and min_upload_rate instead.
      requestTimeout: 0,
      // Node derives this from requestTimeout (0: never), which would let a head drip forever.
      headersTimeout: headMs,
      // How often node checks for heads that are late: often enough that the limit means what it says.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.round(headMs / 4))),
      keepAliveTimeout: Math.max(1, Math.round(config.keepAliveTimeoutSeconds * 1000)),
      maxHeaderSize: config.maxHeaderBytes,
      // Host is checked by the handler, so a request without one gets portico's 400.
      requireHostHeader: false,
    },
    handler,
  );
  // One more than allowed, so that a head with too many lines is seen (node drops the rest silently).
  server.maxHeadersCount = config.maxHeaderCount + 1;
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket, log, config.maxHeaderBytes));
  // Expect: 100-continue is answered by the handler once the body is known to be wanted, so a body
  // over the limit gets its 413 before the client sends it.
  server.on("checkContinue", handler);
  // Any other expectation reaches the handler too, to be refused like everything else (node's own
  // 417 has no body and no request id).
  server.on("checkExpectation", handler);
  capConnections(server, config.maxConnections, log);
  return server;
}

/**
 * Over `max` open connections, a new one is answered 503 and closed at once (node's own
 * maxConnections would drop it without a word). Runs before node's parser sees the socket.
 */
function capConnections(server: Server, max: number, log: Logger): void {
  let open = 0;
  let refused = 0;
  server.prependListener("connection", (socket: Socket) => {
    if (open >= max) {
      closing.add(socket);
      if (refused++ === 0) log.warn({ max }, "over max_connections: refusing new connections (503)");
      const { status, headers, body } = errorResponse(new GatewayError("too_many_connections", undefined, { retryAfter: 1 }));
      endWithResponse(socket, status, [...headers.filter(([k]) => k !== "Content-Length"), ["X-Request-Id", newUuid()]], body);
      return;
    }
    if (open === 0 && refused > 0) refused = 0;
    open++;
    socket.once("close", () => {
      open--;
      if (open < max && refused > 0) {
        log.info({ refused }, "below max_connections again");
        refused = 0;
      }
    });
  });
}

/**
 * What node's parser lets through but portico must not: a request line that is not HTTP/1.x
 * (HTTP/0.9's bare `GET /path` would let the next line pass as a header of its choosing), more
 * header lines than allowed, CONNECT (portico is no tunnel), an HTTP/1.0 body framed by
 * Transfer-Encoding (RFC 9112 §6.1: faulty framing, a smuggling vector), an expectation other than
 * 100-continue, and a Host that is no host.
 */
export function refuseMalformedHead(req: IncomingMessage, maxHeaderCount: number): void {
  if (req.httpVersionMajor !== 1) {
    if (req.httpVersionMajor === 0) throw new GatewayError("bad_request", `request line of HTTP/${req.httpVersion}`);
    throw new GatewayError("http_version", `HTTP/${req.httpVersion}`);
  }
  if (req.rawHeaders.length / 2 > maxHeaderCount) throw new GatewayError("headers_too_large", `over ${maxHeaderCount} header lines`);
  if (req.method === "CONNECT") throw new GatewayError("not_implemented", "CONNECT");
  if (req.httpVersionMinor === 0 && req.headers["transfer-encoding"] !== undefined) {
    throw new GatewayError("bad_request", "Transfer-Encoding in an HTTP/1.0 request");
  }
  const expect = req.headers.expect;
  if (expect !== undefined && expect.toLowerCase() !== "100-continue") throw new GatewayError("expectation_failed", expect);
  const host = req.headers.host;
  if (host !== undefined && host !== "" && !HOST.test(host)) throw new GatewayError("bad_request", `Host ${JSON.stringify(host)}`);
}

/** host [":" port], the host a DNS name, an IPv4 address or a bracketed IPv6 literal (RFC 9110 §7.2). */
const HOST = /^(?:[A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * An absolute-form target (`GET http://host/p`) names its own authority, which wins over Host
 * (RFC 9112 §3.2.2: the plugin then sees it as Host and X-Forwarded-Host). It must be a host like
 * any Host, without userinfo (`user:pass@`, RFC 9110 §4.2.4).
 */
export function refuseBadAuthority(authority: string | undefined): void {
  if (authority === undefined) return;
  if (authority.includes("@")) throw new GatewayError("bad_target", "userinfo in the request target");
  if (!HOST.test(authority)) throw new GatewayError("bad_target", `authority ${JSON.stringify(authority)}`);
}
