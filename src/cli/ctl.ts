/**
 * `portico ctl status | restart ID | stop ID`: the running daemon's admin API over HTTP, the same
 * API and protection as the status page (docs/admin.md). Exit status 0 when the daemon did what was
 * asked, 1 when it could not be reached, refused, or the plugin did not end up as asked.
 */
import { ADMIN_TOKEN_ENV } from "../admin/config.js";
import type { AdminStatus, PluginView } from "../admin/status.js";
import type { Listen } from "../config.js";

export interface CtlOptions {
  command: string;
  id: string | undefined;
  /** The daemon's address: --url, else from the settings' `listen`. */
  url: string;
  token: string | undefined;
  json: boolean;
}

export class CtlError extends Error {}

/** http://HOST:PORT for a `listen` setting: an any-address listener is reached on loopback. */
export function urlOf(listen: Listen): string {
  const host = listen.host === "0.0.0.0" || listen.host === "" ? "127.0.0.1" : listen.host === "::" ? "::1" : listen.host;
  return `http://${host.includes(":") ? `[${host}]` : host}:${listen.port}`;
}

export async function ctl(o: CtlOptions, out: (text: string) => void): Promise<number> {
  if (o.command === "status") {
    const status = (await call(o, "GET", "/admin/api/status")) as AdminStatus;
    out(o.json ? `${JSON.stringify(status, null, 2)}\n` : statusTable(status));
    return 0;
  }
  if (!o.id) throw new CtlError(`ctl ${o.command} needs a plugin ID`);
  const { plugin } = (await call(o, "POST", `/admin/api/plugins/${encodeURIComponent(o.id)}/${o.command}`)) as { plugin: PluginView };
  if (o.json) out(`${JSON.stringify(plugin, null, 2)}\n`);
  const wanted = o.command === "restart" ? "ready" : "stopped";
  const pid = plugin.pid ? ` (pid ${plugin.pid})` : "";
  const exit = plugin.state !== wanted && plugin.lastExit ? `; last exit: ${plugin.lastExit}` : "";
  if (!o.json) out(`${plugin.id}: ${plugin.state}${pid}${exit}\n`);
  return plugin.state === wanted ? 0 : 1;
}

/** One request to the admin API; a CtlError that says what to do for every way it can fail. */
async function call(o: CtlOptions, method: string, path: string): Promise<unknown> {
  const url = `${o.url.replace(/\/+$/, "")}${path}`;
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      headers: o.token ? { Authorization: `Bearer ${o.token}` } : {},
      // A restart waits for a graceful stop and a handshake: give it the time those may take.
      signal: AbortSignal.timeout(method === "POST" ? 120_000 : 15_000),
    });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new CtlError(
      `cannot reach the admin API at ${o.url} (${cause?.code ?? cause?.message ?? (err as Error).message}): is portico serve running there? (--url, or listen in portico.toml)`,
    );
  }
  const text = await res.text();
  if (res.ok) return JSON.parse(text);
  const error = (() => {
    try {
      return (JSON.parse(text) as { error?: string }).error ?? text;
    } catch {
      return text;
    }
  })();
  throw new CtlError(await explain(o, res.status, error, method));
}

async function explain(o: CtlOptions, status: number, error: string, method: string): Promise<string> {
  const said = `${o.url} answered ${status} ${error}`;
  switch (status) {
    case 401:
      return o.token
        ? `${said}: the token was refused (--token, ${ADMIN_TOKEN_ENV}, or [admin] token in portico.toml)`
        : `${said}: this daemon wants its admin token (--token TOKEN, or ${ADMIN_TOKEN_ENV})`;
    case 403:
      return `${said}: without a token the admin API only answers loopback clients (run ctl on the daemon's machine against 127.0.0.1, or set [admin] token)`;
    case 404: {
      if (method === "POST") {
        // Which is missing, the plugin or the whole admin API? The status says.
        const names = await call(o, "GET", "/admin/api/status").then(
          (s) => (s as AdminStatus).plugins.map((p) => p.id),
          () => undefined,
        );
        if (names) return `${said}: no plugin "${o.id}" (plugins: ${names.join(", ") || "none"})`;
      }
      return `${said}: the admin API is not enabled there (set [admin] enabled = true in portico.toml)`;
    }
    case 409:
      return `${said}: "${o.id}" runs on a NATS host, and this gateway cannot restart or stop it (docs/admin.md)`;
    default:
      return said;
  }
}

function statusTable(s: AdminStatus): string {
  const header = ["PLUGIN", "STATE", "PREFIX", "PROTO", "PID", "UPTIME", "RESTARTS", "REQ/S", "ERRORS", "P50", "P99", "IN-FLIGHT"];
  const rows = s.plugins.map((p) => [
    p.id,
    p.state,
    p.prefix ?? "-",
    typeof p.protocol === "number" ? `v${p.protocol}` : (p.protocol ?? "-"),
    p.replicas?.length ? `${p.replicas.length} host${p.replicas.length === 1 ? "" : "s"}` : String(p.pid ?? "-"),
    p.uptimeSeconds === null ? "-" : duration(p.uptimeSeconds),
    String(p.restarts),
    String(p.traffic.rps),
    p.traffic.errorRate === null ? "-" : `${(p.traffic.errorRate * 100).toFixed(1)}%`,
    p.traffic.p50Ms === null ? "-" : `${p.traffic.p50Ms}ms`,
    p.traffic.p99Ms === null ? "-" : `${p.traffic.p99Ms}ms`,
    String(p.inFlight),
  ]);
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] as string).length)));
  const lines = all.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd(),
  );
  const p = s.portico;
  return `portico ${p.status} · ${p.role} · pid ${p.pid} · up ${duration(p.uptimeSeconds)}\n${lines.join("\n")}\n`;
}

function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
  return `${Math.floor(seconds / 3600)}h${Math.floor((seconds % 3600) / 60)}m`;
}
