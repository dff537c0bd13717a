/**
 * Who may use /admin. Off unless `[admin] enabled`. Without a token, only clients on loopback are
 * let in, and only when nothing suggests a proxy or a foreign site in between; with a token, every
 * client must present it to the API (the page itself is static and holds no data). Refusals are
 * GatewayErrors: 404 while disabled, 403 for the wrong place, 401 for a missing or wrong token.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";
import type { AdminConfig } from "./config.js";

/** Headers a proxy adds: a request carrying one came from somewhere else, whatever its socket says. */
const PROXY_HEADERS = ["forwarded", "x-forwarded-for", "x-real-ip", "x-forwarded-host", "via"];

export type AdminAccess = "page" | "read" | "act";

/**
 * Throws unless `req` may have `access`: "page" (the static files), "read" (status, events) or
 * "act" (restart, stop).
 */
export function guardAdmin(req: IncomingMessage, cfg: AdminConfig, access: AdminAccess): void {
  if (!cfg.enabled) throw new GatewayError("not_found", "the admin page is disabled ([admin] enabled = false)");
  if (access === "act") refuseForeignOrigin(req);
  if (cfg.token !== undefined) {
    if (access !== "page" && !tokenMatches(req.headers.authorization, cfg.token)) {
      throw new GatewayError("admin_unauthorized", req.headers.authorization ? "wrong admin token" : "no admin token");
    }
    return;
  }
  if (!isLoopback(req.socket.remoteAddress)) throw new GatewayError("admin_forbidden", `admin from ${req.socket.remoteAddress}`);
  const proxied = PROXY_HEADERS.find((h) => req.headers[h] !== undefined);
  if (proxied) throw new GatewayError("admin_forbidden", `admin through a proxy (${proxied}); set a token to allow it`);
  // DNS rebinding: a page from evil.example whose name now points at 127.0.0.1 would be same-origin
  // with us. Its requests still say `Host: evil.example`.
  if (!isLoopbackHost(req.headers.host)) throw new GatewayError("admin_forbidden", `admin for Host ${req.headers.host}`);
}

/** A browser says where a request comes from on every POST: an action from another site is refused (CSRF). */
function refuseForeignOrigin(req: IncomingMessage): void {
  const origin = req.headers.origin;
  if (origin === undefined) return;
  let host: string;
  try {
    host = new URL(origin).host;
  } catch {
    throw new GatewayError("admin_forbidden", `unreadable Origin ${origin}`);
  }
  if (host !== req.headers.host) throw new GatewayError("admin_forbidden", `action from Origin ${origin}`);
}

function tokenMatches(header: string | undefined, token: string): boolean {
  const m = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  // Compared as digests: equal lengths for timingSafeEqual, and no length leaked by an early exit.
  const a = createHash("sha256")
    .update(m[1] as string)
    .digest();
  const b = createHash("sha256").update(token).digest();
  return timingSafeEqual(a, b);
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith("::ffff:") ? address.slice(7) : address;
  return address === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** `localhost`, `*.localhost`, 127.x.x.x or [::1], with or without a port. */
export function isLoopbackHost(host: string | undefined): boolean {
  if (!host) return false;
  const name = host
    .toLowerCase()
    .replace(/:\d+$/, "")
    .replace(/^\[(.*)\]$/, "$1");
  return name === "localhost" || name.endsWith(".localhost") || name === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(name);
}
