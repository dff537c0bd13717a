/**
 * The HTTP side: target → router → exchange → response. Also the library entry point: a Node
 * program mounts `portico.handler` in its own server and gets exactly what `portico serve` does.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { handleAdmin, Metrics } from "../admin/index.js";
import { DEFAULT_CONFIG, type PorticoConfig, resolveConfig } from "../config.js";
import { errorResponse, GatewayError } from "../errors.js";
import { loadPlugins, type Plugin, PluginHost, type Refusal, buildRoutes } from "../host/index.js";
import { createLogger, type Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import type { HttpReply } from "../protocol/v1.js";
import { type Route, Router, DEFAULT_RESERVED_PREFIXES } from "../router/index.js";
import { normalizeTarget } from "../target/index.js";
import { readBody } from "./body.js";
import { forwardRequestHeaders, requestIdOf, responseHead } from "./headers.js";

export interface PorticoOptions extends Partial<PorticoConfig> {
  /** Manifests to serve instead of (or besides) those found in `pluginsDir`. */
  manifests?: PluginManifest[];
  logger?: Logger;
}

export interface Portico {
  /** Node request listener: mount it in any http.Server. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  readonly config: PorticoConfig;
  readonly router: Router;
  readonly plugins: ReadonlyMap<string, Plugin>;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Plugins that were not loaded, and why. */
  readonly refused: readonly Refusal[];
  /** Loads manifests, registers routes, spawns plugins; resolves when every handshake settled. */
  start(): Promise<void>;
  /** A node:http server on config.listen (or the given address) serving `handler`. */
  listen(listen?: { host: string; port: number }): Promise<{ server: Server; address: AddressInfo }>;
  /** Stops taking requests, lets those in flight finish (up to the grace period), stops plugins. */
  close(): Promise<void>;
}

export function createPortico(options: PorticoOptions = {}): Portico {
  const { manifests: extra, logger, ...layer } = options;
  const config = resolveConfig(layer);
  const log = logger ?? createLogger({ level: config.logLevel });
  const router = new Router([...DEFAULT_RESERVED_PREFIXES, ...config.reservedPrefixes]);
  const host = new PluginHost(config.supervisor, log);
  const metrics = new Metrics();
  const refused: Refusal[] = [];
  const servers = new Set<Server>();
  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const defaults = { timeoutSeconds: config.timeoutSeconds, maxBodyBytes: config.maxBodyBytes };
  const adminCtx = { router, plugins: host.plugins, metrics, draining: () => draining };

  async function start(): Promise<void> {
    const manifests: PluginManifest[] = [];
    if (config.pluginsDir) {
      const loaded = await loadPlugins(config.pluginsDir, router, defaults);
      manifests.push(...loaded.accepted);
      refused.push(...loaded.refused);
    }
    if (extra) {
      const built = buildRoutes([...extra].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)), router, defaults);
      manifests.push(...built.accepted);
      refused.push(...built.refused);
    }
    for (const r of refused) {
      if (r.skipped) log.info({ plugin: r.plugin }, r.reason);
      else log.error({ plugin: r.plugin }, `plugin refused: ${r.reason}`);
    }
    for (const m of manifests) metrics.watch(host.add(m));
    await host.startAll();
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const requestId = requestIdOf(req);
    let route: Route | undefined;
    let status = 0;
    let error: GatewayError | undefined;
    inFlight++;
    try {
      const target = normalizeTarget(req.url ?? "");
      if (!target.ok) throw new GatewayError("bad_target", target.reason);
      if (draining) throw new GatewayError("shutting_down", undefined, { retryAfter: 5 });
      const match = router.match(target.path);
      if (!match) throw new GatewayError("not_found", `no route for ${target.path}`);
      if (match.kind === "reserved") {
        status = await handleAdmin(req, res, target.path, adminCtx);
        return;
      }
      route = match.route;
      const plugin = host.get(route.pluginId);
      if (!plugin) throw new GatewayError("plugin_unavailable", `plugin ${route.pluginId} not loaded`);
      if (plugin.status().inFlight >= config.maxInFlight) {
        throw new GatewayError("overloaded", `${config.maxInFlight} requests in flight`, { retryAfter: 1 });
      }
      const body = await readBody(req, route.maxBodyBytes);
      metrics.inFlight.inc({ plugin: route.pluginId });
      let reply: HttpReply;
      try {
        reply = await plugin.exchange(
          {
            method: req.method ?? "GET",
            path: target.path,
            query: target.query,
            headers: forwardRequestHeaders(req, { requestId, prefix: route.prefix, trustProxy: config.trustProxy, bodyLength: body.length }),
            body_base64: body.length ? body.toString("base64") : "",
          },
          route.timeoutMs,
        );
      } finally {
        metrics.inFlight.dec({ plugin: route.pluginId });
      }
      status = writeReply(req, res, reply, requestId);
    } catch (err) {
      error = err instanceof GatewayError ? err : new GatewayError("bad_reply", (err as Error)?.message, { cause: err });
      status = writeError(req, res, error, requestId);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const plugin = route?.pluginId ?? "";
      metrics.observe(plugin, route?.prefix ?? "", status, seconds);
      const line = { reqId: requestId, method: req.method, path: req.url, plugin: plugin || undefined, status, ms: Math.round(seconds * 1e4) / 10 };
      if (error && status >= 500) log.warn({ ...line, err: error.message }, "request failed");
      else log.info(line, "request");
      if (--inFlight === 0 && idle) idle();
    }
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    void handle(req, res);
  };

  async function listen(at = config.listen): Promise<{ server: Server; address: AddressInfo }> {
    const server = createServer({ keepAliveTimeout: 65_000 }, handler);
    servers.add(server);
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(at.port, at.host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return { server, address: server.address() as AddressInfo };
  }

  async function close(): Promise<void> {
    draining = true;
    const closed = [...servers].map((s) => new Promise<void>((resolve) => s.close(() => resolve())));
    for (const s of servers) s.closeIdleConnections();
    if (inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => {
          idle = resolve;
        }),
        new Promise((resolve) => setTimeout(resolve, config.supervisor.shutdownGraceMs).unref()),
      ]);
    }
    await host.stopAll();
    for (const s of servers) s.closeAllConnections();
    await Promise.all(closed);
    servers.clear();
  }

  return { handler, config, router, plugins: host.plugins, metrics, log, refused, start, listen, close };
}

/** Writes a validated plugin reply. HEAD, 204 and 304 carry no body. */
function writeReply(req: IncomingMessage, res: ServerResponse, reply: HttpReply, requestId: string): number {
  if (res.destroyed) return 499;
  const head = responseHead(reply.headers);
  const { status, body } = reply;
  const noBody = req.method === "HEAD" || status === 204 || status === 304;
  if (status === 204) {
    // no Content-Length at all
  } else if (noBody) {
    const length = head.contentLength !== undefined && /^\d+$/.test(head.contentLength) ? head.contentLength : body.length ? String(body.length) : undefined;
    if (length !== undefined) head.flat.push("Content-Length", length);
  } else {
    head.flat.push("Content-Length", String(body.length));
  }
  if (!head.hasRequestId) head.flat.push("X-Request-Id", requestId);
  res.writeHead(status, head.flat);
  res.end(noBody ? undefined : body);
  return status;
}

function writeError(req: IncomingMessage, res: ServerResponse, err: GatewayError, requestId: string): number {
  if (res.destroyed) return 499;
  if (res.headersSent) {
    res.destroy(err);
    return err.status;
  }
  const { status, headers, body } = errorResponse(err);
  const flat = headers.flat();
  flat.push("X-Request-Id", requestId);
  // A body we refused to read must not be parsed as the next request.
  if (err.code === "payload_too_large" || !req.complete) flat.push("Connection", "close");
  res.writeHead(status, flat);
  res.end(req.method === "HEAD" ? undefined : body);
  return status;
}

export { DEFAULT_CONFIG };
