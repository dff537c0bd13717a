/** The `[nats]` settings (docs/nats.md): kept apart from the client so reading them loads no NATS code. */

export type NatsRole = "gateway" | "host" | "both";
export const NATS_ROLES: readonly NatsRole[] = ["gateway", "host", "both"];

export interface NatsConfig {
  /** One server URL or several, comma-separated (nats://host:4222, tls://host:4222). */
  url: string;
  role: NatsRole;
  user?: string;
  pass?: string;
  token?: string;
  /** A file holding an nkey seed (SU...). */
  nkeySeedFile?: string;
  /** A .creds file (JWT and seed). */
  credsFile?: string;
  /** TLS: CA to verify the server, and a client certificate and key if the server asks for one. */
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
  /** First token of every subject portico uses: deployments sharing a cluster use different ones. */
  subjectPrefix: string;
  /** Hosts announce, gateways heartbeat, this often. */
  heartbeatMs: number;
  /** A peer silent this long is dropped. */
  peerTimeoutMs: number;
  /** A plugin whose last replica went away keeps its route (503) this long. */
  lingerMs: number;
}

export const DEFAULT_NATS: Omit<NatsConfig, "url" | "role"> = {
  subjectPrefix: "portico",
  heartbeatMs: 1000,
  peerTimeoutMs: 3000,
  lingerMs: 60_000,
};

/** The first connection to NATS failed: said plainly, without a stack. */
export class NatsConnectError extends Error {
  override name = "NatsConnectError";
}
