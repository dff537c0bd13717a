/**
 * `[capabilities.http_server]`: a plugin that is a web app with its own HTTP server on a loopback
 * port. nexo's four keys (port, bind, health_path, token_env) and portico's health settings.
 * Unknown keys are ignored, as everywhere else in a nexo manifest.
 */
import { isIP } from "node:net";
import type { PluginHttpServer } from "./types.js";
import { ENV_KEY_RE, field, isTable, mustBe, quote, type Report } from "./validate.js";

const KEY = "capabilities.http_server";

export const HTTP_SERVER_DEFAULTS = {
  bind: "127.0.0.1",
  healthPath: "/healthz",
  healthIntervalSeconds: 5,
  healthTimeoutSeconds: 2,
  healthFailures: 3,
  startupTimeoutSeconds: 30,
} as const;

/** Longest interval, timeout or startup allowance accepted, in seconds. */
const MAX_SECONDS = 3600;
const MAX_FAILURES = 100;
/** An origin-form path and query: visible ASCII, starting with '/'. */
const HEALTH_PATH = /^\/[\x21-\x7e]*$/;

/** `capabilities` is the whole top-level table; only its `http_server` is portico's business. */
export function checkHttpServer(capabilities: unknown, report: Report): PluginHttpServer | undefined {
  if (!isTable(capabilities)) return undefined;
  const raw = field(capabilities, "http_server");
  if (raw === undefined) return undefined;
  if (!isTable(raw)) {
    report(KEY, mustBe("a table", raw), "write it as a [capabilities.http_server] section with port = 8181");
    return undefined;
  }
  const port = checkPort(field(raw, "port"), report);
  const bind = checkBind(field(raw, "bind"), report);
  const healthPath = checkHealthPath(field(raw, "health_path"), report);
  const tokenEnv = checkTokenEnv(field(raw, "token_env"), report);
  const d = HTTP_SERVER_DEFAULTS;
  return {
    port: port ?? 0,
    bind,
    healthPath,
    tokenEnv,
    healthIntervalSeconds: seconds(raw, "health_interval_seconds", d.healthIntervalSeconds, report),
    healthTimeoutSeconds: seconds(raw, "health_timeout_seconds", d.healthTimeoutSeconds, report),
    healthFailures: failures(field(raw, "health_failures"), report),
    startupTimeoutSeconds: seconds(raw, "startup_timeout_seconds", d.startupTimeoutSeconds, report),
  };
}

function checkPort(raw: unknown, report: Report): number | undefined {
  const fix = "set port = 8181 (the port the app listens on, 1–65535)";
  if (raw === undefined)
    report(`${KEY}.port`, "is required", `add port = 8181 under [capabilities.http_server] (the port the app listens on)`);
  else if (typeof raw !== "bigint") report(`${KEY}.port`, mustBe("an integer", raw), fix);
  else if (raw < 1n || raw > 65535n) report(`${KEY}.port`, `must be between 1 and 65535, found ${raw}`, fix);
  else return Number(raw);
  return undefined;
}

/** Loopback only: the app is reached through portico, with portico's token, and from nowhere else. */
function checkBind(raw: unknown, report: Report): string {
  const fix = 'set bind = "127.0.0.1" (or "::1"), and have the app listen there';
  if (raw === undefined) return HTTP_SERVER_DEFAULTS.bind;
  if (typeof raw !== "string") {
    report(`${KEY}.bind`, mustBe("a string", raw), fix);
  } else if (!isLoopback(raw)) {
    report(`${KEY}.bind`, `${quote(raw)} is not a loopback address (portico proxies to the app over loopback only)`, fix);
  } else {
    return raw;
  }
  return HTTP_SERVER_DEFAULTS.bind;
}

export function isLoopback(host: string): boolean {
  if (host === "localhost" || host === "::1") return true;
  return isIP(host) === 4 && host.startsWith("127.");
}

function checkHealthPath(raw: unknown, report: Report): string {
  const fix = 'set health_path = "/healthz" (a path on the app that answers 2xx when it is well)';
  if (raw === undefined) return HTTP_SERVER_DEFAULTS.healthPath;
  if (typeof raw !== "string") report(`${KEY}.health_path`, mustBe("a string", raw), fix);
  else if (!HEALTH_PATH.test(raw)) report(`${KEY}.health_path`, `${quote(raw)} is not a path starting with '/' (visible ASCII only)`, fix);
  else return raw;
  return HTTP_SERVER_DEFAULTS.healthPath;
}

function checkTokenEnv(raw: unknown, report: Report): string | undefined {
  const fix = "set token_env = \"APP_TOKEN\" (letters, digits and '_', not starting with a digit), or remove it";
  if (raw === undefined) return undefined;
  if (typeof raw !== "string") report(`${KEY}.token_env`, mustBe("a string", raw), fix);
  else if (raw.startsWith("NEXO_")) report(`${KEY}.token_env`, "variables beginning NEXO_ are reserved for the host", fix);
  else if (!ENV_KEY_RE.test(raw)) report(`${KEY}.token_env`, `${quote(raw)} is not a valid environment variable name`, fix);
  else return raw;
  return undefined;
}

function seconds(raw: Record<string, unknown>, key: string, byDefault: number, report: Report): number {
  const t = field(raw, key);
  const n = typeof t === "bigint" ? Number(t) : t;
  if (n === undefined) return byDefault;
  const fix = `set ${key} = ${byDefault}, or remove it for the default`;
  if (typeof n !== "number") {
    report(`${KEY}.${key}`, mustBe("a number", t), fix);
    return byDefault;
  }
  // Written as a negated range so NaN fails too.
  if (!(n > 0 && n <= MAX_SECONDS)) {
    report(`${KEY}.${key}`, `must be greater than 0 and at most ${MAX_SECONDS} seconds, found ${String(t)}`, fix);
    return byDefault;
  }
  return n;
}

function failures(raw: unknown, report: Report): number {
  const byDefault = HTTP_SERVER_DEFAULTS.healthFailures;
  if (raw === undefined) return byDefault;
  if (typeof raw === "bigint" && raw >= 1n && raw <= BigInt(MAX_FAILURES)) return Number(raw);
  report(
    `${KEY}.health_failures`,
    typeof raw === "bigint" ? `must be between 1 and ${MAX_FAILURES}, found ${raw}` : mustBe("an integer", raw),
    `set health_failures = ${byDefault}, or remove it for the default`,
  );
  return byDefault;
}
