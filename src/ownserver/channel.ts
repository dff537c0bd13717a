/**
 * The supervisor's channel to one run of an own-server app. Ready means its health path answered
 * 2xx (polled from spawn until `startup_timeout_seconds`); while it runs the path is polled every
 * `health_interval_seconds`, and `health_failures` failed checks in a row get it killed (and so
 * restarted like any plugin), with the last failure as the reason. No handshake: stdio is its log.
 */
import { GatewayError } from "../errors.js";
import type { Exchange, RequestHead } from "../exchange/index.js";
import type { RunChannel } from "../host/channel.js";
import type { Logger } from "../log.js";
import type { PluginHttpServer } from "../manifest/index.js";
import type { AppUpstream } from "./upstream.js";

/** While starting, the health path is asked this often (it is refused at once until the app listens). */
export const STARTUP_POLL_MS = 100;

/** What the channel may do to the app's process. */
export interface AppProcess {
  /** Kills the process group; `reason` is what its exit will say. */
  kill(reason: string): void;
  /** SIGTERM to the process group: the graceful stop. */
  terminate(): void;
}

type Closable = Exchange & { fail(err: GatewayError): void };

export class AppChannel implements RunChannel {
  readonly protocol = "http";
  /** undici holds nothing for the app beyond each exchange's own window. */
  readonly queued = 0;
  readonly taken = 0;
  readonly #server: PluginHttpServer;
  readonly #token: string | undefined;
  readonly #log: Logger;
  readonly #process: AppProcess;
  readonly #open = new Set<Closable>();
  #upstream: AppUpstream | undefined;
  #healthy = false;
  #closed: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #failures = 0;

  constructor(server: PluginHttpServer, token: string | undefined, log: Logger, process: AppProcess) {
    this.#server = server;
    this.#token = token;
    this.#log = log;
    this.#process = process;
  }

  get inFlight(): number {
    return this.#open.size;
  }

  /**
   * Waits for the first healthy answer. The app's own `startup_timeout_seconds` applies, not the
   * stdio handshake's `timeoutMs`: starting a web app is not answering one line.
   */
  async initialize(_timeoutMs: number): Promise<{ serverVersion: string | undefined }> {
    const { AppUpstream } = await import("./upstream.js");
    const upstream = new AppUpstream(this.#server, this.#token);
    this.#upstream = upstream;
    const limitMs = this.#server.startupTimeoutSeconds * 1000;
    const deadline = Date.now() + limitMs;
    let last = "no check answered";
    for (;;) {
      // The exit's reason reads "exited …" or "killed …": the supervisor reports it as such.
      if (this.#closed) throw new Error(`plugin ${this.#closed}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`not healthy within ${this.#server.startupTimeoutSeconds} s of its start (${last})`);
      const failure = await upstream.probe(Math.min(this.#server.healthTimeoutSeconds * 1000, left));
      if (failure === undefined) break;
      last = failure;
      await new Promise((resolve) => setTimeout(resolve, Math.min(STARTUP_POLL_MS, Math.max(0, deadline - Date.now()))));
    }
    if (this.#closed) throw new Error(`plugin ${this.#closed}`);
    this.#healthy = true;
    this.#schedule();
    return { serverVersion: undefined };
  }

  open(head: RequestHead, end: boolean): Exchange {
    const upstream = this.#upstream;
    if (this.#closed || !this.#healthy || !upstream) {
      throw new GatewayError("plugin_unavailable", this.#closed ? "app not running" : "app not healthy", { retryAfter: 1 });
    }
    const exchange = upstream.open(head, end, () => this.#open.delete(exchange)) as Closable;
    if (!exchange.closed) this.#open.add(exchange);
    return exchange;
  }

  /** SIGTERM: an HTTP server's usual stop signal. The supervisor kills the group after the grace period. */
  shutdown(): Promise<unknown> {
    this.#stopWatching();
    this.#healthy = false;
    this.#process.terminate();
    return Promise.resolve();
  }

  endInput(): void {}

  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#stopWatching();
    this.#healthy = false;
    const err = new GatewayError("plugin_crashed", `app ${reason}`);
    for (const exchange of [...this.#open]) exchange.fail(err);
    this.#open.clear();
    this.#upstream?.close();
  }

  #schedule(): void {
    this.#timer = setTimeout(() => void this.#check(), this.#server.healthIntervalSeconds * 1000);
    this.#timer.unref();
  }

  async #check(): Promise<void> {
    const upstream = this.#upstream;
    if (!upstream || this.#closed || !this.#healthy) return;
    const failure = await upstream.probe(this.#server.healthTimeoutSeconds * 1000);
    if (this.#closed || !this.#healthy) return;
    if (failure === undefined) {
      if (this.#failures > 0) this.#log.info({ failures: this.#failures }, "app health check passed again");
      this.#failures = 0;
      return this.#schedule();
    }
    this.#failures++;
    const of = this.#server.healthFailures;
    if (this.#failures < of) {
      this.#log.warn({ failures: this.#failures, of, reason: failure }, "app health check failed");
      return this.#schedule();
    }
    // Unhealthy: no new requests from now on (503), then killed and restarted like a crashed plugin.
    const why = `health check failed ${this.#failures} time${this.#failures === 1 ? "" : "s"} in a row (${failure})`;
    this.#log.error({ failures: this.#failures, reason: failure }, `app ${why}; killing it`);
    this.#healthy = false;
    this.#process.kill(why);
  }

  #stopWatching(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
