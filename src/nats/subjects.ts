/**
 * What portico's processes say to each other over NATS, and on which subjects (docs/nats.md).
 * Every subject starts with the configured prefix ("portico" by default), so several portico
 * deployments can share one NATS cluster.
 *
 *   P.hosts             hosts announce themselves and their plugins (every heartbeat, on change, on bye)
 *   P.gateways          gateways heartbeat (hosts drop the links of a gateway gone silent)
 *   P.discover          a new gateway asks every host to announce now
 *   P.h.HOST.GATEWAY    link bytes, gateway → host (reply subject: the other direction)
 *   P.g.GATEWAY.HOST    link bytes, host → gateway
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { PluginProtocol } from "../host/channel.js";
import type { PluginState } from "../host/plugin.js";

export class Subjects {
  readonly hosts: string;
  readonly gateways: string;
  readonly discover: string;
  readonly #prefix: string;

  constructor(prefix: string) {
    this.#prefix = prefix;
    this.hosts = `${prefix}.hosts`;
    this.gateways = `${prefix}.gateways`;
    this.discover = `${prefix}.discover`;
  }

  toHost(host: string, gateway: string): string {
    return `${this.#prefix}.h.${host}.${gateway}`;
  }

  toGateway(gateway: string, host: string): string {
    return `${this.#prefix}.g.${gateway}.${host}`;
  }

  /** Everything sent to this host, whichever gateway sent it. */
  hostInbox(host: string): string {
    return `${this.#prefix}.h.${host}.*`;
  }

  gatewayInbox(gateway: string): string {
    return `${this.#prefix}.g.${gateway}.*`;
  }

  /** Where "no responders" to a gateway's probe of a host comes back (src/nats/gateway.ts). */
  probeReply(gateway: string, host: string): string {
    return `${this.#prefix}.gp.${gateway}.${host}`;
  }

  probeInbox(gateway: string): string {
    return `${this.#prefix}.gp.${gateway}.*`;
  }
}

/** The last token of a link subject: who sent it. */
export function senderOf(subject: string): string {
  return subject.slice(subject.lastIndexOf(".") + 1);
}

/** A process's id on NATS: unique per run (a restarted host is a new host), safe in a subject token. */
export function newPeerId(): string {
  return `${hostname()
    .replace(/[^A-Za-z0-9_-]/g, "_")
    .slice(0, 32)}-${process.pid}-${randomBytes(4).toString("hex")}`;
}

/** One plugin as a host announces it: its route, and its state there. */
export interface PluginAnnouncement {
  id: string;
  prefix: string;
  timeoutMs: number;
  idleTimeoutMs: number;
  maxBodyBytes?: number;
  state: PluginState;
  protocol: PluginProtocol | null;
  streamsBodies: boolean;
  pid: number | null;
  restarts: number;
  inFlight: number;
  lastExit: string | null;
}

export interface HostAnnouncement {
  v: 1;
  host: string;
  /** The machine's name, for people. */
  name: string;
  pid: number;
  plugins: PluginAnnouncement[];
  /** The host is shutting down: route nothing new to it. */
  bye?: boolean;
}

export interface GatewayHeartbeat {
  v: 1;
  gateway: string;
  bye?: boolean;
}

const STATES = new Set<string>(["starting", "ready", "restarting", "failed", "stopping", "stopped"]);
const ID = /^[A-Za-z0-9_-]{1,128}$/;

/** A host's announcement, checked: a malformed one is ignored rather than trusted. */
export function parseAnnouncement(data: Uint8Array): HostAnnouncement | undefined {
  let a: HostAnnouncement;
  try {
    a = JSON.parse(Buffer.from(data).toString("utf8")) as HostAnnouncement;
  } catch {
    return undefined;
  }
  if (a?.v !== 1 || typeof a.host !== "string" || !ID.test(a.host) || !Array.isArray(a.plugins)) return undefined;
  const ok = (p: PluginAnnouncement) =>
    typeof p?.id === "string" &&
    typeof p.prefix === "string" &&
    p.prefix.startsWith("/") &&
    Number.isFinite(p.timeoutMs) &&
    Number.isFinite(p.idleTimeoutMs) &&
    STATES.has(p.state) &&
    typeof p.streamsBodies === "boolean";
  return { ...a, name: String(a.name ?? a.host), plugins: a.plugins.filter(ok) };
}

export function parseHeartbeat(data: Uint8Array): GatewayHeartbeat | undefined {
  try {
    const h = JSON.parse(Buffer.from(data).toString("utf8")) as GatewayHeartbeat;
    return h?.v === 1 && typeof h.gateway === "string" && ID.test(h.gateway) ? h : undefined;
  } catch {
    return undefined;
  }
}
