/** A plugin's `nexo-plugin.toml`, reduced to what portico uses. */
export interface PluginManifest {
  /** Absolute path of the manifest file. */
  file: string;
  /** The plugin's folder: the child's working directory. */
  dir: string;
  id: string;
  version: string;
  name: string;
  description: string;
  /** Present when `[plugin.entrypoint] command` is non-empty: the plugin is a subprocess. */
  entrypoint: PluginEntrypoint | undefined;
  /** Present when the manifest has `[plugin.http]`. */
  http: PluginHttp | undefined;
  /** Present when the manifest has `[capabilities.http_server]`: the plugin serves HTTP itself. */
  httpServer?: PluginHttpServer;
}

/**
 * `[capabilities.http_server]`: an app that runs its own HTTP server on a loopback port. portico
 * spawns it, waits for its health path, and proxies its prefix to it (docs/own-server.md).
 */
export interface PluginHttpServer {
  /** The port the app listens on (1–65535). */
  port: number;
  /** The loopback address it listens on, which portico connects to (default 127.0.0.1). */
  bind: string;
  /** GET here must answer 2xx before requests are routed to the app, and while it runs (default /healthz). */
  healthPath: string;
  /** The environment variable that carries the bearer token portico makes for each start; none if unset. */
  tokenEnv: string | undefined;
  /** Seconds between health checks while the app runs (default 5). */
  healthIntervalSeconds: number;
  /** A health check not answered 2xx within this many seconds has failed (default 2). */
  healthTimeoutSeconds: number;
  /** Consecutive failed checks after which the app is killed and restarted (default 3). */
  healthFailures: number;
  /** From spawn, how long the health path may take to first answer 2xx (default 30). */
  startupTimeoutSeconds: number;
}

export interface PluginEntrypoint {
  command: string;
  args: string[];
  env: Record<string, string>;
}

export interface PluginHttp {
  /** Normalized: starts with '/', no trailing '/', whole segments of unreserved characters. */
  mountPrefix: string;
  /** `timeout_seconds`: time to the response head; undefined means the daemon's default (30). */
  timeoutSeconds: number | undefined;
  /** `idle_timeout_seconds`: a stream with no data either way for this long is cut (protocol v2). */
  idleTimeoutSeconds: number | undefined;
  /** `max_body_bytes` (portico extension); undefined means the daemon's default. */
  maxBodyBytes: number | undefined;
}

/** One thing wrong with a manifest: where, what, and how to fix it. */
export interface ManifestProblem {
  file: string;
  /** Dotted TOML key, e.g. `plugin.http.mount_prefix`; `(file)` for the file as a whole. */
  key: string;
  message: string;
  fix: string;
}
