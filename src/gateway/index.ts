/**
 * The HTTP side: target → router → exchange → response. Also the library entry point: a Node
 * program mounts `portico.handler` in its own server and gets exactly what `portico serve` does.
 */
import { type IncomingMessage, type Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { AdminApi, handleAdmin, Metrics } from "../admin/index.js";
import { DEFAULT_CONFIG, type PorticoConfig, resolveConfig } from "../config.js";
import { GatewayError } from "../errors.js";
import type { RequestHead, Upstream } from "../exchange/index.js";
import { buildRoutes, loadPlugins, type Plugin, PluginHost, type Refusal } from "../host/index.js";
import { Reloader, type ReloadSummary } from "../host/reload.js";
import { createLogger, type Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import type { NatsRoles } from "../nats/roles.js";
import { DEFAULT_RESERVED_PREFIXES, type Route, Router } from "../router/index.js";
import { normalizeTarget, type Target } from "../target/index.js";
import { accessLogger } from "./access-log.js";
import { invite, refuseDeclaredOver } from "./body.js";
import { forward, requestHasBody } from "./forward.js";
import { forwardRequestHeaders, requestIdOf } from "./headers.js";
import { closing, writeError } from "./refuse.js";
import { publicServer, refuseBadAuthority, refuseMalformedHead } from "./server.js";
import { refuseBadHandshake } from "./websocket.js";

type Normal = Extract<Target, { ok: true }>;

/** An Upgrade request's socket and the bytes read past its head. */
interface Upgrade {
  websocket: boolean;
  socket: Duplex;
  head: Buffer;
}

export interface PorticoOptions extends Partial<PorticoConfig> {
  /** Manifests to serve instead of (or besides) those found in `pluginsDir`. */
  manifests?: PluginManifest[];
  logger?: Logger;
}

export interface Portico {
  /** Node request listener: mount it in any http.Server. */
  readonly handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Node 'upgrade' listener: WebSockets to v2 plugins. listen() wires it; mount it beside `handler`. */
  readonly upgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void;
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
  /**
   * Rescans the plugins folder and applies what changed (docs/hot-reload.md): new plugins are
   * mounted, removed ones drained and stopped, changed ones swapped blue-green. Resolves when the
   * new processes are serving (draining ones stop in the background). Embedded mode only.
   */
  reload(trigger?: string): Promise<ReloadSummary>;
  /** SIGKILL to every plugin process, served or draining: for a daemon that is exiting anyway. */
  killPlugins(reason: string): void;
  /** Stops taking requests, lets those in flight finish (up to the grace period), stops plugins. */
  close(): Promise<void>;
}

export function createPortico(options: PorticoOptions = {}): Portico {
  const { manifests: extra, logger, ...layer } = options;
  const config = resolveConfig(layer);
  const log = logger ?? createLogger({ level: config.logLevel });
  const router = new Router([...DEFAULT_RESERVED_PREFIXES, ...config.reservedPrefixes]);
  const role = config.nats?.role;
  // A host's own plugins are routed by gateways, not here: its router only applies the local rules.
  const localRouter = role === "host" || role === "both" ? new Router(router.reservedPrefixes) : router;
  let nats: NatsRoles | undefined;
  const host = new PluginHost(
    config.supervisor,
    {
      maxLineBytes: config.maxLineBytes,
      maxQueuedBytes: config.maxQueuedBytes,
      maxLogLinesPerSecond: config.maxLogLinesPerSecond,
      inputStallMs: config.inputStallMs,
    },
    log,
  );
  const metrics = new Metrics();
  const access = accessLogger(log);
  const refused: Refusal[] = [];
  const servers = new Set<Server>();
  let draining = false;
  let inFlight = 0;
  let idle: (() => void) | undefined;
  const defaults = { timeoutSeconds: config.timeoutSeconds, idleTimeoutSeconds: config.idleTimeoutSeconds };
  /** The plugins requests go to: this process's children, or, on NATS, what the hosts announce. */
  const served = () => nats?.plugins ?? host.plugins;
  const api = new AdminApi({
    config: config.admin,
    router,
    plugins: served,
    hosts: () => nats?.hosts(),
    live: metrics.live,
    draining: () => draining,
    isLocal: (id) => host.plugins.has(id),
    local: (id) => host.plugins.get(id),
    stderrOf: (id) => host.plugins.get(id)?.stderrTail(),
    role: config.nats?.role ?? "embedded",
    log,
  });
  const adminCtx = { router, plugins: served, hosts: () => nats?.hosts(), metrics, draining: () => draining, api };
  /** Set after start() in embedded mode with a plugins folder: what reload() runs. */
  let reloader: Reloader | undefined;
  const unwatch = new Map<Plugin, () => void>();

  async function start(): Promise<void> {
    const manifests: PluginManifest[] = [];
    if (config.pluginsDir) {
      const loaded = await loadPlugins(config.pluginsDir, localRouter, defaults, role === "gateway");
      manifests.push(...loaded.accepted);
      refused.push(...loaded.refused);
    }
    if (config.pluginsDir && !role) {
      reloader = new Reloader({
        dir: config.pluginsDir,
        host,
        router,
        defaults,
        log,
        onServe: (p) => unwatch.set(p, metrics.watch(p)),
        onRetire: (p) => {
          unwatch.get(p)?.();
          unwatch.delete(p);
        },
      });
      await reloader.adopt(manifests);
    }
    if (extra) {
      const built = buildRoutes(
        [...extra].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
        localRouter,
        defaults,
        role === "gateway",
      );
      manifests.push(...built.accepted);
      refused.push(...built.refused);
    }
    for (const r of refused) {
      if (r.skipped) log.info({ plugin: r.plugin }, r.reason);
      else log.error({ plugin: r.plugin }, `plugin refused: ${r.reason}`);
    }
    // A gateway on NATS runs no plugins of its own; the manifests it was given only route.
    if (role !== "gateway") {
      for (const m of manifests) {
        const plugin = host.add(m);
        if (!role) unwatch.set(plugin, metrics.watch(plugin));
      }
      await host.startAll();
    }
    if (config.nats) {
      const { startNatsRoles } = await import("../nats/roles.js");
      const natives = role === "gateway" ? manifests : [];
      nats = await startNatsRoles(config.nats, { config, router, localRouter, host, metrics, log, natives });
    }
  }

  /**
   * Every request, an upgrade's included: target → router → the plugin's exchange → response. The
   * one place where a request is counted, measured and logged.
   */
  async function handle(req: IncomingMessage, res: ServerResponse, upgrade?: Upgrade): Promise<void> {
    const started = performance.now();
    const requestId = requestIdOf(req);
    let route: Route | undefined;
    let status = 0;
    let error: GatewayError | undefined;
    inFlight++;
    try {
      refuseMalformedHead(req, config.maxHeaderCount);
      const target = normalizeTarget(req.url ?? "");
      if (!target.ok) throw new GatewayError("bad_target", target.reason);
      refuseBadAuthority(target.authority);
      const hosts = hostCount(req);
      if (hosts > 1 || (hosts === 0 && req.httpVersion !== "1.0")) throw new GatewayError("bad_request", `${hosts} Host headers`);
      if (draining) throw new GatewayError("shutting_down", undefined, { retryAfter: 5 });
      const match = router.match(target.path);
      if (!match) throw new GatewayError("not_found", `no route for ${target.path}`);
      if (match.kind === "reserved") {
        // The daemon's own answers carry the request id too, like every plugin reply and error.
        res.setHeader("X-Request-Id", requestId);
        status = await handleAdmin(req, res, target.path, adminCtx);
        return;
      }
      route = match.route;
      const plugin = served().get(route.pluginId);
      if (!plugin) throw new GatewayError("plugin_unavailable", `plugin ${route.pluginId} not loaded`);
      if (plugin.inFlight >= config.maxInFlight) {
        throw new GatewayError("overloaded", `${config.maxInFlight} requests in flight`, { retryAfter: 1 });
      }
      if (upgrade?.websocket) refuseBadHandshake(req);
      metrics.exchangeStarted(route.pluginId);
      try {
        status = await exchangeWith(plugin, req, res, route, target, requestId, upgrade);
      } finally {
        metrics.exchangeEnded(route.pluginId);
      }
    } catch (err) {
      error = err instanceof GatewayError ? err : new GatewayError("bad_reply", (err as Error)?.message, { cause: err });
      status = writeError(req, res, error, requestId);
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const plugin = route?.pluginId ?? "";
      metrics.observe(plugin, route?.prefix ?? "", status, seconds);
      const line = {
        reqId: requestId,
        method: req.method,
        path: req.url,
        plugin: plugin || undefined,
        status,
        websocket: upgrade?.websocket,
        ms: Math.round(seconds * 1e4) / 10,
      };
      if (error !== undefined && status >= 500) log.warn({ ...line, err: error.message }, "request failed");
      else access(line);
      if (--inFlight === 0 && idle) idle();
    }
  }

  /** The request as the plugin sees it, and the exchange that carries it. */
  function exchangeWith(
    plugin: Upstream,
    req: IncomingMessage,
    res: ServerResponse,
    route: Route,
    target: Normal,
    requestId: string,
    upgrade: Upgrade | undefined,
  ): Promise<number> {
    // Whole bodies (v1) are held in memory: they get a default limit; streamed ones only the route's.
    const maxBodyBytes = route.maxBodyBytes ?? (plugin.streamsBodies ? Number.POSITIVE_INFINITY : config.maxBodyBytes);
    refuseDeclaredOver(req, maxBodyBytes);
    // An upgrade request's bytes after its head belong to the upgraded protocol, not to a body.
    const hasBody = !upgrade && requestHasBody(req);
    const head: RequestHead = {
      method: req.method ?? "GET",
      path: target.path,
      query: target.query,
      headers: forwardRequestHeaders(req, { requestId, prefix: route.prefix, trustProxy: config.trustProxy, authority: target.authority }),
    };
    if (upgrade?.websocket) head.upgrade = "websocket";
    const exchange = plugin.open(head, !hasBody);
    // Only now that the plugin took the exchange is the body wanted: a refusal comes before it.
    invite(req, res);
    const tunnel = upgrade?.websocket ? { socket: upgrade.socket, head: upgrade.head } : undefined;
    return forward(req, res, exchange, { route, requestId, maxBodyBytes, minUploadRate: config.minUploadRate, hasBody, upgrade: tunnel });
  }

  /**
   * An Upgrade request: answered like any other on a connection that then closes, unless the
   * plugin accepts a WebSocket with 101 (a v2 plugin can; the tunnel then takes the socket over).
   * CONNECT comes here too, to be refused like any other request portico can't serve.
   */
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (closing.has(socket)) return void socket.destroy();
    const res = new ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.on("finish", () => socket.end());
    // RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored.
    const websocket = req.httpVersion === "1.1" && (req.headers.upgrade ?? "").toLowerCase() === "websocket";
    void handle(req, res, { websocket, socket, head });
  };

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // Node still dispatches requests pipelined behind an answer that closes the connection. That
    // answer is the connection's last: what follows is neither served nor forwarded (RFC 9112 §9.6).
    if (closing.has(req.socket)) return;
    void handle(req, res);
  };

  async function listen(at = config.listen): Promise<{ server: Server; address: AddressInfo }> {
    const server = publicServer(config, handler, log);
    server.on("upgrade", onUpgrade);
    server.on("connect", onUpgrade);
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
    const grace = Date.now() + config.supervisor.shutdownGraceMs;
    // A host tells gateways to send nothing new; a gateway closes its WebSockets (1001) itself,
    // since the plugins behind it are not stopping.
    nats?.leave();
    if (inFlight > 0) {
      await Promise.race([
        new Promise<void>((resolve) => {
          idle = resolve;
        }),
        new Promise((resolve) => setTimeout(resolve, config.supervisor.shutdownGraceMs).unref()),
      ]);
    }
    await nats?.drained(grace);
    await host.stopAll();
    await nats?.close();
    for (const s of servers) s.closeAllConnections();
    await Promise.all(closed);
    servers.clear();
  }

  async function reload(trigger = "api"): Promise<ReloadSummary> {
    if (!reloader) {
      throw new Error(
        role ? "reload is not available with --nats (restart the host instead)" : "reload needs a plugins folder (pluginsDir)",
      );
    }
    return reloader.reload(trigger);
  }

  const killPlugins = (reason: string) => host.killAll(reason);

  return {
    handler,
    upgrade: onUpgrade,
    config,
    router,
    plugins: host.plugins,
    metrics,
    log,
    refused,
    start,
    listen,
    reload,
    killPlugins,
    close,
  };
}

/**
 * Host header lines in the request. RFC 9112 §3.2: an HTTP/1.1 request has exactly one (400
 * otherwise). Node lets two through, and two Hosts are two answers to "which site is this for" that
 * a plugin and whatever reads X-Forwarded-Host could each take differently.
 */
function hostCount(req: IncomingMessage): number {
  const raw = req.rawHeaders;
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if ((raw[i] as string).length === 4 && (raw[i] as string).toLowerCase() === "host") n++;
  return n;
}

export { DEFAULT_CONFIG };
