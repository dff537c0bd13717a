/** What the status page and `portico ctl status` show: every plugin, its state and its traffic. */
import type { PluginState, PluginStatus } from "../host/plugin.js";
import type { Router } from "../router/index.js";
import type { LiveStats, TrafficFigures } from "./live-stats.js";

/** A plugin as the admin API sees it (a local child, or a plugin NATS hosts run). */
export interface ServedPlugin {
  readonly id: string;
  status(): PluginStatus & { replicas?: object[] };
}

export interface PluginView {
  id: string;
  state: PluginState;
  prefix: string | null;
  /** 1 (nexo's), 2 (portico's streaming protocol), "http" (an app serving HTTP itself); null while none is in force. */
  protocol: PluginStatus["protocol"];
  pid: number | null;
  /** On a NATS gateway: the hosts running it (machine name, host id, state, pid). */
  replicas: object[] | null;
  /** Seconds since it became ready; null unless ready. */
  uptimeSeconds: number | null;
  restarts: number;
  inFlight: number;
  lastExit: string | null;
  nextAttemptAt: string | null;
  /** Whether this process runs it (and so can restart or stop it). */
  local: boolean;
  traffic: TrafficFigures;
  /** Its last stderr lines, oldest first; null when it runs elsewhere (NATS). */
  stderr: string[] | null;
}

export interface AdminStatus {
  portico: {
    status: "ok" | "degraded" | "draining";
    /** embedded, or the NATS role: gateway, host, both. */
    role: string;
    pid: number;
    uptimeSeconds: number;
    hosts: object[] | null;
    time: string;
  };
  plugins: PluginView[];
}

export interface StatusSources {
  router: Router;
  plugins: () => ReadonlyMap<string, ServedPlugin>;
  hosts: () => object[] | undefined;
  live: LiveStats;
  draining: () => boolean;
  isLocal: (id: string) => boolean;
  /** A local plugin's last stderr lines; undefined for one that runs elsewhere. */
  stderrOf: (id: string) => string[] | undefined;
  role: string;
}

export function adminStatus(src: StatusSources): AdminStatus {
  const now = Date.now();
  const plugins = [...src.plugins().values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((p) => viewOf(p, src, now));
  const ready = plugins.every((p) => p.state === "ready");
  return {
    portico: {
      status: src.draining() ? "draining" : ready ? "ok" : "degraded",
      role: src.role,
      pid: process.pid,
      uptimeSeconds: Math.round(process.uptime()),
      hosts: src.hosts() ?? null,
      time: new Date(now).toISOString(),
    },
    plugins,
  };
}

function viewOf(p: ServedPlugin, src: StatusSources, now: number): PluginView {
  const s = p.status();
  const since = src.live.get(p.id)?.since;
  return {
    id: p.id,
    state: s.state,
    prefix: src.router.routeOf(p.id)?.prefix ?? null,
    protocol: s.protocol,
    pid: s.pid,
    replicas: s.replicas ?? null,
    uptimeSeconds: s.state === "ready" && since !== undefined ? Math.round((now - since) / 1000) : null,
    restarts: s.restarts,
    inFlight: s.inFlight,
    lastExit: s.lastExit,
    nextAttemptAt: s.nextAttemptAt,
    local: src.isLocal(p.id),
    traffic: src.live.figures(p.id),
    stderr: src.stderrOf(p.id) ?? null,
  };
}
