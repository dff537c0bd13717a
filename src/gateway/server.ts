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
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket, log));
  // Expect: 100-continue is answered by the handler once the body is known to be wanted, so a body
  // over the limit gets its 413 before the client sends it.
  server.on("checkContinue", handler);
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
      endWithResponse(
        socket,
        status,
        headers.filter(([k]) => k !== "Content-Length"),
        body,
      );
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
 * header lines than allowed, and CONNECT (portico is no tunnel).
 */
export function refuseMalformedHead(req: IncomingMessage, maxHeaderCount: number): void {
  if (req.httpVersionMajor !== 1) {
    if (req.httpVersionMajor === 0) throw new GatewayError("bad_request", `request line of HTTP/${req.httpVersion}`);
    throw new GatewayError("http_version", `HTTP/${req.httpVersion}`);
  }
  if (req.rawHeaders.length / 2 > maxHeaderCount) throw new GatewayError("headers_too_large", `over ${maxHeaderCount} header lines`);
  if (req.method === "CONNECT") throw new GatewayError("not_implemented", "CONNECT");
}
