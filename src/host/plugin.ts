/**
 * A supervised plugin: keeps one Child running, restarts it with exponential backoff and jitter
 * when it dies, and gives up (state `failed`) after too many crashes in a window.
 */
import { EventEmitter } from "node:events";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import type { HttpReply, HttpRequestV1 } from "../protocol/v1.js";
import type { Stream } from "../protocol/v2.js";
import { Child, type ExitInfo } from "./child.js";

export type PluginState = "starting" | "ready" | "restarting" | "failed" | "stopping" | "stopped";
export const PLUGIN_STATES: readonly PluginState[] = ["starting", "ready", "restarting", "failed", "stopping", "stopped"];

export interface SupervisorOptions {
  /** Reply to `initialize` within this (nexo: NEXO_PLUGIN_INIT_TIMEOUT_MS, default 5000). */
  initTimeoutMs: number;
  /** After `shutdown`, how long a child may take to exit before its group is killed. */
  shutdownGraceMs: number;
  maxFrameBytes: number;
  /** First restart delay; doubles per crash in the window, up to maxDelayMs, with ±50% jitter. */
  restartDelayMs: number;
  restartMaxDelayMs: number;
  /** This many crashes within crashWindowMs and the plugin is left `failed`. */
  maxCrashes: number;
  crashWindowMs: number;
}

export const DEFAULT_SUPERVISOR: SupervisorOptions = {
  initTimeoutMs: Number(process.env.NEXO_PLUGIN_INIT_TIMEOUT_MS) || 5000,
  shutdownGraceMs: 10_000,
  maxFrameBytes: 256 * 1024 * 1024,
  restartDelayMs: 200,
  restartMaxDelayMs: 30_000,
  maxCrashes: 5,
  crashWindowMs: 60_000,
};

export interface PluginStatus {
  id: string;
  state: PluginState;
  pid: number | null;
  restarts: number;
  inFlight: number;
  /** The protocol the running child speaks (1: nexo's, 2: took portico's offer); null while none is ready. */
  protocol: 1 | 2 | null;
  lastExit: string | null;
  /** While restarting: when the next attempt is due (ISO time). */
  nextAttemptAt: string | null;
}

export interface PluginEvents {
  state: [state: PluginState, previous: PluginState];
  restart: [];
}

export class Plugin extends EventEmitter<PluginEvents> {
  readonly manifest: PluginManifest;
  readonly #opts: SupervisorOptions;
  readonly #log: Logger;
  #state: PluginState = "stopped";
  #child: Child | undefined;
  #crashes: number[] = [];
  #restarts = 0;
  #lastExit: string | null = null;
  #nextAttemptAt = 0;
  #restartTimer: NodeJS.Timeout | undefined;

  constructor(manifest: PluginManifest, opts: SupervisorOptions, log: Logger) {
    super();
    this.manifest = manifest;
    this.#opts = opts;
    this.#log = log.child({ plugin: manifest.id });
  }

  get id(): string {
    return this.manifest.id;
  }

  get state(): PluginState {
    return this.#state;
  }

  /** Starts the plugin; resolves once the first attempt is settled (ready, or crashed and scheduled). */
  async start(): Promise<void> {
    if (this.#state !== "stopped") return;
    await this.#spawn();
  }

  /** One HTTP exchange with a timeout. Every failure is a GatewayError. */
  async exchange(req: HttpRequestV1, timeoutMs: number): Promise<HttpReply> {
    const child = this.#child;
    if (this.#state !== "ready" || !child) throw this.#unavailable();
    const { reply, cancel } = child.exchange(req);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        cancel();
        reject(new GatewayError("plugin_timeout", `no reply within ${timeoutMs} ms`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([reply, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The protocol the running child speaks: 2 if it took portico's offer, else 1 (nexo's). */
  get protocol(): 1 | 2 {
    return this.#child?.protocol ?? 1;
  }

  /** Protocol v2: opens the stream for one exchange. The gateway drives it and owns its timeouts. */
  open(head: unknown, end: boolean): Stream {
    const child = this.#child;
    if (this.#state !== "ready" || !child) throw this.#unavailable();
    return child.open(head, end);
  }

  /** Graceful: `shutdown`, wait up to the grace period, then kill. Never restarts afterwards. */
  async stop(): Promise<void> {
    clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child || child.exited) {
      this.#setState("stopped");
      return;
    }
    this.#setState("stopping");
    const exit = await child.shutdown(this.#opts.shutdownGraceMs);
    this.#log.info({ exit: exit.reason }, "plugin stopped");
    this.#setState("stopped");
  }

  /** Leaves `failed` (or any state) and starts afresh, forgetting past crashes. */
  async restart(): Promise<void> {
    await this.stop();
    this.#crashes = [];
    await this.#spawn();
  }

  /** Immediate SIGKILL of the process group, for a daemon that is exiting anyway. */
  kill(reason: string): void {
    clearTimeout(this.#restartTimer);
    this.#child?.kill(reason);
  }

  /** Exchanges in flight on the running child. */
  get inFlight(): number {
    return this.#child?.inFlight ?? 0;
  }

  status(): PluginStatus {
    return {
      id: this.id,
      state: this.#state,
      pid: this.#state === "ready" || this.#state === "starting" ? (this.#child?.pid ?? null) : null,
      restarts: this.#restarts,
      inFlight: this.inFlight,
      // Known only once `initialize` was answered: before that every child looks like v1.
      protocol: this.#state === "ready" || this.#state === "stopping" ? this.protocol : null,
      lastExit: this.#lastExit,
      nextAttemptAt: this.#state === "restarting" ? new Date(this.#nextAttemptAt).toISOString() : null,
    };
  }

  #unavailable(): GatewayError {
    const retryAfter =
      this.#state === "restarting" ? Math.max(1, Math.ceil((this.#nextAttemptAt - Date.now()) / 1000)) : this.#state === "failed" ? 60 : 1;
    return new GatewayError("plugin_unavailable", `plugin ${this.id} is ${this.#state}`, { retryAfter });
  }

  async #spawn(): Promise<void> {
    this.#setState("starting");
    let child: Child;
    try {
      child = new Child(this.manifest, {
        initTimeoutMs: this.#opts.initTimeoutMs,
        maxFrameBytes: this.#opts.maxFrameBytes,
        log: this.#log,
      });
    } catch (err) {
      this.#onCrash({ code: null, signal: null, reason: (err as Error).message });
      return;
    }
    this.#child = child;
    child.waitExit().then((info) => {
      // A death while starting is reported by the handshake path below, with the stderr tail.
      if (this.#child === child && this.#state === "ready") this.#onCrash(info);
    });
    try {
      const { serverVersion } = await child.initialize();
      if (this.#child !== child || this.#state !== "starting") return;
      this.#log.info({ pid: child.pid, serverVersion, protocol: child.protocol }, "plugin ready");
      this.#setState("ready");
    } catch (err) {
      const exit = await child.waitExit();
      if (this.#child !== child || this.#state !== "starting") return;
      const tail = child.stderrTail();
      const why =
        (err as Error).message.includes("exited") || (err as Error).message.includes("killed")
          ? `exited before initialize (${exit.reason})`
          : (err as Error).message;
      this.#log.error({ stderr: tail.length ? tail.join("\n") : undefined }, `plugin failed to start: ${why}`);
      this.#onCrash({ ...exit, reason: why });
    }
  }

  #onCrash(info: ExitInfo): void {
    this.#lastExit = info.reason;
    const now = Date.now();
    this.#crashes = this.#crashes.filter((t) => now - t < this.#opts.crashWindowMs);
    this.#crashes.push(now);
    if (this.#crashes.length >= this.#opts.maxCrashes) {
      this.#log.error(
        { crashes: this.#crashes.length, windowMs: this.#opts.crashWindowMs, exit: info.reason },
        "plugin crashed too often; giving up (state failed)",
      );
      this.#setState("failed");
      return;
    }
    const base = Math.min(this.#opts.restartMaxDelayMs, this.#opts.restartDelayMs * 2 ** (this.#crashes.length - 1));
    const delay = Math.round(base * (0.5 + Math.random()));
    this.#nextAttemptAt = now + delay;
    // Its last words on stderr say why, and at warn they are seen where info lines are not.
    const tail = this.#child?.stderrTail().slice(-5);
    this.#log.warn(
      { exit: info.reason, restartInMs: delay, stderr: tail?.length ? tail.join("\n") : undefined },
      "plugin exited; restarting",
    );
    this.#setState("restarting");
    this.#restartTimer = setTimeout(() => {
      this.#restarts++;
      this.emit("restart");
      void this.#spawn();
    }, delay);
    this.#restartTimer.unref();
  }

  #setState(state: PluginState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.emit("state", state, previous);
  }
}
