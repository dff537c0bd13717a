/**
 * Per-plugin traffic figures for the status page: requests per second, error rate, p50/p99 latency
 * and a minute of history. Recording one request is a few typed-array writes (no allocation): a
 * ring of one-second rows, each with a request count, an error count and a small latency histogram
 * on a log scale. Reading (once a second per page open) sums the rows.
 */
import { EventEmitter } from "node:events";
import { performance } from "node:perf_hooks";
import type { PluginEvents, PluginState } from "../host/plugin.js";

/** Seconds of history kept: the sparkline's width. */
export const HISTORY_SECONDS = 60;
/** Seconds the rates and percentiles are taken over. */
export const WINDOW_SECONDS = 10;
/** Latency buckets: upper edges BASE_MS · 2^(i/3), so each is 26% wider than the last (0.05 ms … 105 s). */
const BUCKETS = 64;
const BASE_MS = 0.05;
const STEPS_PER_DOUBLING = 3;
/** The complete seconds of history, and the one under way. */
const ROWS = HISTORY_SECONDS + 1;

export interface TrafficFigures {
  /** Over the last WINDOW_SECONDS complete seconds. */
  windowSeconds: number;
  rps: number;
  /** Share of answers with a 5xx status, 0..1; null without requests. */
  errorRate: number | null;
  /** Milliseconds, to within 13%; null without requests. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Since portico started. */
  requests: number;
  errors: number;
  /** Requests in each of the last HISTORY_SECONDS complete seconds, oldest first. */
  history: number[];
  /** 5xx answers in each of those seconds. */
  errorHistory: number[];
}

/** One plugin's rows. */
export class PluginTraffic {
  readonly #requests = new Uint32Array(ROWS);
  readonly #errors = new Uint32Array(ROWS);
  readonly #latency = new Uint32Array(ROWS * BUCKETS);
  /** The second the newest row is for (performance.now() seconds). */
  #second = 0;
  #total = 0;
  #totalErrors = 0;

  record(status: number, seconds: number, nowSecond: number): void {
    if (nowSecond !== this.#second) this.#advance(nowSecond);
    const row = nowSecond % ROWS;
    // (typed arrays: `as number` only quiets noUncheckedIndexedAccess; row is in range)
    this.#requests[row] = (this.#requests[row] as number) + 1;
    this.#total++;
    if (status >= 500) {
      this.#errors[row] = (this.#errors[row] as number) + 1;
      this.#totalErrors++;
    }
    const cell = row * BUCKETS + bucketOf(seconds * 1000);
    this.#latency[cell] = (this.#latency[cell] as number) + 1;
  }

  figures(nowSecond: number): TrafficFigures {
    if (nowSecond !== this.#second) this.#advance(nowSecond);
    const history: number[] = [];
    const errorHistory: number[] = [];
    for (let s = nowSecond - HISTORY_SECONDS; s < nowSecond; s++) {
      const row = ((s % ROWS) + ROWS) % ROWS;
      history.push(s < 0 ? 0 : (this.#requests[row] as number));
      errorHistory.push(s < 0 ? 0 : (this.#errors[row] as number));
    }
    const recent = history.slice(-WINDOW_SECONDS);
    const requests = recent.reduce((a, b) => a + b, 0);
    const errors = errorHistory.slice(-WINDOW_SECONDS).reduce((a, b) => a + b, 0);
    const merged = new Uint32Array(BUCKETS);
    for (let s = nowSecond - WINDOW_SECONDS; s < nowSecond; s++) {
      if (s < 0) continue;
      const base = (s % ROWS) * BUCKETS;
      for (let b = 0; b < BUCKETS; b++) merged[b] = (merged[b] as number) + (this.#latency[base + b] as number);
    }
    return {
      windowSeconds: WINDOW_SECONDS,
      rps: round(requests / WINDOW_SECONDS),
      errorRate: requests ? round(errors / requests) : null,
      p50Ms: quantile(merged, requests, 0.5),
      p99Ms: quantile(merged, requests, 0.99),
      requests: this.#total,
      errors: this.#totalErrors,
      history,
      errorHistory,
    };
  }

  /** Clears the rows of the seconds that passed with no request (at most the whole ring). */
  #advance(nowSecond: number): void {
    const from = Math.max(this.#second + 1, nowSecond - ROWS + 1);
    for (let s = from; s <= nowSecond; s++) {
      const row = s % ROWS;
      this.#requests[row] = 0;
      this.#errors[row] = 0;
      this.#latency.fill(0, row * BUCKETS, (row + 1) * BUCKETS);
    }
    this.#second = nowSecond;
  }
}

export function bucketOf(ms: number): number {
  if (!(ms > BASE_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log2(ms / BASE_MS) * STEPS_PER_DOUBLING));
}

/** The geometric middle of bucket `b`: within 13% of any latency that fell in it. */
export function bucketMiddleMs(b: number): number {
  return b === 0 ? BASE_MS : BASE_MS * 2 ** ((b - 0.5) / STEPS_PER_DOUBLING);
}

function quantile(hist: Uint32Array, count: number, q: number): number | null {
  if (count === 0) return null;
  const rank = Math.max(1, Math.ceil(count * q));
  let seen = 0;
  for (let b = 0; b < hist.length; b++) {
    seen += hist[b] as number;
    if (seen >= rank) return Number(bucketMiddleMs(b).toPrecision(2));
  }
  return null;
}

const round = (n: number) => Math.round(n * 1000) / 1000;

/** What the status page knows of one plugin beyond its own status(): its traffic and how long it has been in its state. */
export interface PluginLive {
  traffic: PluginTraffic;
  /** Date.now() when it entered its current state. */
  since: number;
}

/** Every plugin's live figures, by id. Emits `change` when any plugin changes state. */
export class LiveStats extends EventEmitter<{ change: [] }> {
  readonly #plugins = new Map<string, PluginLive>();

  constructor() {
    super();
    // One listener per open status page (the admin API bounds those), not a leak.
    this.setMaxListeners(0);
  }

  /**
   * Follows a plugin's state changes (for its uptime); returns what stops following it. Its
   * figures are kept by id: a plugin swapped for a new process keeps its history.
   */
  watch(plugin: EventEmitter<PluginEvents> & { readonly id: string; readonly state: PluginState }): () => void {
    const live = this.#of(plugin.id);
    live.since = Date.now();
    const changed = () => {
      live.since = Date.now();
      this.emit("change");
    };
    plugin.on("state", changed);
    return () => plugin.off("state", changed);
  }

  /** One answered request to `plugin`: the per-request hook, kept to a map look-up and a few writes. */
  record(plugin: string, status: number, seconds: number): void {
    this.#of(plugin).traffic.record(status, seconds, Math.floor(performance.now() / 1000));
  }

  get(plugin: string): PluginLive | undefined {
    return this.#plugins.get(plugin);
  }

  figures(plugin: string): TrafficFigures {
    return this.#of(plugin).traffic.figures(Math.floor(performance.now() / 1000));
  }

  #of(id: string): PluginLive {
    let live = this.#plugins.get(id);
    if (!live) {
      live = { traffic: new PluginTraffic(), since: Date.now() };
      this.#plugins.set(id, live);
    }
    return live;
  }
}
