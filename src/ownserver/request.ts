/**
 * The request as an own-server app receives it, and what a failure to reach it means for the
 * client. Both are the same for plain HTTP and WebSockets.
 */
import { GatewayError } from "../errors.js";
import type { HeaderList } from "../exchange/index.js";

/**
 * The gateway's request headers (already without hop-by-hop ones, with portico's X-Forwarded-*),
 * with portico's token in Authorization. The client's own Authorization is kept, moved to
 * X-Forwarded-Authorization, so an app with users of its own can still read their credentials;
 * a client's X-Forwarded-Authorization is dropped (it is portico's to say). Expect is dropped:
 * portico answered it already (100-continue), and the app is sent the body without asking.
 */
export function appRequestHeaders(headers: HeaderList, token: string | undefined): HeaderList {
  const out: HeaderList = [];
  for (const [name, value] of headers) {
    const lower = name.toLowerCase().replaceAll("_", "-");
    if (lower === "expect") continue;
    if (token !== undefined) {
      if (lower === "x-forwarded-authorization") continue;
      if (lower === "authorization") {
        out.push(["X-Forwarded-Authorization", value]);
        continue;
      }
    }
    out.push([name, value]);
  }
  if (token !== undefined) out.push(["Authorization", `Bearer ${token}`]);
  return out;
}

/** Node's raw header list ([name, value, name, value, …], strings or latin-1 bytes) as pairs. */
export function headerPairs(raw: readonly (string | Buffer)[]): HeaderList {
  const out: HeaderList = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([String(raw[i]), latin1(raw[i + 1] as string | Buffer)]);
  return out;
}

const latin1 = (v: string | Buffer) => (typeof v === "string" ? v : v.toString("latin1"));

/** Nothing listens where the manifest says the app does (or not yet, or no longer). */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "EADDRNOTAVAIL",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);
/** The app's answer broke HTTP (or WebSocket) framing. */
const MALFORMED = new Set([
  "UND_ERR_RES_CONTENT_LENGTH_MISMATCH",
  "UND_ERR_HEADERS_OVERFLOW",
  "UND_ERR_RES_EXCEEDED_MAX_SIZE",
  "UND_ERR_INFO",
]);

/** Methods RFC 9110 calls idempotent: sending one twice means the same as once. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);
/** The connection ended under a request that had no answer yet. */
const CONNECTION_LOST = new Set(["UND_ERR_SOCKET", "ECONNRESET", "EPIPE"]);

/**
 * Whether a request that failed with `err` before any byte of an answer may be sent once more, on
 * a new connection. A kept-alive connection the app closes (its keep-alive timeout, or a server
 * shutting down) can cross a request on its way there; a proxy that passed that on as a 502 would
 * fail requests the app never saw. So, as nginx and Go's client do, an idempotent request without
 * a body (nothing to replay) is tried once more, and its second failure is the answer.
 */
export function mayRetry(err: unknown, method: string, hasBody: boolean): boolean {
  const code = (err as { code?: unknown })?.code;
  return !hasBody && typeof code === "string" && CONNECTION_LOST.has(code) && IDEMPOTENT.has(method);
}

/** The typed error for a failure of undici or ws talking to the app (docs/own-server.md lists them). */
export function appFailure(err: unknown): GatewayError {
  const code = (err as { code?: unknown })?.code;
  const message = (err as Error)?.message ?? String(err);
  if (typeof code === "string") {
    if (UNREACHABLE.has(code)) return new GatewayError("app_unreachable", `${code}: ${message}`, { cause: err });
    if (MALFORMED.has(code) || code.startsWith("HPE_") || code.startsWith("WS_ERR_"))
      return new GatewayError("bad_reply", `${code}: ${message}`, { cause: err });
    // The request body did not match its own Content-Length: the client's fault, caught on the way.
    if (code === "UND_ERR_REQ_CONTENT_LENGTH_MISMATCH") return new GatewayError("bad_request", message, { cause: err });
    // UND_ERR_SOCKET, ECONNRESET, EPIPE, …: the connection ended under the exchange.
    return new GatewayError("app_disconnected", `${code}: ${message}`, { cause: err });
  }
  // ws's handshake checks (a bad Sec-WebSocket-Accept, a subprotocol nobody offered) carry no code.
  return new GatewayError("bad_reply", message, { cause: err });
}
