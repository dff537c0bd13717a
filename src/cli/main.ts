/**
 * portico serve | check | routes | new | ctl
 */
import { existsSync, statSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type { LevelWithSilent } from "pino";
import { ADMIN_TOKEN_ENV, DEFAULT_ADMIN, TOKEN_FIX, tokenProblem } from "../admin/config.js";
import { ConfigError, loadConfigFile, type PorticoConfig, parseListen, resolveConfig } from "../config.js";
import { createPortico, type Portico } from "../gateway/index.js";
import { buildRoutes, type Refusal } from "../host/index.js";
import { type PluginsWatcher, WATCH_DEBOUNCE_MS, watchPlugins } from "../host/watch.js";
import { createLogger, LOG_LEVELS } from "../log.js";
import {
  discoverPlugins,
  formatProblem,
  loadManifest,
  MANIFEST_FILE,
  type ManifestProblem,
  type PluginManifest,
} from "../manifest/index.js";
import { DEFAULT_NATS, NATS_ROLES, NatsConnectError, type NatsRole } from "../nats/config.js";
import { DEFAULT_RESERVED_PREFIXES, Router } from "../router/index.js";
import { ScaffoldError } from "../scaffold/index.js";
import { CtlError, ctl, urlOf } from "./ctl.js";
import { NEW_USAGE, newPlugin } from "./new.js";

const USAGE = `usage:
  portico serve  [--plugins DIR] [--listen HOST:PORT] [--config FILE] [--log-level LEVEL] [--watch]
                 [--nats URL --role gateway|host|both]
  portico check  PATH...           validate manifests (files, plugin folders or plugin directories)
  portico routes [--plugins DIR] [--config FILE]   print the routing table serve would build
${NEW_USAGE}
  portico ctl    status | restart ID | stop ID [--url URL] [--token TOKEN] [--config FILE] [--json]
                 ask the running daemon's admin API (docs/admin.md)

options:
  --plugins DIR       serve every DIR/*/${MANIFEST_FILE}
  --listen HOST:PORT  where to listen (default 127.0.0.1:8080)
  --config FILE       settings file (default ./portico.toml when present); flags override it
  --log-level LEVEL   ${LOG_LEVELS.join(", ")}
  --watch             reload when a plugin folder or manifest is added, changed or removed
                      (after ${WATCH_DEBOUNCE_MS} ms of quiet); SIGHUP reloads with or without it
  --nats URL          join other portico processes through NATS (docs/nats.md); URL may list
                      several servers, comma-separated
  --role ROLE         with --nats: gateway (HTTP only, no plugins), host (plugins only, no
                      public port) or both (default both)
  --url URL           ctl: the daemon (default http:// + listen from the settings)
  --token TOKEN       ctl: the admin token (default $${ADMIN_TOKEN_ENV}, then [admin] token)
  --json              ctl: print the API's JSON
`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === "--help" || command === "-h" || command === "help") {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  switch (command) {
    case "serve":
      return serve(rest);
    case "check":
      return check(rest);
    case "routes":
      return routes(rest);
    case "new":
      return newPlugin(rest, (message) => new UsageError(message));
    case "ctl":
      return control(rest);
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

function parse(args: string[], allowPositionals = false) {
  try {
    return parseArgs({
      args,
      allowPositionals,
      options: {
        plugins: { type: "string" },
        listen: { type: "string" },
        config: { type: "string" },
        "log-level": { type: "string" },
        nats: { type: "string" },
        role: { type: "string" },
        watch: { type: "boolean" },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

async function settings(values: ReturnType<typeof parse>["values"]): Promise<PorticoConfig> {
  const file = values.config ?? (existsSync("portico.toml") ? "portico.toml" : undefined);
  const fromFile = file ? await loadConfigFile(file) : {};
  const flags: Partial<PorticoConfig> = {};
  if (values.plugins) flags.pluginsDir = resolve(values.plugins);
  if (values.listen) {
    const l = parseListen(values.listen);
    if (!l) throw new UsageError(`--listen ${values.listen}: expected HOST:PORT, e.g. 127.0.0.1:8080`);
    flags.listen = l;
  }
  const level = values["log-level"];
  if (level) {
    if (!LOG_LEVELS.includes(level as LevelWithSilent)) throw new UsageError(`--log-level ${level}: use one of ${LOG_LEVELS.join(", ")}`);
    flags.logLevel = level as LevelWithSilent;
  }
  if (values.role && !values.nats && !fromFile.nats) throw new UsageError("--role needs --nats URL (or a [nats] section in portico.toml)");
  if (values.role && !NATS_ROLES.includes(values.role as NatsRole))
    throw new UsageError(`--role ${values.role}: use one of ${NATS_ROLES.join(", ")}`);
  if (values.nats || values.role) {
    const base = fromFile.nats ?? { ...DEFAULT_NATS, url: "", role: "both" as NatsRole };
    flags.nats = { ...base, url: values.nats ?? base.url, role: (values.role as NatsRole | undefined) ?? base.role };
  }
  // The environment's admin token wins over the file's (a secret kept out of files).
  const envToken = process.env[ADMIN_TOKEN_ENV];
  if (envToken) {
    const problem = tokenProblem(envToken);
    if (problem) throw new ConfigError([{ file: "(environment)", key: ADMIN_TOKEN_ENV, message: `the token ${problem}`, fix: TOKEN_FIX }]);
    flags.admin = { ...(fromFile.admin ?? DEFAULT_ADMIN), token: envToken };
  }
  return resolveConfig(fromFile, flags);
}

async function control(args: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseCtl>;
  try {
    parsed = parseCtl(args);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, id, ...extra] = positionals;
  if (command !== "status" && command !== "restart" && command !== "stop") {
    throw new UsageError(command ? `unknown ctl command "${command}"` : "ctl needs a command: status, restart ID or stop ID");
  }
  if (command !== "status" && !id) throw new UsageError(`ctl ${command} needs a plugin ID`);
  if (extra.length || (command === "status" && id))
    throw new UsageError(`ctl ${command}: unexpected ${[id, ...extra].filter(Boolean).join(" ")}`);
  const config = await settings({ config: values.config });
  try {
    return await ctl(
      { command, id, url: values.url ?? urlOf(config.listen), token: values.token ?? config.admin.token, json: values.json === true },
      (text) => process.stdout.write(text),
    );
  } catch (err) {
    if (!(err instanceof CtlError)) throw err;
    process.stderr.write(`portico: ${err.message}\n`);
    return 1;
  }
}

function parseCtl(args: string[]) {
  return parseArgs({
    args,
    allowPositionals: true,
    options: { url: { type: "string" }, token: { type: "string" }, config: { type: "string" }, json: { type: "boolean" } },
  });
}

async function serve(args: string[]): Promise<number> {
  const { values } = parse(args);
  const config = await settings(values);
  const role = config.nats?.role;
  // A gateway on NATS learns its routes from hosts: it needs no plugins folder.
  if (!config.pluginsDir && role !== "gateway") throw new UsageError('serve needs --plugins DIR (or plugins = "DIR" in portico.toml)');
  if (config.pluginsDir && (!existsSync(config.pluginsDir) || !statSync(config.pluginsDir).isDirectory())) {
    throw new UsageError(`plugins folder ${config.pluginsDir} does not exist; pass the folder that holds one sub-folder per plugin`);
  }
  if (values.watch && config.nats) throw new UsageError("--watch is not available with --nats: restart a host to change its plugins");
  const portico = createPortico(config);
  const log = portico.log;
  let stopping = false;
  let watcher: PluginsWatcher | undefined;
  const reloads = reloadOnSignal(portico, config.nats !== undefined);
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    watcher?.close();
    log.info({ signal }, "shutting down: draining requests, stopping plugins");
    portico.close().then(
      () => {
        log.info("stopped");
        log.flush?.();
        process.exit(0);
      },
      (err) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // Whatever happens to the daemon, its children go with it.
  process.on("exit", () => portico.killPlugins("daemon exited"));
  // A promise someone forgot to catch is a bug to log, not a reason to drop every client and plugin.
  process.on("unhandledRejection", (err) => log.error({ err }, "unhandled promise rejection (a bug: please report it)"));

  try {
    await portico.start();
  } catch (err) {
    // Plugins may be running already (a host that then can't reach NATS): their pipes would keep
    // this process alive, serving nothing. Stop them before reporting.
    await portico.close();
    throw err;
  }
  reloads.start();
  if (role === "host") {
    // A host opens no public port: gateways reach its plugins through NATS.
    log.info({ plugins: [...portico.plugins.keys()] }, "portico host running; no public port");
    if (!log.isLevelEnabled("info")) process.stderr.write("portico host running\n");
    return -1;
  }
  let address: AddressInfo;
  try {
    ({ address } = await portico.listen());
  } catch (err) {
    // The plugins are running by now and their pipes would keep this process alive, serving
    // nothing: stop them before reporting (EADDRINUSE, EACCES, …).
    await portico.close();
    throw err;
  }
  if (values.watch && config.pluginsDir) {
    const dir = config.pluginsDir;
    watcher = watchPlugins(dir, () => portico.reload("watch").catch((err) => log.error({ err }, "reload failed")), log);
  }
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  for (const r of portico.router.routes()) {
    const state = portico.plugins.get(r.pluginId)?.state;
    log.info({ prefix: r.prefix, plugin: r.pluginId, state, timeoutMs: r.timeoutMs }, `mounted ${r.prefix} → ${r.pluginId} (${state})`);
  }
  log.info({ url: `http://${host}:${address.port}` }, `portico listening on http://${host}:${address.port}`);
  // Where it listens is said whatever the log level.
  if (!log.isLevelEnabled("info")) process.stderr.write(`portico listening on http://${host}:${address.port}\n`);
  return -1; // keep running
}

/**
 * SIGHUP rescans the plugins folder (docs/hot-reload.md). Taken from the start, so that a SIGHUP
 * while plugins are starting doesn't end the daemon (its default); it is acted on once serving.
 */
function reloadOnSignal(portico: Portico, nats: boolean): { start(): void } {
  let started = false;
  let pending = false;
  const reload = () => {
    if (nats) {
      portico.log.warn({ signal: "SIGHUP" }, "SIGHUP: reload is not available with --nats; nothing changed");
      return;
    }
    portico.reload("SIGHUP").catch((err) => portico.log.error({ err }, "reload failed"));
  };
  process.on("SIGHUP", () => {
    if (started) reload();
    else pending = true;
  });
  return {
    start() {
      started = true;
      if (pending) reload();
    },
  };
}

/** Expands PATH arguments to manifest files: a file, a plugin folder, or a folder of plugin folders. */
async function manifestsOf(paths: string[]): Promise<{ manifests: PluginManifest[]; problems: ManifestProblem[] }> {
  const manifests: PluginManifest[] = [];
  const problems: ManifestProblem[] = [];
  for (const p of paths) {
    const abs = resolve(p);
    const isDir = existsSync(abs) && statSync(abs).isDirectory();
    if (isDir && !existsSync(join(abs, MANIFEST_FILE))) {
      const found = await discoverPlugins(abs);
      manifests.push(...found.manifests);
      problems.push(...found.problems);
      continue;
    }
    const r = await loadManifest(isDir ? join(abs, MANIFEST_FILE) : abs);
    if (r.manifest) manifests.push(r.manifest);
    problems.push(...r.problems);
  }
  manifests.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { manifests, problems };
}

async function check(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, true);
  if (positionals.length === 0) throw new UsageError("check needs at least one PATH");
  const config = await settings(values);
  const { manifests, problems } = await manifestsOf(positionals);
  const router = new Router([...DEFAULT_RESERVED_PREFIXES, ...config.reservedPrefixes]);
  const { refused } = buildRoutes(manifests, router, config);
  for (const p of problems) process.stdout.write(`${formatProblem(p)}\n`);
  const errors = refused.filter((r) => !r.skipped);
  for (const r of errors) process.stdout.write(`${r.plugin}: ${r.reason}\n`);
  const bad = problems.length + errors.length;
  const ok = manifests.length - errors.length;
  process.stdout.write(`${ok} ok, ${bad} problem${bad === 1 ? "" : "s"}\n`);
  return bad ? 1 : 0;
}

async function routes(args: string[]): Promise<number> {
  const config = await settings(parse(args).values);
  if (!config.pluginsDir) throw new UsageError("routes needs --plugins DIR");
  const { manifests, problems } = await discoverPlugins(config.pluginsDir);
  const router = new Router([...DEFAULT_RESERVED_PREFIXES, ...config.reservedPrefixes]);
  const { refused } = buildRoutes(manifests, router, config);
  // One table sorted by prefix, the daemon's own prefixes among the plugins', so finding who owns a
  // path is one look down the first column.
  type Row = [prefix: string, plugin: string, timeout: string, maxBody: string];
  const body: Row[] = [
    ...router.reservedPrefixes.map((p): Row => [p, "(portico)", "-", "-"]),
    ...router
      .routes()
      .map((r): Row => [r.prefix, r.pluginId, `${r.timeoutMs / 1000}s`, r.maxBodyBytes === undefined ? "default" : bytes(r.maxBodyBytes)]),
  ].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const header: Row = ["PREFIX", "PLUGIN", "TIMEOUT", "MAX BODY"];
  const rows = [header, ...body];
  const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]?.length ?? 0)));
  for (const r of rows)
    process.stdout.write(
      `${r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd()}\n`,
    );
  // A manifest problem is shown under its file's path once: the reason is the rest of check's line.
  const notServed: Refusal[] = [
    ...problems.map((p) => ({ plugin: p.file, reason: formatProblem(p).slice(p.file.length + 2) })),
    ...refused,
  ];
  if (notServed.length) {
    process.stdout.write("\nnot served:\n");
    for (const r of notServed) process.stdout.write(`  ${r.plugin}: ${r.reason}\n`);
  }
  return 0;
}

function bytes(n: number): string {
  if (n % (1024 * 1024) === 0) return `${n / 1024 / 1024} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} B`;
}

// `portico routes | head`: once the reader has gone, what is left to print has nobody to read it.
// That is not a failure of the command (which ends with its own status), so stdout's EPIPE, and the
// errors of writes after it, are dropped. serve's log does not go through process.stdout.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code !== "EPIPE" && err.code !== "ERR_STREAM_DESTROYED") throw err;
});

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err) => {
    if (err instanceof UsageError) {
      process.stderr.write(`portico: ${err.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (err instanceof ScaffoldError) {
      process.stderr.write(`portico new: ${err.message}\n`);
      process.exitCode = 2;
    } else if (err instanceof NatsConnectError) {
      process.stderr.write(`portico: ${err.message}\n`);
      process.exitCode = 1;
    } else if (err instanceof ConfigError) {
      process.stderr.write(`portico: bad configuration\n${err.message}\n`);
      process.exitCode = 2;
    } else {
      const log = createLogger({ level: "error" });
      log.fatal({ err }, (err as Error).message);
      process.exitCode = 1;
    }
  },
);
