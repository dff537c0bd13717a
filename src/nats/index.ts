/**
 * portico across processes and machines, on NATS (docs/nats.md): the settings, the connection,
 * and the two roles a process can take, gateway (the public HTTP surface, no plugins) and host
 * (plugins as stdio children, no public port), or both.
 */
import { readFileSync } from "node:fs";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { type NatsConfig, NatsConnectError } from "./config.js";

export { DEFAULT_NATS, NATS_ROLES, type NatsConfig, NatsConnectError, type NatsRole } from "./config.js";

export { NatsGateway } from "./gateway.js";
export { type HostedPlugin, NatsHost } from "./host.js";
export { RemotePlugin } from "./remote-plugin.js";

/**
 * Connects, retrying for ever while the server is away (a gateway keeps its routes and answers
 * 503 meanwhile). Resolves once connected the first time; the first attempt failing is an error.
 */
export async function connectNats(cfg: NatsConfig, name: string): Promise<NatsConnection> {
  // Loaded only by a process that uses NATS: the embedded default never pays for the client.
  const { connect, credsAuthenticator, nkeyAuthenticator } = await import("@nats-io/transport-node");
  const tls =
    cfg.tlsCaFile || cfg.tlsCertFile || cfg.tlsKeyFile
      ? { caFile: cfg.tlsCaFile, certFile: cfg.tlsCertFile, keyFile: cfg.tlsKeyFile }
      : undefined;
  const authenticator = cfg.credsFile
    ? credsAuthenticator(readFileSync(cfg.credsFile))
    : cfg.nkeySeedFile
      ? nkeyAuthenticator(new TextEncoder().encode(readFileSync(cfg.nkeySeedFile, "utf8").trim()))
      : undefined;
  const servers = cfg.url
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  try {
    return await connect({
      servers: cfg.url
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      name,
      user: cfg.user,
      pass: cfg.pass,
      token: cfg.token,
      authenticator,
      tls,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      // A dead server is noticed within a few seconds rather than the default two minutes.
      pingInterval: 2000,
      maxPingOut: 2,
    });
  } catch (err) {
    // Only the first connection must succeed: once connected, portico rides out NATS outages.
    throw new NatsConnectError(
      `cannot connect to NATS at ${servers.join(", ")}: ${(err as Error).message}. Is nats-server running there, and are the credentials right?`,
    );
  }
}

/** Calls `down` when the connection drops and `up` when it is back, for as long as it lives. */
export function watchConnection(nc: NatsConnection, log: Logger, down: () => void, up: () => void): void {
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") {
        log.warn({ server: s.server }, "lost the connection to NATS; reconnecting");
        down();
      } else if (s.type === "reconnect") {
        log.info({ server: s.server }, "reconnected to NATS");
        up();
      }
    }
  })();
}
