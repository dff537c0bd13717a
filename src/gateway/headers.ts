/** Header rules at the proxy boundary, both directions (RFC 9110 §7.6.1). */

import type { IncomingMessage } from "node:http";
import type { HeaderList } from "../exchange/index.js";
import { newUuid } from "../ids.js";

/** Meaningful for one connection only; never forwarded. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
]);

/**
 * Headers that claim who the client is or how it came: portico says that itself. A client's own
 * are dropped unless the proxy in front is trusted: every X-Forwarded-* (For, Proto, Host, Port,
 * Ssl, Server, …), Forwarded, and the other spellings of "the client's address" in common use.
 */
const CLIENT_CLAIMS = new Set(["forwarded", "x-real-ip", "x-client-ip", "true-client-ip", "x-cluster-client-ip", "client-ip"]);
const isForwarding = (lower: string) => lower.startsWith("x-forwarded-") || CLIENT_CLAIMS.has(lower);

/** Lower-cased names listed in Connection headers (all of them, comma-separated). */
function connectionTokens(values: Iterable<string>): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (const v of values) {
    for (const t of v.split(",")) {
      const name = t.trim().toLowerCase();
      if (!name) continue;
      tokens ??= new Set();
      tokens.add(name);
    }
  }
  return tokens;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The client's X-Request-Id when it is a sane token, else a fresh one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers["x-request-id"];
  return typeof given === "string" && REQUEST_ID.test(given) ? given : newUuid();
}

export interface ForwardContext {
  requestId: string;
  prefix: string;
  trustProxy: boolean;
  /** An absolute-form target's authority: it stands for Host (RFC 9112 §3.2.2). */
  authority?: string;
}

/**
 * The headers the plugin sees: the client's, in order and case with duplicates, minus hop-by-hop
 * ones and (unless trusted) forwarding ones, plus portico's X-Forwarded-* and X-Request-Id.
 */
export function forwardRequestHeaders(req: IncomingMessage, ctx: ForwardContext): HeaderList {
  const raw = req.rawHeaders;
  const conn = req.headers.connection ? connectionTokens([req.headers.connection]) : undefined;
  const out: HeaderList = [];
  let priorFor: string | undefined;
  let proto: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    // Underscores count as dashes: CGI and WSGI servers fold X_Forwarded_For into the same
    // HTTP_X_FORWARDED_FOR as X-Forwarded-For, so such a spelling must not slip past these rules.
    const spelled = name.toLowerCase();
    const lower = spelled.includes("_") ? spelled.replaceAll("_", "-") : spelled;
    if (HOP_BY_HOP.has(lower) || conn?.has(lower) || lower === "x-request-id") continue;
    if (isForwarding(lower)) {
      if (!ctx.trustProxy) continue;
      if (lower === "x-forwarded-for") {
        priorFor = priorFor ? `${priorFor}, ${value}` : value;
        continue;
      }
      if (lower === "x-forwarded-proto") proto ??= value;
      else if (lower === "x-forwarded-host") host ??= value;
      else if (lower === "x-forwarded-prefix")
        continue; // always ours: it is the route's
      else out.push([name, value]);
      continue;
    }
    out.push([name, lower === "host" && ctx.authority !== undefined ? ctx.authority : value]);
  }
  const client = clientAddress(req);
  out.push(["X-Forwarded-For", priorFor ? `${priorFor}, ${client}` : client]);
  out.push(["X-Forwarded-Proto", proto ?? ((req.socket as { encrypted?: boolean }).encrypted ? "https" : "http")]);
  const ownHost = ctx.authority ?? req.headers.host;
  if (host ?? ownHost) out.push(["X-Forwarded-Host", (host ?? ownHost) as string]);
  out.push(["X-Forwarded-Prefix", ctx.prefix]);
  out.push(["X-Request-Id", ctx.requestId]);
  return out;
}

function clientAddress(req: IncomingMessage): string {
  const a = req.socket.remoteAddress ?? "";
  return a.startsWith("::ffff:") ? a.slice(7) : a;
}

export interface ResponseHead {
  /** Flat [name, value, name, value, …] for res.writeHead: keeps order and repeated Set-Cookie. */
  flat: string[];
  /** The plugin's Content-Length, if it sent one (kept for HEAD and 304). */
  contentLength: string | undefined;
  hasRequestId: boolean;
}

/** The plugin's reply headers, already validated, minus hop-by-hop ones and Content-Length. */
export function responseHead(headers: HeaderList): ResponseHead {
  // Every Connection header counts, not just the last one (RFC 9110 §5.3: they form one list).
  const connValues: string[] = [];
  for (const [k, v] of headers) if (k.length === 10 && k.toLowerCase() === "connection") connValues.push(v);
  const conn = connValues.length ? connectionTokens(connValues) : undefined;
  const flat: string[] = [];
  let contentLength: string | undefined;
  let hasRequestId = false;
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || conn?.has(lower)) continue;
    if (lower === "content-length") {
      contentLength = value.trim();
      continue;
    }
    if (lower === "x-request-id") hasRequestId = true;
    flat.push(name, value);
  }
  return { flat, contentLength, hasRequestId };
}
