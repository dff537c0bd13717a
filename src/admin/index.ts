/** The daemon's own endpoints inside the reserved prefixes. */
import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "../errors.js";
import type { PluginStatus } from "../host/plugin.js";
import type { Router } from "../router/index.js";
import type { AdminApi } from "./api.js";
import type { Metrics } from "./metrics.js";

export { AdminApi } from "./api.js";
export { Metrics } from "./metrics.js";

export interface AdminContext {
  router: Router;
  /** The plugins requests go to (local children, or on NATS what the hosts announce). */
  plugins: () => ReadonlyMap<string, { readonly id: string; status(): PluginStatus }>;
  /** On a NATS gateway: the hosts it knows. */
  hosts: () => object[] | undefined;
  metrics: Metrics;
  draining: () => boolean;
  /** /admin: the status page and its API (off unless [admin] enabled). */
  api: AdminApi;
}

/** Answers a request in the reserved space; throws GatewayError for anything it does not serve. */
export async function handleAdmin(req: IncomingMessage, res: ServerResponse, path: string, ctx: AdminContext): Promise<number> {
  if (path === "/admin" || path.startsWith("/admin/")) return ctx.api.handle(req, res, path);
  const endpoint =
    path === "/health" || path === "/health/" ? "health" : path === "/metrics" || path === "/metrics/" ? "metrics" : undefined;
  if (!endpoint) throw new GatewayError("not_found", `nothing at ${path} in the reserved space`);
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    throw new GatewayError("method_not_allowed");
  }
  if (endpoint === "health") {
    const plugins = [...ctx.plugins().values()].map((p) => ({ ...p.status(), prefix: ctx.router.routeOf(p.id)?.prefix ?? null }));
    const ready = plugins.every((p) => p.state === "ready");
    const status = ctx.draining() ? "draining" : ready ? "ok" : "degraded";
    const hosts = ctx.hosts();
    const body = JSON.stringify(hosts ? { status, plugins, hosts } : { status, plugins });
    return send(req, res, ctx.draining() ? 503 : 200, "application/json; charset=utf-8", body);
  }
  return send(req, res, 200, ctx.metrics.registry.contentType, await ctx.metrics.registry.metrics());
}

function send(req: IncomingMessage, res: ServerResponse, status: number, type: string, text: string): number {
  const body = Buffer.from(text);
  res.writeHead(status, { "Content-Type": type, "Content-Length": body.length, "Cache-Control": "no-store" });
  res.end(req.method === "HEAD" ? undefined : body);
  return status;
}
