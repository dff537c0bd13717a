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
