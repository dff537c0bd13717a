/** Prometheus metrics, one registry per portico instance (tests run several in one process). */
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Prom from "prom-client";

// prom-client's index also loads its Pushgateway, and with it https, tls and zlib: about 9 MiB of
// memory that a daemon with a memory budget never uses. The classes come from their own modules.
const require = createRequire(import.meta.url);
const Counter = require("prom-client/lib/counter") as typeof Prom.Counter;
const Gauge = require("prom-client/lib/gauge") as typeof Prom.Gauge;
const Registry = require("prom-client/lib/registry") as typeof Prom.Registry;

import type { EventEmitter } from "node:events";
import { PLUGIN_STATES, type PluginEvents, type PluginState } from "../host/plugin.js";
import { LiveStats } from "./live-stats.js";
import { RequestMetrics } from "./request-metrics.js";

export class Metrics {
  readonly registry = new Registry();
  /** The status page's figures (rates, percentiles, history), beside Prometheus' cumulative ones. */
  readonly live = new LiveStats();
  /** Requests by status, their durations, and those in flight: counted by hand (request-metrics.ts). */
  // Registered first, as they always were: the exposition keeps its order.
  readonly #requests = new RequestMetrics(this.registry, [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30], {
    requests: "HTTP requests answered, by plugin, route prefix and status",
    duration: "Time from request to the end of the response, by plugin and route prefix",
    inFlight: "Requests being answered right now, by plugin",
  });
  readonly restarts = new Counter({
    name: "portico_plugin_restarts_total",
    help: "Times a plugin process was restarted after exiting",
    labelNames: ["plugin"] as const,
    registers: [this.registry],
  });
  readonly state = new Gauge({
    name: "portico_plugin_state",
    help: "1 for the state each plugin is in, 0 for the others",
    labelNames: ["plugin", "state"] as const,
    registers: [this.registry],
  });

  // The daemon's own footprint, read when scraped (prom-client's default metrics would cost about
  // 10 MiB of resident memory to load; these three are what an operator watches).
  readonly resident = new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory of the portico process",
    registers: [this.registry],
    collect() {
      this.set(process.memoryUsage.rss());
    },
  });
  readonly heap = new Gauge({
    name: "nodejs_heap_size_used_bytes",
    help: "V8 heap in use by the portico process",
    registers: [this.registry],
    collect() {
      this.set(process.memoryUsage().heapUsed);
    },
  });
  readonly fds = new Gauge({
    name: "process_open_fds",
    help: "Open file descriptors of the portico process (Linux)",
    registers: [this.registry],
    collect() {
      try {
        this.set(readdirSync("/proc/self/fd").length);
      } catch {
        // no /proc here
      }
    },
  });

  /**
   * Follows a plugin's state and restarts. The function returned stops following it and drops its
   * state series (a reload took it out of service: a new process under the same id may follow).
   */
  watch(plugin: EventEmitter<PluginEvents> & { readonly id: string; readonly state: PluginState }): () => void {
    const setState = () => {
      for (const s of PLUGIN_STATES) this.state.set({ plugin: plugin.id, state: s }, s === plugin.state ? 1 : 0);
    };
    const restarted = () => this.restarts.inc({ plugin: plugin.id });
    setState();
    this.restarts.inc({ plugin: plugin.id }, 0);
    // Appears at 0, and is never reset: after a swap, requests still draining on the old process count here.
    this.#requests.watch(plugin.id);
    plugin.on("state", setState);
    plugin.on("restart", restarted);
    const unwatchLive = this.live.watch(plugin);
    return () => {
      plugin.off("state", setState);
      plugin.off("restart", restarted);
      unwatchLive();
      for (const s of PLUGIN_STATES) this.state.remove({ plugin: plugin.id, state: s });
    };
  }

  exchangeStarted(plugin: string): void {
    this.#requests.started(plugin);
  }

  exchangeEnded(plugin: string): void {
    this.#requests.ended(plugin);
  }

  /** One answered request: Prometheus' series and the status page's figures. */
  observe(plugin: string, route: string, status: number, seconds: number): void {
    this.#requests.observe(plugin, route, status, seconds);
    // The status page's figures are per plugin: portico's own answers (plugin "") have none.
    if (plugin) this.live.record(plugin, status, seconds);
  }
}
