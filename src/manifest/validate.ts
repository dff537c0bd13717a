import path from "node:path";
import { TomlDate } from "smol-toml";
import { checkHttpServer } from "./http-server.js";
import { mountPrefixProblem, suggestMountPrefix } from "./mount-prefix.js";
import type { ManifestProblem, PluginEntrypoint, PluginHttp, PluginManifest } from "./types.js";

export type Table = Record<string, unknown>;
export type Report = (key: string, message: string, fix: string) => void;

const ID_RE = /^[a-z][a-z0-9_-]{0,63}$/;
const ID_RULE = "lowercase letter, then lowercase letters, digits, '_' or '-', at most 64 chars";
// semver.org's reference pattern: no leading zeros in numeric parts.
const SEMVER_RE =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$/;
export const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_TIMEOUT_SECONDS = 30;
const DEFAULT_IDLE_TIMEOUT_SECONDS = 300;
const MAX_TIMEOUT_SECONDS = 86_400;

/**
 * Validate a parsed document (parsed with `integersAsBigInt: true`, so a TOML integer is a bigint
 * and a TOML float is a number: the type names in messages are then exactly TOML's).
 * Every problem is collected so one `portico check` run shows them all.
 */
export function validateManifest(
  doc: Table,
  file: string,
  opts: { commandOptional?: boolean } = {},
): { manifest?: PluginManifest; problems: ManifestProblem[] } {
  const problems: ManifestProblem[] = [];
  const report: Report = (key, message, fix) => problems.push({ file, key, message, fix });

  const plugin = field(doc, "plugin");
  if (!isTable(plugin)) {
    if (plugin === undefined) {
      report("plugin", "the [plugin] table is missing", 'add a [plugin] table with id = "my_plugin" and version = "0.1.0"');
    } else {
      report("plugin", mustBe("a table", plugin), 'write it as a [plugin] section with id = "my_plugin" and version = "0.1.0"');
    }
    return { problems };
  }

  const id = checkId(field(plugin, "id"), report);
  const version = checkVersion(field(plugin, "version"), report);
  const name = optionalString(plugin, "name", 'name = "My plugin"', report);
  const description = optionalString(plugin, "description", 'description = "What it does"', report);
  optionalString(plugin, "min_nexo_version", 'min_nexo_version = ">=0.1.0"', report); // checked, then ignored

  const { entrypoint, hasCommand } = checkEntrypoint(field(plugin, "entrypoint"), report);
  const httpRaw = field(plugin, "http");
  const http = checkHttp(httpRaw, id, report);
  // Only when the command is absent or empty: a wrongly typed one has already been reported.
  if (httpRaw !== undefined && !hasCommand && !opts.commandOptional) {
    report(
      "plugin.entrypoint.command",
      "portico serves a plugin by spawning it; [plugin.http] needs an entrypoint command",
      'add [plugin.entrypoint] with command = "python3" and args = ["plugin.py"] (the program that runs the plugin)',
    );
  }

  // Top level, where the issue puts it; `[plugin.http_server]` is nexo's own and stays ignored.
  const httpServer = checkHttpServer(field(doc, "capabilities"), report);

  if (problems.length > 0 || id === undefined || version === undefined) return { problems };
  return {
    manifest: {
      file,
      dir: path.dirname(file),
      id,
      version,
      name: name ?? id,
      description: description ?? "",
      entrypoint,
      http,
      ...(httpServer ? { httpServer } : {}),
    },
    problems,
  };
}

function checkId(raw: unknown, report: Report): string | undefined {
  if (raw === undefined) {
    report("plugin.id", "is required", `add id = "my_plugin" under [plugin] (${ID_RULE})`);
  } else if (typeof raw !== "string") {
    report("plugin.id", mustBe("a string", raw), `set id = "my_plugin" (${ID_RULE})`);
  } else if (!ID_RE.test(raw)) {
    report("plugin.id", `${quote(raw)} is not a valid plugin id`, `set id = ${quote(suggestId(raw))} (${ID_RULE})`);
  } else {
    return raw;
  }
  return undefined;
}

function checkVersion(raw: unknown, report: Report): string | undefined {
  const rule = 'semver MAJOR.MINOR.PATCH, optionally with -prerelease and +build, e.g. "1.2.3-beta.1"';
  if (raw === undefined) {
    report("plugin.version", "is required", `add version = "0.1.0" under [plugin] (${rule})`);
  } else if (typeof raw !== "string") {
    // `version = 1.0` is a common slip: suggest the quoted, completed form.
    const hint = typeof raw === "number" || typeof raw === "bigint" ? suggestVersion(String(raw)) : "0.1.0";
    report("plugin.version", mustBe("a string", raw), `set version = ${quote(hint)} (${rule})`);
  } else if (raw.trim() === "") {
    // nexo itself asks only for a non-empty string, so a plugin it runs must not be refused here
    // for a version like "0.1" or "dev"; semver is what the fix suggests.
    report("plugin.version", "must not be empty", `set version = "0.1.0" (${rule})`);
  } else {
    return raw;
  }
  return undefined;
}

function optionalString(t: Table, key: string, example: string, report: Report): string | undefined {
  const raw = field(t, key);
  if (raw === undefined || typeof raw === "string") return raw;
  report(`plugin.${key}`, mustBe("a string", raw), `write it as a quoted string, e.g. ${example}, or remove it`);
  return undefined;
}

function checkEntrypoint(raw: unknown, report: Report): { entrypoint: PluginEntrypoint | undefined; hasCommand: boolean } {
  if (raw === undefined) return { entrypoint: undefined, hasCommand: false };
  if (!isTable(raw)) {
    report("plugin.entrypoint", mustBe("a table", raw), 'write it as a [plugin.entrypoint] section with command = "..."');
    return { entrypoint: undefined, hasCommand: true };
  }

  const command = field(raw, "command");
  let hasCommand = true;
  if (command === undefined || command === "") {
    hasCommand = false;
  } else if (typeof command !== "string") {
    report("plugin.entrypoint.command", mustBe("a string", command), 'set command = "python3" (the program to run)');
  } else if (command.trim() === "") {
    report("plugin.entrypoint.command", "must not be only whitespace", 'set command = "python3" (the program to run), or remove it');
  } else {
    noNul(command, "plugin.entrypoint.command", report);
  }

  const args = checkArgs(field(raw, "args"), report);
  const env = checkEnv(field(raw, "env"), report);
  const entrypoint = hasCommand && typeof command === "string" ? { command, args, env } : undefined;
  return { entrypoint, hasCommand };
}

function checkArgs(raw: unknown, report: Report): string[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    const hint = typeof raw === "string" ? `args = [${quote(raw)}]` : 'args = ["plugin.py"]';
    report("plugin.entrypoint.args", mustBe("an array of strings", raw), `write it as an array of strings, e.g. ${hint}`);
    return [];
  }
  raw.forEach((arg: unknown, i) => {
    const key = `plugin.entrypoint.args[${i}]`;
    if (typeof arg === "string") noNul(arg, key, report);
    else report(key, mustBe("a string", arg), `quote it: ${quote(scalarText(arg) ?? "value")}`);
  });
  return raw.filter((a): a is string => typeof a === "string");
}

function checkEnv(raw: unknown, report: Report): Record<string, string> {
  if (raw === undefined) return {};
  if (!isTable(raw)) {
    report("plugin.entrypoint.env", mustBe("a table of strings", raw), 'write it as a table, e.g. env = { LOG = "info" }');
    return {};
  }
  for (const [name, value] of Object.entries(raw)) {
    const key = `plugin.entrypoint.env.${keyPart(name)}`;
    if (name.startsWith("NEXO_")) {
      report(key, "variables beginning NEXO_ are reserved for the host", "remove it, or rename it without the NEXO_ prefix");
    } else if (!ENV_KEY_RE.test(name)) {
      report(
        key,
        `${quote(name)} is not a valid environment variable name`,
        `rename it to ${suggestEnvName(name)} (letters, digits and '_', not starting with a digit)`,
      );
    }
    if (typeof value === "string") noNul(value, key, report);
    else report(key, mustBe("a string", value), `quote the value, e.g. ${keyPart(name)} = ${quote(scalarText(value) ?? "value")}`);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays a plain entry.
  return Object.fromEntries(Object.entries(raw).filter((e): e is [string, string] => typeof e[1] === "string"));
}

function checkHttp(raw: unknown, id: string | undefined, report: Report): PluginHttp | undefined {
  if (raw === undefined) return undefined;
  const example = suggestMountPrefix("", id);
  if (!isTable(raw)) {
    report("plugin.http", mustBe("a table", raw), `write it as a [plugin.http] section with mount_prefix = ${quote(example)}`);
    return undefined;
  }

  let mountPrefix = "";
  const mp = field(raw, "mount_prefix");
  if (mp === undefined) {
    report("plugin.http.mount_prefix", "is required", `add mount_prefix = ${quote(example)} under [plugin.http]`);
  } else if (typeof mp !== "string") {
    report("plugin.http.mount_prefix", mustBe("a string", mp), `set mount_prefix = ${quote(example)}`);
  } else {
    // nexo accepts "/api/" and it means the same to a user as "/api": take it, without the slash.
    const candidate = mp.length > 1 && mp.endsWith("/") && !mp.endsWith("//") ? mp.slice(0, -1) : mp;
    const problem = mountPrefixProblem(candidate);
    if (problem === undefined) mountPrefix = candidate;
    else report("plugin.http.mount_prefix", `${quote(mp)} ${problem}`, `set mount_prefix = ${quote(suggestMountPrefix(mp, id))}`);
  }

  const timeoutSeconds = seconds(raw, "timeout_seconds", DEFAULT_TIMEOUT_SECONDS, report);
  const idleTimeoutSeconds = seconds(raw, "idle_timeout_seconds", DEFAULT_IDLE_TIMEOUT_SECONDS, report);

  let maxBodyBytes: number | undefined;
  const m = field(raw, "max_body_bytes");
  const mFix = "set max_body_bytes = 1048576 (a byte count), or remove it for the daemon's default";
  if (m === undefined) {
    // daemon default
  } else if (typeof m === "bigint") {
    if (m <= 0n) report("plugin.http.max_body_bytes", `must be a positive integer, found ${m}`, mFix);
    else if (m > BigInt(Number.MAX_SAFE_INTEGER)) report("plugin.http.max_body_bytes", `is too large (${m})`, mFix);
    else maxBodyBytes = Number(m);
  } else if (typeof m === "number" && Number.isFinite(m) && m >= 1) {
    // TOML floats (`1e6`, `1.5`) are refused: a byte count is whole, and TOML says so by its type.
    report("plugin.http.max_body_bytes", `must be an integer, found float ${m}`, `set max_body_bytes = ${Math.round(m)}`);
  } else {
    report("plugin.http.max_body_bytes", mustBe("a positive integer", m), mFix);
  }

  return { mountPrefix, timeoutSeconds, idleTimeoutSeconds, maxBodyBytes };
}

/** An optional duration in seconds under [plugin.http]: undefined means the daemon's default. */
function seconds(raw: Table, key: string, example: number, report: Report): number | undefined {
  const t = field(raw, key);
  const n = typeof t === "bigint" ? Number(t) : t;
  if (n === undefined) return undefined;
  if (typeof n !== "number") {
    report(`plugin.http.${key}`, mustBe("a number", t), `set ${key} = ${example}, or remove it for the default`);
    return undefined;
  }
  // Written as a negated range so NaN fails too.
  if (!(n > 0 && n <= MAX_TIMEOUT_SECONDS)) {
    report(
      `plugin.http.${key}`,
      `must be greater than 0 and at most ${MAX_TIMEOUT_SECONDS} (one day), found ${String(t)}`,
      `set ${key} = ${n > MAX_TIMEOUT_SECONDS ? MAX_TIMEOUT_SECONDS : example}`,
    );
    return undefined;
  }
  return n;
}

/** A NUL cannot cross exec(2); catching it here beats a spawn error at start-up. */
function noNul(s: string, key: string, report: Report): void {
  if (s.includes("\0")) report(key, "must not contain a NUL character (\\u0000)", "remove the \\u0000 escape from the string");
}

/** Own properties only: a lookup must not find inherited names such as `constructor`. */
export function field(t: Table, key: string): unknown {
  return Object.hasOwn(t, key) ? t[key] : undefined;
}

export function isTable(v: unknown): v is Table {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** TOML's own type names, so a message matches what the user wrote. */
function typeName(v: unknown): string {
  if (typeof v === "string") return "string";
  if (typeof v === "bigint") return "integer";
  if (typeof v === "number") return "float";
  if (typeof v === "boolean") return "boolean";
  if (Array.isArray(v)) return "array";
  if (v instanceof TomlDate) return v.isDate() ? "date" : v.isTime() ? "time" : "date-time";
  if (v instanceof Date) return "date-time";
  return "table";
}

export function mustBe(expected: string, actual: unknown): string {
  return `must be ${expected}, found ${typeName(actual)}`;
}

/** A TOML basic string: JSON's escapes are all valid TOML escapes. */
export function quote(s: string): string {
  return JSON.stringify(s);
}

/** A key as TOML would need it written inside a dotted key. */
function keyPart(k: string): string {
  return /^[A-Za-z0-9_-]+$/.test(k) ? k : quote(k);
}

function scalarText(v: unknown): string | undefined {
  return typeof v === "number" || typeof v === "bigint" || typeof v === "boolean" ? String(v) : undefined;
}

function suggestId(raw: string): string {
  const s = raw
    .toLowerCase()
    .replace(/[^a-z0-9_-]+/g, "_")
    .replace(/^[^a-z]+/, "")
    .slice(0, 64);
  return s === "" ? "my_plugin" : s;
}

function suggestVersion(raw: string): string {
  const s = raw.trim().replace(/^[v=]+/i, "");
  if (SEMVER_RE.test(s)) return s;
  const m = /^(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(s);
  if (m === null) return "0.1.0";
  return [m[1], m[2], m[3]].map((p) => String(Number(p ?? 0))).join(".");
}

function suggestEnvName(raw: string): string {
  const s = raw.replace(/[^A-Za-z0-9_]/g, "_").replace(/^NEXO_/, "");
  return s === "" ? "MY_VAR" : /^[0-9]/.test(s) ? `_${s}` : s;
}
