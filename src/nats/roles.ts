/**
 * Starts the roles `[nats] role` asks for on one connection, and stops them in the order a clean
 * shutdown needs: hosts say bye first (gateways stop sending), in-flight exchanges finish, then
 * the links and the connection close.
 */
import type { NatsConnection } from "@nats-io/transport-node";
import type { Metrics } from "../admin/metrics.js";
import type { PorticoConfig } from "../config.js";
import { closeTunnels } from "../gateway/websocket.js";
import type { PluginHost } from "../host/index.js";
import type { Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import type { Router } from "../router/index.js";
import type { NatsConfig } from "./config.js";
import { NatsGateway } from "./gateway.js";
import { type HostedPlugin, NatsHost } from "./host.js";
import { connectNats, watchConnection } from "./index.js";
import { NexoNatsPlugin } from "./nexo-plugin.js";
import type { RemotePlugin } from "./remote-plugin.js";

export interface RolesContext {
  config: PorticoConfig;
  /** The gateway's router: routes learned from hosts go here. */
  router: Router;
  /** The host's own routes (its manifests, after the local conflict rules). */
  localRouter: Router;
  host: PluginHost;
  metrics: Metrics;
  log: Logger;
  /** A gateway's manifests of nexo plugins that talk NATS themselves (routes already in `router`). */
  natives: PluginManifest[];
}

export interface NatsRoles {
  /** What a gateway serves (undefined for a host alone). */
  readonly plugins: ReadonlyMap<string, RemotePlugin | NexoNatsPlugin> | undefined;
  hosts(): object[] | undefined;
  /** Shutdown begins: a host says bye, a gateway closes its WebSockets with 1001. */
  leave(): void;
  /** Resolves when no exchange runs on this host's links, or at `deadline`. */
  drained(deadline: number): Promise<void>;
  close(): Promise<void>;
}

export async function startNatsRoles(cfg: NatsConfig, ctx: RolesContext): Promise<NatsRoles> {
  const log = ctx.log.child({ role: cfg.role });
  const nc: NatsConnection = await connectNats(cfg, `portico ${cfg.role}`);
  log.info({ server: nc.getServer(), maxPayload: nc.info?.max_payload }, "connected to NATS");
  const common = { subjectPrefix: cfg.subjectPrefix, heartbeatMs: cfg.heartbeatMs, peerTimeoutMs: cfg.peerTimeoutMs, log };

  let host: NatsHost | undefined;
  if (cfg.role !== "gateway") {
    const hosted = new Map<string, HostedPlugin>();
    for (const plugin of ctx.host.plugins.values()) {
      const route = ctx.localRouter.routeOf(plugin.id);
      if (route) hosted.set(plugin.id, { plugin, route });
    }
    host = new NatsHost(nc, hosted, { ...common, maxInFlight: ctx.config.maxInFlight });
    host.start();
    log.info({ host: host.id, plugins: [...hosted.keys()] }, "serving plugins to gateways over NATS");
  }
  let gateway: NatsGateway | undefined;
  if (cfg.role !== "host") {
    gateway = new NatsGateway(nc, ctx.router, { ...common, lingerMs: cfg.lingerMs });
    gateway.on("plugin", (p) => ctx.metrics.watch(p));
    for (const m of ctx.natives) {
      const route = ctx.router.routeOf(m.id);
      if (route) gateway.addNative(new NexoNatsPlugin(m.id, route.timeoutMs, () => nc));
    }
    gateway.start();
  }
  watchConnection(
    nc,
    log,
    () => {
      gateway?.disconnected();
      host?.disconnected();
    },
    () => {
      gateway?.reconnected();
      host?.reconnected();
    },
  );

  return {
    plugins: gateway?.plugins,
    hosts: () => gateway?.hosts(),
    leave() {
      host?.leave();
      if (gateway) closeTunnels(1001, "going away");
    },
    async drained(deadline) {
      while (host && host.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    },
    async close() {
      gateway?.close();
      host?.close();
      await nc.drain().catch(() => nc.close());
    },
  };
}
