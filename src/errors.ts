/**
 * Every failure a request can meet on its way through portico is one of these codes, and each code
 * maps to exactly one HTTP status here. Nothing else in the code base picks an error status.
 */
export type GatewayErrorCode =
  | "bad_target" // unparsable, ambiguous or hostile request-target
  | "bad_request" // a request that cannot be completed, such as a body cut short
  | "http_version" // a request line that is not HTTP/1.0 or HTTP/1.1
  | "not_implemented" // a method portico does not serve at all (CONNECT)
  | "request_timeout" // the client did not finish sending its request head in time
  | "uri_too_long" // a request line over max_header_bytes on its own
  | "expectation_failed" // an Expect other than 100-continue
  | "websocket_version" // a WebSocket handshake for a version other than 13
  | "headers_too_large" // request head over max_header_bytes or max_header_count
  | "not_found" // no route, or nothing in a reserved space
  | "method_not_allowed" // a daemon endpoint asked with the wrong method
  | "admin_unauthorized" // the admin API without the right bearer token (when one is set)
  | "admin_forbidden" // the admin page or API from where it is not served (a non-loopback client, a foreign Origin)
  | "not_local" // an admin action on a plugin another process runs (a NATS host's, seen from a gateway)
  | "payload_too_large" // request body over the route's limit
  | "plugin_unavailable" // plugin starting, restarting, failed or stopped
  | "plugin_timeout" // no reply within the route's timeout
  | "bad_reply" // the plugin answered something that is not a valid HTTP reply
  | "plugin_crashed" // the plugin process died with the exchange in flight
  | "plugin_reset" // the plugin reset the stream before answering (protocol v2)
  | "app_unreachable" // an app serving HTTP itself: nothing answered on its port
  | "app_disconnected" // an app serving HTTP itself closed or reset the connection before its response head
  | "overloaded" // too many exchanges in flight for one plugin, or too many bytes queued for it
  | "too_many_connections" // over max_connections
  | "shutting_down" // the daemon is draining
  | "client_closed"; // the client went away before its answer was complete (nothing is sent)

const STATUS: Record<GatewayErrorCode, number> = {
  bad_target: 400,
  bad_request: 400,
  http_version: 505,
  not_implemented: 501,
  request_timeout: 408,
  uri_too_long: 414,
  expectation_failed: 417,
  websocket_version: 426,
  headers_too_large: 431,
  not_found: 404,
  method_not_allowed: 405,
  admin_unauthorized: 401,
  admin_forbidden: 403,
  not_local: 409,
  payload_too_large: 413,
  plugin_unavailable: 503,
  plugin_timeout: 504,
  bad_reply: 502,
  plugin_crashed: 502,
  plugin_reset: 502,
  app_unreachable: 502,
  app_disconnected: 502,
  overloaded: 503,
  too_many_connections: 503,
  shutting_down: 503,
  // nginx's convention: recorded in logs and metrics, never sent (there is nobody to send it to).
  client_closed: 499,
};

/** Public error messages. The seed's bodies for 504 and 502 are kept byte for byte. */
const MESSAGE: Record<GatewayErrorCode, string> = {
  bad_target: "bad request target",
  bad_request: "bad request",
  http_version: "HTTP version not supported",
  not_implemented: "method not implemented",
  request_timeout: "request timeout",
  uri_too_long: "request target too long",
  expectation_failed: "expectation failed",
  websocket_version: "WebSocket version not supported",
  headers_too_large: "request header fields too large",
  not_found: "not found",
  method_not_allowed: "method not allowed",
  admin_unauthorized: "unauthorized",
  admin_forbidden: "forbidden",
  not_local: "plugin not run by this process",
  payload_too_large: "request body too large",
  plugin_unavailable: "plugin unavailable",
  plugin_timeout: "plugin gateway timeout",
  bad_reply: "plugin reply malformed",
  plugin_crashed: "plugin exited before replying",
  plugin_reset: "plugin reset the request",
  app_unreachable: "app unreachable",
  app_disconnected: "app closed the connection",
  overloaded: "plugin overloaded",
  too_many_connections: "too many connections",
  shutting_down: "shutting down",
  client_closed: "client closed request",
};

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  /** Seconds; sent as Retry-After on 503s. */
  readonly retryAfter: number | undefined;
  /** For the log only: never sent to the client. */
  readonly detail: string | undefined;

  constructor(code: GatewayErrorCode, detail?: string, options?: { retryAfter?: number; cause?: unknown }) {
    super(detail ? `${MESSAGE[code]}: ${detail}` : MESSAGE[code], { cause: options?.cause });
    this.name = "GatewayError";
    this.code = code;
    this.detail = detail;
    this.retryAfter = options?.retryAfter;
  }

  get status(): number {
    return STATUS[this.code];
  }
}

export function statusOf(code: GatewayErrorCode): number {
  return STATUS[code];
}

export interface ErrorResponse {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

/** The one place where an error becomes what the client sees. */
export function errorResponse(err: unknown): ErrorResponse {
  const e = err instanceof GatewayError ? err : new GatewayError("bad_reply", String(err));
  const body = Buffer.from(JSON.stringify({ error: MESSAGE[e.code] }));
  const headers: [string, string][] = [
    ["Content-Type", "application/json; charset=utf-8"],
    ["Content-Length", String(body.length)],
  ];
  if (e.status === 503) headers.push(["Retry-After", String(Math.max(1, Math.ceil(e.retryAfter ?? 1)))]);
  // RFC 6455 §4.2.2: the refusal names the version portico speaks.
  if (e.code === "websocket_version") headers.push(["Sec-WebSocket-Version", "13"]);
  // RFC 6750 §3: a 401 names the scheme it wants.
  if (e.code === "admin_unauthorized") headers.push(["WWW-Authenticate", 'Bearer realm="portico admin"']);
  return { status: e.status, headers, body };
}
