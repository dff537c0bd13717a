/**
 * Hot reload: rescans the plugins folder and brings what is served in line with it, without a
 * restart of the daemon and without failing a request that is not aimed at a removed route.
 *
 * - A new folder (a manifest whose plugin id is not served) is started and its route mounted.
 * - A removed folder: its route goes at once (new requests get 404 like any unknown prefix), what
 *   is in flight on it finishes (up to the grace period), then it gets `shutdown` and is stopped.
 * - A changed manifest (its bytes or its modification time): blue-green. A new process is started
 *   beside the old one; once it is ready, new requests go to it and the old one is drained and
 *   stopped. If the new one does not start, or its manifest can't be served (invalid, prefix
 *   reserved or taken), the old one keeps serving and the reason is logged.
 *
 * Routes change in two steps, each one synchronous (so atomic for the requests being matched):
 * removals first, at once; then, once the new processes settled, the whole table is replaced by a
 * planned copy, and the served plugins with it. Reloads run one at a time.
 */
import { stat } from "node:fs/promises";
import type { Logger } from "../log.js";
import { discoverPlugins, formatProblem, type ManifestProblem, type PluginManifest } from "../manifest/index.js";
import type { Router } from "../router/index.js";
import { buildRoutes, type PluginHost, type Refusal, type RouteDefaults } from "./index.js";
import type { Plugin } from "./plugin.js";

export interface ReloadSummary {
  /** What asked for it: "SIGHUP", "watch", or the caller's word. */
  trigger: string;
  added: string[];
  /** Swapped for a new process started from the changed manifest. */
  changed: string[];
  removed: string[];
  unchanged: string[];
  /** Changed on disk but not applied: the running plugin keeps serving (the log says why). */
  kept: string[];
  /** New manifests not served, and why. */
  refused: Refusal[];
}

export interface ReloaderOptions {
  dir: string;
  host: PluginHost;
  router: Router;
  defaults: RouteDefaults;
  log: Logger;
  /** A plugin starts being served (metrics follow it). */
  onServe?: (plugin: Plugin) => void;
  /** A plugin is no longer served (it is draining). */
  onRetire?: (plugin: Plugin) => void;
}

/** What a rescan found, compared with what is served. */
interface Diff {
  /** Ids, filled in at the switch with what was applied. */
  added: string[];
  changed: string[];
  removed: string[];
  unchanged: string[];
  kept: string[];
  refused: Refusal[];
  /** Changes not applied whose old prefix another change took: removed at the switch. */
  lost: string[];
  prints: Map<string, string>;
}

export class Reloader {
  readonly #o: ReloaderOptions;
  /** Plugin id → fingerprint of the manifest its running process was started from (this folder's plugins only). */
  readonly #owned = new Map<string, string>();
  #last: Promise<unknown> = Promise.resolve();
  #queued: Promise<ReloadSummary> | undefined;

  constructor(options: ReloaderOptions) {
    this.#o = options;
  }

  /** Records the plugins served from the folder at start-up, so a rescan knows what changed. */
  async adopt(manifests: readonly PluginManifest[]): Promise<void> {
    for (const m of manifests) this.#owned.set(m.id, await fingerprint(m));
  }

  /**
   * Rescans and applies. One reload runs at a time; asked while one runs, one more runs after it
   * (callers that ask meanwhile share that one).
   */
  reload(trigger: string): Promise<ReloadSummary> {
    if (this.#queued) return this.#queued;
    const next = this.#last.then(() => {
      this.#queued = undefined;
      return this.#run(trigger);
    });
    this.#queued = next;
    this.#last = next.catch(() => {});
    return next;
  }

  async #run(trigger: string): Promise<ReloadSummary> {
    const { host, router, log } = this.#o;
    const found = await discoverPlugins(this.#o.dir);
    const unreadable = found.problems.find((p) => p.key === "(dir)");
    if (unreadable) {
      log.error({ trigger }, `reload: ${formatProblem(unreadable)}; nothing changed`);
      const unchanged = [...this.#owned.keys()];
      return this.#summary(trigger, { added: [], changed: [], removed: [], unchanged, kept: [], refused: [], lost: [], prints: new Map() });
    }
    const diff = await this.#compare(found.manifests, found.problems);
    if (host.stopping) return this.#summary(trigger, diff);
    const plan = router.clone();
    const swaps = this.#planSwaps(plan, diff);
    const adds = this.#planAdds(plan, diff);

    // Removals take effect now, before anything new is started.
    for (const id of diff.removed) {
      const prefix = router.routeOf(id)?.prefix;
      router.unregister(id);
      this.#owned.delete(id);
      const plugin = host.detach(id);
      log.info({ plugin: id, prefix }, "plugin removed: route unmounted; draining, then stopping it");
      if (plugin) this.#retire(plugin);
    }

    const fresh = [...swaps, ...adds].map((m) => ({ manifest: m, plugin: host.prepare(m) }));
    await Promise.all(fresh.map((f) => f.plugin.start()));
    if (host.stopping) return this.#summary(trigger, diff); // the daemon is stopping: stopAll() takes the fresh ones too

    const failed = new Set<string>();
    for (const { manifest, plugin } of fresh.slice(0, swaps.length)) {
      if (plugin.state === "ready") continue;
      failed.add(manifest.id);
      log.error(
        { plugin: manifest.id, exit: plugin.status().lastExit },
        "reload: the new process did not start; the old one keeps serving",
      );
      void host.retire(plugin);
      this.#restore(plan, manifest.id, diff);
    }

    // The switch: one table for every route, and the served plugins with it, in one synchronous step.
    router.adopt(plan);
    for (const id of diff.lost) {
      const plugin = host.detach(id);
      this.#owned.delete(id);
      diff.removed.push(id);
      if (plugin) this.#retire(plugin);
    }
    for (const { manifest, plugin } of fresh) {
      if (failed.has(manifest.id)) continue;
      const old = host.serve(plugin);
      this.#owned.set(manifest.id, diff.prints.get(manifest.id) ?? "");
      this.#o.onServe?.(plugin);
      const route = router.routeOf(manifest.id);
      if (old) {
        const oldPid = old.status().pid; // before retiring it: a stopping plugin reports none
        this.#retire(old);
        diff.changed.push(manifest.id);
        log.info(
          { plugin: manifest.id, prefix: route?.prefix, pid: plugin.status().pid, oldPid },
          "plugin changed: the new process serves; draining the old one, then stopping it",
        );
      } else {
        diff.added.push(manifest.id);
        log.info({ plugin: manifest.id, prefix: route?.prefix, state: plugin.state }, `plugin added: mounted ${route?.prefix}`);
      }
    }
    return this.#summary(trigger, diff);
  }

  /** Sorts the folder's manifests against what is served. `added` and `changed` are left to fill. */
  async #compare(manifests: PluginManifest[], problems: ManifestProblem[]): Promise<Diff & { candidates: PluginManifest[] }> {
    const { host, log } = this.#o;
    const diff: Diff & { candidates: PluginManifest[] } = {
      added: [],
      changed: [],
      removed: [],
      unchanged: [],
      kept: [],
      refused: [],
      lost: [],
      prints: new Map(),
      candidates: [],
    };
    const byId = new Map(manifests.map((m) => [m.id, m]));
    const ownedFiles = new Set<string>();
    for (const [id, print] of this.#owned) {
      const current = host.get(id);
      if (current) ownedFiles.add(current.manifest.file);
      const m = byId.get(id);
      if (m) {
        const now = await fingerprint(m);
        diff.prints.set(id, now);
        if (now === print) diff.unchanged.push(id);
        continue;
      }
      const bad = current ? problems.filter((p) => p.file === current.manifest.file) : [];
      if (bad.length === 0) {
        diff.removed.push(id);
        continue;
      }
      diff.kept.push(id);
      log.error(
        { plugin: id, problems: bad.map(formatProblem) },
        `reload: ${formatProblem(bad[0] as ManifestProblem)}; the running plugin keeps serving`,
      );
    }
    for (const m of manifests) {
      if (this.#owned.has(m.id)) {
        if (!diff.unchanged.includes(m.id)) diff.candidates.push(m);
        continue;
      }
      const holder = host.get(m.id);
      if (holder) {
        diff.refused.push({ plugin: m.id, reason: `${m.file}: plugin id "${m.id}" is already served, from ${holder.manifest.file}` });
        continue;
      }
      diff.prints.set(m.id, await fingerprint(m));
      diff.candidates.push(m);
    }
    // A manifest with problems that no running plugin came from: a new folder that can't be served.
    for (const p of problems) if (!ownedFiles.has(p.file)) diff.refused.push({ plugin: p.file, reason: formatProblem(p) });
    return diff;
  }

  /** Changed manifests whose new route fits in `plan` (their old routes are taken out of it first). */
  #planSwaps(plan: Router, diff: Diff & { candidates: PluginManifest[] }): PluginManifest[] {
    const changed = diff.candidates.filter((m) => this.#owned.has(m.id));
    for (const id of diff.removed) plan.unregister(id);
    // Out first, all of them: two plugins may trade prefixes.
    for (const m of changed) plan.unregister(m.id);
    const swaps: PluginManifest[] = [];
    for (const m of changed) {
      const { accepted, refused } = buildRoutes([m], plan, this.#o.defaults);
      if (accepted.length) {
        swaps.push(m);
        continue;
      }
      this.#o.log.error({ plugin: m.id }, `reload: ${refused[0]?.reason ?? "cannot be served"}; the running plugin keeps serving`);
      this.#restore(plan, m.id, diff);
    }
    return swaps;
  }

  /** New manifests whose route fits in `plan`; the others are refused. */
  #planAdds(plan: Router, diff: Diff & { candidates: PluginManifest[] }): PluginManifest[] {
    const adds: PluginManifest[] = [];
    for (const m of diff.candidates) {
      if (this.#owned.has(m.id)) continue;
      const { accepted, refused } = buildRoutes([m], plan, this.#o.defaults);
      if (accepted.length) adds.push(m);
      diff.refused.push(...refused);
    }
    return adds;
  }

  /**
   * A change that is not applied: the plugin keeps its current route in `plan`. When another
   * change of this same reload took that prefix meanwhile, it can't keep it: it is removed.
   */
  #restore(plan: Router, id: string, diff: Diff): void {
    const route = this.#o.router.routeOf(id);
    plan.unregister(id);
    if (route) {
      try {
        plan.register(route);
        if (!diff.kept.includes(id)) diff.kept.push(id);
        return;
      } catch (err) {
        this.#o.log.error(
          { plugin: id, err: (err as Error).message },
          "reload: the running plugin lost its prefix to another change; removing it",
        );
      }
    }
    // Its route is not in the plan: it goes at the switch, and the plugin with it.
    diff.lost.push(id);
  }

  #retire(plugin: Plugin): void {
    this.#o.onRetire?.(plugin);
    void this.#o.host.retire(plugin);
  }

  #summary(trigger: string, diff: Diff): ReloadSummary {
    const summary: ReloadSummary = {
      trigger,
      added: diff.added,
      changed: diff.changed,
      removed: diff.removed,
      unchanged: diff.unchanged,
      kept: diff.kept,
      refused: diff.refused,
    };
    for (const r of diff.refused) {
      if (r.skipped) this.#o.log.info({ plugin: r.plugin }, r.reason);
      else this.#o.log.error({ plugin: r.plugin }, `plugin refused: ${r.reason}`);
    }
    const counts = `${summary.added.length} added, ${summary.changed.length} changed, ${summary.removed.length} removed, ${summary.unchanged.length} unchanged`;
    const extra = [summary.kept.length ? `${summary.kept.length} kept as they were` : "", refusedCount(diff.refused)].filter(Boolean);
    this.#o.log.info(
      { ...summary, refused: diff.refused.map((r) => r.plugin) },
      `reload (${trigger}): ${counts}${extra.length ? `, ${extra.join(", ")}` : ""}`,
    );
    return summary;
  }
}

function refusedCount(refused: Refusal[]): string {
  const n = refused.filter((r) => !r.skipped).length;
  return n ? `${n} refused` : "";
}

/** Changes when the manifest's bytes or modification time change (`touch` it to swap in a fresh process). */
async function fingerprint(m: PluginManifest): Promise<string> {
  // A bigint (a TOML integer a manifest section may keep as one) would make JSON.stringify throw.
  const text = JSON.stringify(m, (_key, value) => (typeof value === "bigint" ? String(value) : value));
  try {
    const s = await stat(m.file);
    return `${s.mtimeMs}:${s.size}:${text}`;
  } catch {
    return `gone:${text}`;
  }
}
