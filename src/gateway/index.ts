/**
 * The HTTP side: target → router → exchange → response. Also the library entry point: a Node
 * program mounts `portico.handler` in its own server and gets exactly what `portico serve` does.
 */
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { Duplex } from "node:stream";
import { handleAdmin, Metrics } from "../admin/index.js";
import { DEFAULT_CONFIG, type PorticoConfig, resolveConfig } from "../config.js";
import { errorResponse, GatewayError } from "../errors.js";
import { buildRoutes, loadPlugins, type Plugin, PluginHost, type Refusal } from "../host/index.js";
import { createLogger, type Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import type { HttpReply } from "../protocol/v1.js";
import { DEFAULT_RESERVED_PREFIXES, type Route, Router } from "../router/index.js";
import { normalizeTarget, type Target } from "../target/index.js";
import { readBody, refuseDeclaredOver } from "./body.js";
import { forwardRequestHeaders, requestIdOf, responseHead } from "./headers.js";
import { proxyV2, requestHasBody } from "./proxy-v2.js";
import { endWithResponse } from "./raw.js";
import { tunnelWebSocket } from "./websocket.js";

type Normal = Extract<Target, { ok: true }>;

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
  const defaults = { timeoutSeconds: config.timeoutSeconds, idleTimeoutSeconds: config.idleTimeoutSeconds };
  const adminCtx = { router, plugins: host.plugins, metrics, draining: () => draining };

  async function start(): Promise<void> {
    const manifests: PluginManifest[] = [];
    if (config.pluginsDir) {
      const loaded = await loadPlugins(config.pluginsDir, router, defaults);
      manifests.push(...loaded.accepted);
      refused.push(...loaded.refused);
    }
    if (extra) {
      const built = buildRoutes(
        [...extra].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)),
        router,
        defaults,
      );
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
      const plugin = host.get(route.pluginId);
      if (!plugin) throw new GatewayError("plugin_unavailable", `plugin ${route.pluginId} not loaded`);
      if (plugin.inFlight >= config.maxInFlight) {
        throw new GatewayError("overloaded", `${config.maxInFlight} requests in flight`, { retryAfter: 1 });
      }
      metrics.exchangeStarted(route.pluginId);
      try {
        const forward = plugin.protocol === 2 ? forwardV2 : forwardV1;
        status = await forward(req, res, plugin, route, target, requestId);
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
      const failed = error !== undefined && status >= 500;
      if (failed || log.isLevelEnabled("info")) {
        const line = {
          reqId: requestId,
          method: req.method,
          path: req.url,
          plugin: plugin || undefined,
          status,
          ms: Math.round(seconds * 1e4) / 10,
        };
        if (failed) log.warn({ ...line, err: error?.message }, "request failed");
        else log.info(line, "request");
      }
      if (--inFlight === 0 && idle) idle();
    }
  }

  /** nexo's exchange: the whole body in, one buffered reply out. */
  async function forwardV1(
    req: IncomingMessage,
    res: ServerResponse,
    plugin: Plugin,
    route: Route,
    target: Normal,
    requestId: string,
  ): Promise<number> {
    const limit = route.maxBodyBytes ?? config.maxBodyBytes;
    refuseDeclaredOver(req, limit);
    invite(req, res);
    const body = await readBody(req, limit);
    const reply = await plugin.exchange(
      {
        method: req.method ?? "GET",
        path: target.path,
        query: target.query,
        headers: forwardRequestHeaders(req, { requestId, prefix: route.prefix, trustProxy: config.trustProxy, bodyLength: body.length }),
        body_base64: body.length ? body.toString("base64") : "",
      },
      route.timeoutMs,
    );
    return writeReply(req, res, reply, requestId);
  }

  /** Protocol v2: bodies streamed both ways; a limit only if the manifest sets one. */
  async function forwardV2(
    req: IncomingMessage,
    res: ServerResponse,
    plugin: Plugin,
    route: Route,
    target: Normal,
    requestId: string,
  ): Promise<number> {
    const limit = route.maxBodyBytes ?? Number.POSITIVE_INFINITY;
    refuseDeclaredOver(req, limit);
    const hasBody = requestHasBody(req);
    invite(req, res);
    const head = {
      method: req.method ?? "GET",
      path: target.path,
      query: target.query,
      headers: forwardRequestHeaders(req, { requestId, prefix: route.prefix, trustProxy: config.trustProxy, bodyLength: 0 }),
    };
    return proxyV2(req, res, plugin.open(head, !hasBody), hasBody, { route, maxBodyBytes: limit, requestId });
  }

  /**
   * An Upgrade request. A WebSocket for a v2 plugin is tunneled; anything else is served as an
   * ordinary request (a server may ignore Upgrade), on a connection that then closes.
   */
  async function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const started = performance.now();
    const requestId = requestIdOf(req);
    const target = normalizeTarget(req.url ?? "");
    const match = target.ok && !draining ? router.match(target.path) : undefined;
    const plugin = match?.kind === "plugin" ? host.get(match.route.pluginId) : undefined;
    const isWebSocket = (req.headers.upgrade ?? "").toLowerCase() === "websocket";
    if (!target.ok || match?.kind !== "plugin" || !plugin || plugin.state !== "ready" || plugin.protocol !== 2 || !isWebSocket) {
      const res = new ServerResponse(req);
      res.assignSocket(socket as Socket);
      res.shouldKeepAlive = false;
      res.on("finish", () => socket.end());
      void handle(req, res);
      return;
    }
    const route = match.route;
    let status = 0;
    let error: GatewayError | undefined;
    metrics.exchangeStarted(route.pluginId);
    try {
      const stream = plugin.open(
        {
          method: "GET",
          path: target.path,
          query: target.query,
          upgrade: "websocket",
          headers: forwardRequestHeaders(req, { requestId, prefix: route.prefix, trustProxy: config.trustProxy, bodyLength: 0 }),
        },
        true,
      );
      status = await tunnelWebSocket(req, socket, head, stream, { route, requestId });
    } catch (err) {
      error = err instanceof GatewayError ? err : new GatewayError("bad_reply", (err as Error)?.message, { cause: err });
      status = error.status;
      const { headers, body } = errorResponse(error);
      endWithResponse(socket, status, [...withoutLength(headers), ["X-Request-Id", requestId]], body);
    } finally {
      metrics.exchangeEnded(route.pluginId);
      const seconds = (performance.now() - started) / 1000;
      metrics.observe(route.pluginId, route.prefix, status, seconds);
      const line = {
        reqId: requestId,
        method: req.method,
        path: req.url,
        plugin: route.pluginId,
        status,
        websocket: true,
        ms: Math.round(seconds * 1e4) / 10,
      };
      if (error && status >= 500) log.warn({ ...line, err: error.message }, "upgrade failed");
      else log.info(line, "upgrade");
    }
  }

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => void upgrade(req, socket, head);

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    // Node still dispatches requests pipelined behind an answer that closes the connection. That
    // answer is the connection's last: what follows is neither served nor forwarded (RFC 9112 §9.6).
    if (closing.has(req.socket)) return;
    void handle(req, res);
  };

  async function listen(at = config.listen): Promise<{ server: Server; address: AddressInfo }> {
    // Host is checked by the handler (hostCount), so a request without one gets portico's 400.
    // requestTimeout 0: a streamed upload may take hours; stalls are cut by each route's idle timeout.
    const server = createServer({ keepAliveTimeout: 65_000, requireHostHeader: false, requestTimeout: 0 }, handler);
    server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => onClientError(err, socket, log));
    server.on("upgrade", onUpgrade);
    // Expect: 100-continue is answered by the handler once the body is known to be wanted (invite),
    // so a body over the limit gets its 413 before the client sends it.
    server.on("checkContinue", handler);
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

  return { handler, upgrade: onUpgrade, config, router, plugins: host.plugins, metrics, log, refused, start, listen, close };
}

/** endWithResponse sets Content-Length itself. */
const withoutLength = (headers: [string, string][]) => headers.filter(([k]) => k !== "Content-Length");

/** Tells a client waiting on `Expect: 100-continue` to send its body. */
function invite(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.expect?.toLowerCase() === "100-continue" && !res.headersSent) res.writeContinue();
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
    // HEAD: the plugin's Content-Length, else the length of the body it built (a GET's). 304: only
    // the plugin's own, since a 304 may not announce a length other than the 200's (RFC 9110 §8.6).
    const given = head.contentLength !== undefined && /^\d+$/.test(head.contentLength) ? head.contentLength : undefined;
    const length = given ?? (req.method === "HEAD" && body.length ? String(body.length) : undefined);
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
  // Close after a body we refused to read (not worth draining), and after a request we could not
  // make sense of (400): the bytes that follow it on the connection are not trusted either. A
  // request without a body is not `complete` yet while its handler runs synchronously (node marks
  // it right after the 'request' event), so `complete` alone would close every connection on a 404.
  if (err.code === "payload_too_large" || err.status === 400 || bodyPending(req)) {
    flat.push("Connection", "close");
    closing.add(req.socket);
  }
  res.writeHead(status, flat);
  res.end(req.method === "HEAD" ? undefined : body);
  return status;
}

/**
 * Requests node's parser refuses never reach the handler (a NUL, control or non-ASCII byte in the
 * target, a bad header, broken framing). Node's default answer is a bare "400" with no body and no
 * request id; answer like every other error instead, then close: the stream can't be trusted.
 */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger): void {
  // Bytes after a request that said `Connection: close`: ignored, not answered (RFC 9112 §9.6).
  // That request's own answer is still on its way, and node closes the connection after it.
  if (err.code === "HPE_CLOSED_CONNECTION") return;
  // The client hung up in the middle of its request: nobody to answer, nothing to report.
  if (err.code === "HPE_INVALID_EOF_STATE") return void socket.destroy();
  const current = (socket as { _httpMessage?: ServerResponse })._httpMessage;
  if (!socket.writable || current?.headersSent || err.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const code =
    err.code === "HPE_INVALID_URL"
      ? "bad_target"
      : err.code === "HPE_HEADER_OVERFLOW"
        ? "headers_too_large"
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? "request_timeout"
          : "bad_request";
  const { status, headers, body } = errorResponse(new GatewayError(code, err.message));
  const requestId = randomUUID();
  endWithResponse(socket, status, [...withoutLength(headers), ["X-Request-Id", requestId]], body);
  log.warn({ reqId: requestId, status, err: err.code ?? err.message }, "request refused by the HTTP parser");
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

/** Connections whose last answer is written or being written (it said Connection: close). */
const closing = new WeakSet<object>();

/** True while a declared request body may still be on the wire, unread. */
function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

export { DEFAULT_CONFIG };
