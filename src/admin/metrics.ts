/** Prometheus metrics, one registry per portico instance (tests run several in one process). */
import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import type * as Prom from "prom-client";

// prom-client's index also loads its Pushgateway, and with it https, tls and zlib: about 9 MiB of
// memory that a daemon with a memory budget never uses. The classes come from their own modules.
const require = createRequire(import.meta.url);
const Counter = require("prom-client/lib/counter") as typeof Prom.Counter;
const Gauge = require("prom-client/lib/gauge") as typeof Prom.Gauge;
const Histogram = require("prom-client/lib/histogram") as typeof Prom.Histogram;
const Registry = require("prom-client/lib/registry") as typeof Prom.Registry;

import type { EventEmitter } from "node:events";
import { PLUGIN_STATES, type PluginEvents, type PluginState } from "../host/plugin.js";
import { LiveStats } from "./live-stats.js";

export class Metrics {
  readonly registry = new Registry();
  /** The status page's figures (rates, percentiles, history), beside Prometheus' cumulative ones. */
  readonly live = new LiveStats();
  readonly requests = new Counter({
    name: "portico_requests_total",
    help: "HTTP requests answered, by plugin, route prefix and status",
    labelNames: ["plugin", "route", "status"] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: "portico_request_duration_seconds",
    help: "Time from request to the end of the response, by plugin and route prefix",
    labelNames: ["plugin", "route"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly inFlight = new Gauge({
    name: "portico_requests_in_flight",
    help: "Requests being answered right now, by plugin",
    labelNames: ["plugin"] as const,
    registers: [this.registry],
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
    // inc(0), not set(0): after a swap, requests still draining on the old process are counted here.
    this.inFlight.inc({ plugin: plugin.id }, 0);
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

  // Label look-ups hash the label set on every call; the children are cached per label set instead.
  readonly #counters = new Map<string, { inc(): void }>();
  readonly #histograms = new Map<string, { observe(v: number): void }>();

  readonly #inFlight = new Map<string, { inc(): void; dec(): void }>();

  exchangeStarted(plugin: string): void {
    let g = this.#inFlight.get(plugin);
    if (!g) {
      g = this.inFlight.labels(plugin);
      this.#inFlight.set(plugin, g);
    }
    g.inc();
  }

  exchangeEnded(plugin: string): void {
    this.#inFlight.get(plugin)?.dec();
  }

  /** One answered request. */
  observe(plugin: string, route: string, status: number, seconds: number): void {
    const key = `${plugin}\u0000${route}`;
    const ckey = `${key}\u0000${status}`;
    let counter = this.#counters.get(ckey);
    if (!counter) {
      counter = this.requests.labels(plugin, route, String(status));
      this.#counters.set(ckey, counter);
    }
    counter.inc();
    let histogram = this.#histograms.get(key);
    if (!histogram) {
      histogram = this.duration.labels(plugin, route);
      this.#histograms.set(key, histogram);
    }
    histogram.observe(seconds);
  }
}
