/**
 * The three series every request touches (requests by status, duration histogram, in flight),
 * counted in plain numbers on the request path and read out only when /metrics is scraped.
 * prom-client's own Counter and Histogram hash the label set on every call, even through a
 * cached child: a string built and a map looked up per request, for each series. These objects
 * speak prom-client's metric interface (get/getForPromString, as its registry reads every
 * metric), so the text exposition is prom-client's, unchanged.
 */

/** One route's figures: answers by status, and the duration histogram (counts per bucket, not cumulative). */
interface RouteCounts {
  readonly plugin: string;
  readonly route: string;
  readonly byStatus: Map<number, number>;
  readonly buckets: Float64Array;
  sum: number;
  count: number;
}

/** A value as prom-client's registry formats it: `labels` first, then `sharedLabels`. */
interface Value {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName?: string;
}

type Snapshot = { name: string; help: string; type: string; values: Value[]; aggregator: "sum" };

type Help = { requests: string; duration: string; inFlight: string };

interface Series {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: "sum";
  get(): Promise<Snapshot>;
  reset(): void;
}

export class RequestMetrics {
  readonly #bounds: readonly number[];
  /** plugin → route → figures: two look-ups, nothing allocated per request. */
  readonly #routes = new Map<string, Map<string, RouteCounts>>();
  readonly #inFlight = new Map<string, number>();

  /** Registers the three series in `registry` (prom-client's, read through its metric interface). */
  constructor(registry: { registerMetric(metric: never): void }, bounds: readonly number[], help: Help) {
    this.#bounds = bounds;
    for (const s of this.#series(help)) registry.registerMetric(s as never);
  }

  /** Makes the plugin's in-flight series appear at 0 (it stays: requests may still drain). */
  watch(plugin: string): void {
    if (!this.#inFlight.has(plugin)) this.#inFlight.set(plugin, 0);
  }

  started(plugin: string): void {
    this.#inFlight.set(plugin, (this.#inFlight.get(plugin) ?? 0) + 1);
  }

  ended(plugin: string): void {
    this.#inFlight.set(plugin, (this.#inFlight.get(plugin) ?? 1) - 1);
  }

  /** One answered request. */
  observe(plugin: string, route: string, status: number, seconds: number): void {
    let routes = this.#routes.get(plugin);
    if (!routes) {
      routes = new Map();
      this.#routes.set(plugin, routes);
    }
    let r = routes.get(route);
    if (!r) {
      r = { plugin, route, byStatus: new Map(), buckets: new Float64Array(this.#bounds.length), sum: 0, count: 0 };
      routes.set(route, r);
    }
    r.byStatus.set(status, (r.byStatus.get(status) ?? 0) + 1);
    const bounds = this.#bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= (bounds[i] as number)) {
        (r.buckets[i] as number)++;
        break;
      }
    }
    r.sum += seconds;
    r.count++;
  }

  /** portico_requests_total, portico_request_duration_seconds, portico_requests_in_flight. */
  #series(help: Help): Series[] {
    return [
      this.#one("portico_requests_total", help.requests, "counter", () => this.#requestValues()),
      this.#one("portico_request_duration_seconds", help.duration, "histogram", () => this.#durationValues()),
      this.#one("portico_requests_in_flight", help.inFlight, "gauge", () =>
        [...this.#inFlight].map(([plugin, n]) => ({ labels: { plugin }, value: n })),
      ),
    ];
  }

  #one(name: string, help: string, type: string, values: () => Value[]): Series {
    return {
      name,
      help,
      type,
      aggregator: "sum",
      get: async () => ({ name, help, type, values: values(), aggregator: "sum" }),
      reset: () => {}, // cumulative since the daemon started, as Prometheus expects
    };
  }

  *#all(): Iterable<RouteCounts> {
    for (const routes of this.#routes.values()) yield* routes.values();
  }

  #requestValues(): Value[] {
    const out: Value[] = [];
    for (const r of this.#all()) {
      for (const [status, n] of r.byStatus) out.push({ labels: { plugin: r.plugin, route: r.route, status: String(status) }, value: n });
    }
    return out;
  }

  #durationValues(): Value[] {
    const name = "portico_request_duration_seconds";
    const out: Value[] = [];
    for (const r of this.#all()) {
      const shared = { plugin: r.plugin, route: r.route };
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += r.buckets[i] as number;
        out.push({ labels: { le }, sharedLabels: shared, value: cumulative, metricName: `${name}_bucket` });
      });
      out.push({ labels: { le: "+Inf" }, sharedLabels: shared, value: r.count, metricName: `${name}_bucket` });
      out.push({ labels: {}, sharedLabels: shared, value: r.sum, metricName: `${name}_sum` });
      out.push({ labels: {}, sharedLabels: shared, value: r.count, metricName: `${name}_count` });
    }
    return out;
  }
}
