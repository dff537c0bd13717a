/**
 * /admin: the status page (three static files), the API it and `portico ctl` share, and its live
 * feed (server-sent events). Every request passes the guard first (src/admin/guard.ts).
 *
 *   GET  /admin                         the page          GET /admin/admin.js, /admin/admin.css
 *   GET  /admin/api/status              every plugin, as JSON
 *   GET  /admin/api/events              the same, pushed once a second and on every state change
 *   POST /admin/api/plugins/ID/restart  stop (gracefully) and start again; also starts a stopped plugin
 *   POST /admin/api/plugins/ID/stop     stop gracefully; it stays stopped (503) until restarted
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { AdminConfig } from "./config.js";
import { guardAdmin } from "./guard.js";
import { pageFile } from "./page.js";
import { type AdminStatus, adminStatus, type PluginView, type StatusSources } from "./status.js";

/** A plugin this process runs, as far as the admin API acts on it. */
export interface Controllable {
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface AdminApiContext extends StatusSources {
  config: AdminConfig;
  /** The plugins this process runs (a NATS gateway's are run by hosts: not here). */
  local: (id: string) => Controllable | undefined;
  log: Logger;
}

/** Open event streams, each a page left open somewhere: bounded like any other resource. */
const MAX_EVENT_STREAMS = 64;
const EVENT_INTERVAL_MS = 1000;
const JSON_TYPE = "application/json; charset=utf-8";

type Endpoint =
  | { kind: "page"; file: string }
  | { kind: "status" }
  | { kind: "events" }
  | { kind: "action"; id: string; action: "restart" | "stop" };

function endpointOf(path: string): Endpoint | undefined {
  if (path === "/admin" || path === "/admin/") return { kind: "page", file: "index.html" };
  if (path === "/admin/admin.js" || path === "/admin/admin.css") return { kind: "page", file: path.slice(7) };
  if (path === "/admin/api/status") return { kind: "status" };
  if (path === "/admin/api/events") return { kind: "events" };
  const m = /^\/admin\/api\/plugins\/([^/]+)\/(restart|stop)$/.exec(path);
  if (m) return { kind: "action", id: m[1] as string, action: m[2] as "restart" | "stop" };
  return undefined;
}

export class AdminApi {
  readonly #ctx: AdminApiContext;
  /** One action at a time per plugin: two restarts at once would start two processes. */
  readonly #busy = new Map<string, Promise<unknown>>();
  #streams = 0;

  constructor(ctx: AdminApiContext) {
    this.#ctx = ctx;
  }

  /** Answers a request for `path` under /admin; throws a GatewayError to refuse it. */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<number> {
    const endpoint = endpointOf(path);
    const access = endpoint?.kind === "action" ? "act" : endpoint?.kind === "page" || !endpoint ? "page" : "read";
    guardAdmin(req, this.#ctx.config, access);
    if (!endpoint) throw new GatewayError("not_found", `nothing at ${path} in the admin space`);
    const method = req.method ?? "GET";
    const allowed = endpoint.kind === "action" ? ["POST"] : endpoint.kind === "events" ? ["GET"] : ["GET", "HEAD"];
    if (!allowed.includes(method)) {
      res.setHeader("Allow", allowed.join(", "));
      throw new GatewayError("method_not_allowed");
    }
    switch (endpoint.kind) {
      case "page": {
        const file = await pageFile(endpoint.file);
        return send(req, res, 200, file.type, file.body, PAGE_HEADERS);
      }
      case "status":
        return send(req, res, 200, JSON_TYPE, JSON.stringify(this.status()));
      case "events":
        return this.#events(res);
      case "action":
        return this.#act(req, res, endpoint.id, endpoint.action);
    }
  }

  status(): AdminStatus {
    return adminStatus(this.#ctx);
  }

  async #act(req: IncomingMessage, res: ServerResponse, id: string, action: "restart" | "stop"): Promise<number> {
    const ctx = this.#ctx;
    if (!ctx.plugins().has(id) && !ctx.local(id)) throw new GatewayError("not_found", `no plugin ${id}`);
    const plugin = ctx.local(id);
    if (!plugin) throw new GatewayError("not_local", `${id} runs on a NATS host`);
    ctx.log.info({ plugin: id, action, client: req.socket.remoteAddress }, `admin: ${action} ${id}`);
    const previous = this.#busy.get(id) ?? Promise.resolve();
    const run = previous.then(() => (action === "restart" ? plugin.restart() : plugin.stop()));
    const settled = run.catch(() => {});
    this.#busy.set(id, settled);
    try {
      await run;
    } finally {
      if (this.#busy.get(id) === settled) this.#busy.delete(id);
    }
    const view = this.status().plugins.find((p) => p.id === id) as PluginView;
    return send(req, res, 200, JSON_TYPE, JSON.stringify({ action, plugin: view }));
  }

  /** The status once now, then every second and right after each state change, until the client leaves. */
  #events(res: ServerResponse): Promise<number> {
    if (this.#streams >= MAX_EVENT_STREAMS) {
      throw new GatewayError("overloaded", `${MAX_EVENT_STREAMS} admin event streams open`, { retryAfter: 5 });
    }
    this.#streams++;
    const live = this.#ctx.live;
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no" });
    let queued = false;
    const push = () => {
      queued = false;
      if (this.#ctx.draining()) return void res.end();
      // A client that reads nothing gets nothing more until it does: the next tick resends it all.
      if (res.writableLength > 0) return;
      res.write(`event: status\ndata: ${JSON.stringify(this.status())}\n\n`);
    };
    const soon = () => {
      if (queued) return;
      queued = true;
      setImmediate(push);
    };
    push();
    const timer = setInterval(push, EVENT_INTERVAL_MS);
    live.on("change", soon);
    return new Promise((resolve) => {
      res.on("close", () => {
        clearInterval(timer);
        live.off("change", soon);
        this.#streams--;
        resolve(200);
      });
    });
  }
}

/** The page may run only its own script and style, and may not be framed (clickjacking on its buttons). */
const PAGE_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Frame-Options": "DENY",
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  type: string,
  content: string | Buffer,
  extra: Record<string, string> = {},
): number {
  const body = typeof content === "string" ? Buffer.from(content) : content;
  res.writeHead(status, { "Content-Type": type, "Content-Length": body.length, "Cache-Control": "no-store", ...extra });
  res.end(req.method === "HEAD" ? undefined : body);
  return status;
}
