/**
 * The plugin host: from manifests to routed, supervised plugins. One bad plugin is refused with a
 * log line naming it and why; the rest are served.
 */
import type { Logger } from "../log.js";
import { discoverPlugins, formatProblem, type PluginManifest } from "../manifest/index.js";
import { type Route, RouteError, type Router } from "../router/index.js";
import { Plugin, type PluginLimits, type SupervisorOptions } from "./plugin.js";

export type { PluginLimits, SupervisorOptions } from "./plugin.js";
export { DEFAULT_LIMITS, DEFAULT_SUPERVISOR, PLUGIN_STATES, Plugin, type PluginState, type PluginStatus } from "./plugin.js";

export interface RouteDefaults {
  timeoutSeconds: number;
  idleTimeoutSeconds: number;
}

export interface Refusal {
  /** Plugin id when known, else the manifest file. */
  plugin: string;
  reason: string;
  /** True for a plugin that simply has no HTTP surface: not an error. */
  skipped?: boolean;
}

export function routeFor(m: PluginManifest, defaults: RouteDefaults): Route | undefined {
  if (!m.http) return undefined;
  return {
    pluginId: m.id,
    prefix: m.http.mountPrefix,
    timeoutMs: Math.round((m.http.timeoutSeconds ?? defaults.timeoutSeconds) * 1000),
    idleTimeoutMs: Math.round((m.http.idleTimeoutSeconds ?? defaults.idleTimeoutSeconds) * 1000),
    maxBodyBytes: m.http.maxBodyBytes,
  };
}

/**
 * Registers the routes of `manifests` (already sorted by id, so conflicts resolve the same way
 * every time) and returns the ones accepted. Used by `serve` and by `routes`.
 */
export function buildRoutes(
  manifests: readonly PluginManifest[],
  router: Router,
  defaults: RouteDefaults,
  /** A gateway on NATS: it serves nexo plugins that talk NATS themselves (no command), and spawns nothing. */
  natsGateway = false,
): { accepted: PluginManifest[]; refused: Refusal[] } {
  const accepted: PluginManifest[] = [];
  const refused: Refusal[] = [];
  for (const m of manifests) {
    const route = routeFor(m, defaults);
    if (!route) {
      refused.push({ plugin: m.id, reason: `${m.file} has no [plugin.http] section; nothing to serve`, skipped: true });
      continue;
    }
    if (natsGateway && m.entrypoint) {
      refused.push({
        plugin: m.id,
        reason: `${m.file}: a gateway runs no plugins; serve it from a host (--role host), or drop its command to reach it on NATS`,
      });
      continue;
    }
    if (!natsGateway && !m.entrypoint) {
      refused.push({ plugin: m.id, reason: `${m.file}: [plugin.entrypoint] command is empty; portico serves a plugin by spawning it` });
      continue;
    }
    try {
      router.register(route);
      accepted.push(m);
    } catch (err) {
      if (!(err instanceof RouteError)) throw err;
      refused.push({ plugin: m.id, reason: err.message });
    }
  }
  return { accepted, refused };
}

/** Loads DIR/*\/nexo-plugin.toml, routes what it can, and reports the rest. */
export async function loadPlugins(
  dir: string,
  router: Router,
  defaults: RouteDefaults,
  natsGateway = false,
): Promise<{ accepted: PluginManifest[]; refused: Refusal[] }> {
  const { manifests, problems } = await discoverPlugins(dir, { commandOptional: natsGateway });
  const { accepted, refused } = buildRoutes(manifests, router, defaults, natsGateway);
  for (const p of problems) refused.unshift({ plugin: p.file, reason: formatProblem(p) });
  return { accepted, refused };
}

export class PluginHost {
  /** The plugins requests go to, by id. */
  readonly plugins = new Map<string, Plugin>();
  /**
   * Plugins running but not served: started by a reload and not yet swapped in, or draining after
   * one (with the promise of their end). They are stopped with the rest when the daemon stops.
   */
  readonly #offstage = new Map<Plugin, Promise<void> | undefined>();
  readonly #opts: SupervisorOptions;
  readonly #limits: PluginLimits;
  readonly #log: Logger;
  #stopping = false;

  constructor(opts: SupervisorOptions, limits: PluginLimits, log: Logger) {
    this.#opts = opts;
    this.#limits = limits;
    this.#log = log;
  }

  add(manifest: PluginManifest): Plugin {
    const plugin = new Plugin(manifest, this.#opts, this.#limits, this.#log);
    this.plugins.set(manifest.id, plugin);
    return plugin;
  }

  get(id: string): Plugin | undefined {
    return this.plugins.get(id);
  }

  /** True once stopAll() was called: a reload under way starts nothing more. */
  get stopping(): boolean {
    return this.#stopping;
  }

  /** A plugin that is not served yet (a reload starts it, then swaps it in with `serve`). */
  prepare(manifest: PluginManifest): Plugin {
    const plugin = new Plugin(manifest, this.#opts, this.#limits, this.#log);
    this.#offstage.set(plugin, undefined);
    return plugin;
  }

  /** Serves a prepared plugin under its id; returns the plugin it replaces, if any (not stopped). */
  serve(plugin: Plugin): Plugin | undefined {
    this.#offstage.delete(plugin);
    const old = this.plugins.get(plugin.id);
    this.plugins.set(plugin.id, plugin);
    return old === plugin ? undefined : old;
  }

  /** Takes `id` out of service; returns its plugin (still running: retire it). */
  detach(id: string): Plugin | undefined {
    const plugin = this.plugins.get(id);
    this.plugins.delete(id);
    return plugin;
  }

  /**
   * Lets what is in flight on a plugin that is no longer served finish (up to the grace period),
   * then stops it (`shutdown`, then kill after the grace period). Resolves when it is stopped.
   */
  retire(plugin: Plugin): Promise<void> {
    const existing = this.#offstage.get(plugin);
    if (existing) return existing;
    const done = (async () => {
      const deadline = Date.now() + this.#opts.shutdownGraceMs;
      // Polled: requests reach a plugin only through `plugins`, so nothing new arrives; what is in
      // flight only goes down.
      while (plugin.inFlight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const left = plugin.inFlight;
      if (left > 0) this.#log.warn({ plugin: plugin.id, inFlight: left }, "drain: grace period over; stopping with requests in flight");
      await plugin.stop();
      this.#offstage.delete(plugin);
    })();
    this.#offstage.set(plugin, done);
    return done;
  }

  /** Starts every plugin concurrently; resolves when each first handshake is settled. */
  async startAll(): Promise<void> {
    await Promise.all([...this.plugins.values()].map((p) => p.start()));
  }

  /** `shutdown` to every plugin at once (served or not); stragglers are killed after the grace period. */
  async stopAll(): Promise<void> {
    this.#stopping = true;
    await Promise.all([
      ...[...this.plugins.values()].map((p) => p.stop()),
      ...[...this.#offstage].map(([p, retiring]) => retiring ?? p.stop()),
    ]);
  }

  /** SIGKILL to every plugin's process group, served or not: the daemon is exiting. */
  killAll(reason: string): void {
    for (const p of this.plugins.values()) p.kill(reason);
    for (const p of this.#offstage.keys()) p.kill(reason);
  }
}
