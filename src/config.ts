/**
 * portico's settings: defaults, `portico.toml`, then command-line flags (flags win).
 * Problems name the file, the key and the fix, like manifest problems.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { LevelWithSilent } from "pino";
import { parse as parseToml } from "smol-toml";
import { type AdminConfig, DEFAULT_ADMIN, TOKEN_FIX, tokenProblem } from "./admin/config.js";
import { DEFAULT_LIMITS, DEFAULT_SUPERVISOR, type SupervisorOptions } from "./host/plugin.js";
import { LOG_LEVELS } from "./log.js";
import { type ManifestProblem, mountPrefixProblem, suggestMountPrefix } from "./manifest/index.js";
import { DEFAULT_NATS, NATS_ROLES, type NatsConfig, type NatsRole } from "./nats/config.js";

export interface Listen {
  host: string;
  port: number;
}

export interface PorticoConfig {
  listen: Listen;
  /** Folder holding one sub-folder per plugin, each with a nexo-plugin.toml. */
  pluginsDir: string | undefined;
  logLevel: LevelWithSilent;
  /** Added to the built-in reserved prefixes. */
  reservedPrefixes: string[];
  /** Keep the client's X-Forwarded-* (only behind a proxy you run). */
  trustProxy: boolean;
  /** Per-route default when the manifest sets no `timeout_seconds`. */
  timeoutSeconds: number;
  /** Per-route default when the manifest sets no `idle_timeout_seconds` (streams only). */
  idleTimeoutSeconds: number;
  /** Per-route default for buffered (v1) bodies when the manifest sets no `max_body_bytes`. */
  maxBodyBytes: number;
  /** Exchanges in flight per plugin before new requests get 503. */
  maxInFlight: number;
  /** The client must send its whole request head within this (then 408 and close). */
  headTimeoutSeconds: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutSeconds: number;
  /** Open client connections; more are answered 503 and closed. */
  maxConnections: number;
  /** Header lines in a request head (431 beyond). */
  maxHeaderCount: number;
  /** Bytes in a request head (431 beyond). */
  maxHeaderBytes: number;
  /** Slowest request body accepted, bytes per second over each 10 s (408 below); 0: no floor. */
  minUploadRate: number;
  /** Longest JSON-RPC line a plugin may write (nexo's v1, and the handshake); over it, it is restarted. */
  maxLineBytes: number;
  /** Bytes waiting to go to one plugin past which new requests to it get 503. */
  maxQueuedBytes: number;
  /** Log lines per plugin per second (stderr and stray stdout); the rest are counted, not kept. */
  maxLogLinesPerSecond: number;
  /** A plugin that takes none of its input for this long while some waits is killed and restarted. */
  inputStallMs: number;
  supervisor: SupervisorOptions;
  /** Set: this process is a gateway, a host or both, joined by NATS (docs/nats.md). Unset: embedded. */
  nats: NatsConfig | undefined;
  /** The status page and admin API at /admin (docs/admin.md). */
  admin: AdminConfig;
}

export const DEFAULT_CONFIG: PorticoConfig = {
  listen: { host: "127.0.0.1", port: 8080 },
  pluginsDir: undefined,
  logLevel: "info",
  reservedPrefixes: [],
  trustProxy: false,
  timeoutSeconds: 30,
  idleTimeoutSeconds: 300,
  maxBodyBytes: 16 * 1024 * 1024,
  maxInFlight: 1024,
  headTimeoutSeconds: 20,
  keepAliveTimeoutSeconds: 15,
  maxConnections: 10_000,
  maxHeaderCount: 100,
  maxHeaderBytes: 16 * 1024,
  minUploadRate: 1024,
  ...DEFAULT_LIMITS,
  supervisor: DEFAULT_SUPERVISOR,
  nats: undefined,
  admin: DEFAULT_ADMIN,
};

export class ConfigError extends Error {
  constructor(readonly problems: ManifestProblem[]) {
    super(problems.map((p) => `${p.file}: ${p.key}: ${p.message} — fix: ${p.fix}`).join("\n"));
    this.name = "ConfigError";
  }
}

/** "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT". */
export function parseListen(text: string): Listen | undefined {
  const t = text.trim();
  const m = /^(?:(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):)?(\d{1,5})$/.exec(t);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? (m[2] || "127.0.0.1"), port };
}

/** Reads `portico.toml`. Relative paths inside it are relative to the file. */
export async function loadConfigFile(file: string): Promise<Partial<PorticoConfig>> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new ConfigError([{ file: path, key: "(file)", message: (err as Error).message, fix: "pass an existing file to --config" }]);
  }
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    const e = err as { line?: number; column?: number; message: string };
    throw new ConfigError([
      {
        file: path,
        key: "(file)",
        message: e.message.split("\n")[0] ?? "TOML syntax error",
        fix: `correct the TOML syntax at line ${e.line ?? "?"}`,
      },
    ]);
  }
  return fromToml(doc, path);
}

function fromToml(doc: Record<string, unknown>, file: string): Partial<PorticoConfig> {
  const problems: ManifestProblem[] = [];
  const out: Partial<PorticoConfig> = {};
  const bad = (key: string, message: string, fix: string) => problems.push({ file, key, message, fix });
  // Every key this function knows, recorded as it is read: any other key in the file is a mistake.
  const read = new Set<string>(["listen", "plugins", "log_level", "trust_proxy", "reserved_prefixes"]);
  const table = (key: string): Record<string, unknown> => {
    read.add(key);
    const v = doc[key];
    if (v === undefined) return {};
    if (typeof v === "object" && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
    bad(key, "must be a table", `write it as [${key}]`);
    return {};
  };
  const num = (t: Record<string, unknown>, prefix: string, key: string, min: number, integer: boolean): number | undefined => {
    read.add(`${prefix}${key}`);
    const v = t[key];
    if (v === undefined) return undefined;
    const ok = typeof v === "number" && Number.isFinite(v) && v >= min && (!integer || Number.isInteger(v));
    if (!ok) {
      bad(`${prefix}${key}`, `must be ${integer ? "an integer" : "a number"} >= ${min}, found ${JSON.stringify(v)}`, `set ${key} = ${min}`);
      return undefined;
    }
    return v as number;
  };

  if (doc.listen !== undefined) {
    const l = typeof doc.listen === "string" ? parseListen(doc.listen) : undefined;
    if (l) out.listen = l;
    else bad("listen", `must be "HOST:PORT", found ${JSON.stringify(doc.listen)}`, 'set listen = "127.0.0.1:8080"');
  }
  if (doc.plugins !== undefined) {
    if (typeof doc.plugins === "string" && doc.plugins) out.pluginsDir = resolve(dirname(file), doc.plugins);
    else bad("plugins", "must be a folder path", 'set plugins = "./plugins"');
  }
  if (doc.log_level !== undefined) {
    if (LOG_LEVELS.includes(doc.log_level as LevelWithSilent)) out.logLevel = doc.log_level as LevelWithSilent;
    else bad("log_level", `unknown level ${JSON.stringify(doc.log_level)}`, `use one of ${LOG_LEVELS.join(", ")}`);
  }
  if (doc.trust_proxy !== undefined) {
    if (typeof doc.trust_proxy === "boolean") out.trustProxy = doc.trust_proxy;
    else bad("trust_proxy", "must be true or false", "set trust_proxy = false");
  }
  if (doc.reserved_prefixes !== undefined) {
    const v = doc.reserved_prefixes;
    if (Array.isArray(v) && v.every((p) => typeof p === "string")) {
      // Checked here, like a mount prefix: the router would otherwise throw at start-up, far from the key.
      const wrong = v.map((p) => [p, mountPrefixProblem(p)] as const).filter(([, problem]) => problem);
      for (const [p, problem] of wrong) {
        bad("reserved_prefixes", `${JSON.stringify(p)} ${problem}`, `write it as ${JSON.stringify(suggestMountPrefix(p, "internal"))}`);
      }
      if (!wrong.length) out.reservedPrefixes = v as string[];
    } else bad("reserved_prefixes", "must be an array of path prefixes", 'set reserved_prefixes = ["/internal"]');
  }
  const limits = table("limits");
  const timeout = num(limits, "limits.", "timeout_seconds", 0.001, false);
  if (timeout !== undefined) out.timeoutSeconds = timeout;
  const idle = num(limits, "limits.", "idle_timeout_seconds", 0.001, false);
  if (idle !== undefined) out.idleTimeoutSeconds = idle;
  const maxBody = num(limits, "limits.", "max_body_bytes", 0, true);
  if (maxBody !== undefined) out.maxBodyBytes = maxBody;
  const maxInFlight = num(limits, "limits.", "max_in_flight", 1, true);
  if (maxInFlight !== undefined) out.maxInFlight = maxInFlight;
  const limit = (key: string, field: keyof PorticoConfig, min: number, integer: boolean) => {
    const v = num(limits, "limits.", key, min, integer);
    if (v !== undefined) (out as Record<string, unknown>)[field] = v;
  };
  limit("head_timeout_seconds", "headTimeoutSeconds", 0.001, false);
  limit("keep_alive_timeout_seconds", "keepAliveTimeoutSeconds", 0.001, false);
  limit("max_connections", "maxConnections", 1, true);
  limit("max_header_count", "maxHeaderCount", 1, true);
  limit("max_header_bytes", "maxHeaderBytes", 1024, true);
  limit("min_upload_rate", "minUploadRate", 0, true);
  limit("max_line_bytes", "maxLineBytes", 1024, true);
  limit("max_queued_bytes", "maxQueuedBytes", 65536, true);
  limit("max_log_lines_per_second", "maxLogLinesPerSecond", 1, true);
  const stall = num(limits, "limits.", "input_stall_seconds", 0.1, false);
  if (stall !== undefined) out.inputStallMs = Math.round(stall * 1000);

  const sup = table("supervisor");
  const s: Partial<SupervisorOptions> = {};
  const pick = (key: string, field: keyof SupervisorOptions, min: number, scale = 1) => {
    const v = num(sup, "supervisor.", key, min, scale === 1);
    if (v !== undefined) s[field] = v * scale;
  };
  pick("init_timeout_ms", "initTimeoutMs", 1);
  pick("shutdown_grace_ms", "shutdownGraceMs", 0);
  pick("restart_delay_ms", "restartDelayMs", 0);
  pick("restart_max_delay_ms", "restartMaxDelayMs", 0);
  pick("max_crashes", "maxCrashes", 1);
  pick("crash_window_seconds", "crashWindowMs", 0.001, 1000);
  if (Object.keys(s).length) out.supervisor = { ...DEFAULT_SUPERVISOR, ...s };

  const nats = table("nats");
  if (Object.keys(nats).length) {
    const str = (key: string): string | undefined => {
      read.add(`nats.${key}`);
      const v = nats[key];
      if (v === undefined || (typeof v === "string" && v)) return v as string | undefined;
      bad(`nats.${key}`, `must be a non-empty string, found ${JSON.stringify(v)}`, `remove ${key} or give it a value`);
      return undefined;
    };
    const seconds = (key: string, min: number): number | undefined => {
      const v = num(nats, "nats.", key, min, false);
      return v === undefined ? undefined : Math.round(v * 1000);
    };
    const url = str("url");
    const role = str("role");
    if (role !== undefined && !NATS_ROLES.includes(role as NatsRole))
      bad("nats.role", `unknown role ${JSON.stringify(role)}`, `use one of ${NATS_ROLES.join(", ")}`);
    if (url === undefined) bad("nats.url", "is missing", 'set url = "nats://127.0.0.1:4222"');
    const prefix = str("subject_prefix");
    if (prefix !== undefined && !/^[A-Za-z0-9_-]+$/.test(prefix))
      bad("nats.subject_prefix", "must be one subject token (letters, digits, _ and -)", 'set subject_prefix = "portico"');
    const n: NatsConfig = {
      ...DEFAULT_NATS,
      url: url ?? "",
      role: (role as NatsRole | undefined) ?? "both",
      user: str("user"),
      pass: str("pass"),
      token: str("token"),
      nkeySeedFile: pathOf(str("nkey_seed_file"), file),
      credsFile: pathOf(str("creds_file"), file),
      tlsCaFile: pathOf(str("tls_ca_file"), file),
      tlsCertFile: pathOf(str("tls_cert_file"), file),
      tlsKeyFile: pathOf(str("tls_key_file"), file),
    };
    if (prefix !== undefined) n.subjectPrefix = prefix;
    const heartbeat = seconds("heartbeat_seconds", 0.05);
    if (heartbeat !== undefined) n.heartbeatMs = heartbeat;
    const timeout = seconds("peer_timeout_seconds", 0.1);
    if (timeout !== undefined) n.peerTimeoutMs = timeout;
    const linger = seconds("route_linger_seconds", 0);
    if (linger !== undefined) n.lingerMs = linger;
    out.nats = n;
  }

  const admin = table("admin");
  if (Object.keys(admin).length) out.admin = adminFromToml(admin, file, bad, read);

  // A misspelt key would otherwise be ignored without a word, and its setting silently not apply.
  // Known keys are those read above (whether present or not).
  for (const [prefix, t] of [
    ["", doc],
    ["limits.", limits],
    ["supervisor.", sup],
    ["nats.", nats],
    ["admin.", admin],
  ] as const) {
    const known = [...read].filter((k) => k.startsWith(prefix) && !k.slice(prefix.length).includes(".")).map((k) => k.slice(prefix.length));
    for (const key of Object.keys(t)) {
      if (!read.has(`${prefix}${key}`)) bad(`${prefix}${key}`, "is not a portico setting", `remove it, or use one of ${known.join(", ")}`);
    }
  }

  if (problems.length) throw new ConfigError(problems);
  return out;
}

/** `[admin]`: enabled, and a token given inline or in a file (not both). */
function adminFromToml(
  t: Record<string, unknown>,
  file: string,
  bad: (key: string, message: string, fix: string) => void,
  read: Set<string>,
): AdminConfig {
  for (const k of ["enabled", "token", "token_file"]) read.add(`admin.${k}`);
  const out: AdminConfig = { ...DEFAULT_ADMIN };
  if (t.enabled !== undefined) {
    if (typeof t.enabled === "boolean") out.enabled = t.enabled;
    else bad("admin.enabled", "must be true or false", "set enabled = true");
  }
  if (t.token !== undefined && t.token_file !== undefined) {
    bad("admin.token", "and token_file are both set", "keep one of them");
    return out;
  }
  let token: string | undefined;
  let key = "admin.token";
  if (t.token !== undefined) {
    if (typeof t.token === "string") token = t.token;
    else bad(key, "must be a string", TOKEN_FIX);
  } else if (t.token_file !== undefined) {
    key = "admin.token_file";
    if (typeof t.token_file !== "string" || !t.token_file) {
      bad(key, "must be a file path", 'set token_file = "/etc/portico/admin-token"');
      return out;
    }
    const path = resolve(dirname(file), t.token_file);
    try {
      token = readFileSync(path, "utf8").trim();
    } catch (err) {
      bad(key, `cannot read ${path}: ${(err as Error).message}`, "point it at a readable file holding the token");
      return out;
    }
  }
  if (token !== undefined) {
    const problem = tokenProblem(token);
    if (problem) bad(key, `the token ${problem}`, TOKEN_FIX);
    else out.token = token;
  }
  return out;
}

/** A path in the settings file, relative to the file. */
function pathOf(value: string | undefined, file: string): string | undefined {
  return value === undefined ? undefined : resolve(dirname(file), value);
}

export function resolveConfig(...layers: Partial<PorticoConfig>[]): PorticoConfig {
  const merged: PorticoConfig = { ...DEFAULT_CONFIG, supervisor: { ...DEFAULT_CONFIG.supervisor } };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      if (k === "supervisor") merged.supervisor = { ...merged.supervisor, ...(v as Partial<SupervisorOptions>) };
      else (merged as unknown as Record<string, unknown>)[k] = v;
    }
  }
  return merged;
}
