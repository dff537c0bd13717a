/**
 * A supervised plugin: keeps one run of it going (a process, and the connection over its stdio),
 * restarts it with exponential backoff and jitter when it dies, and gives up (state `failed`)
 * after too many crashes in a window. To the gateway it is an Upstream: exchanges open on it the
 * same way whatever protocol the running process speaks.
 */
import { EventEmitter } from "node:events";
import { PluginConnection } from "../connection/index.js";
import { GatewayError } from "../errors.js";
import type { Exchange, RequestHead, Upstream } from "../exchange/index.js";
import type { Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import { startApp } from "../ownserver/index.js";
import { streamTransport } from "../transport/index.js";
import type { PluginProtocol, Run } from "./channel.js";
import { watchInput } from "./input-watch.js";
import { LineRing } from "./line-ring.js";
import { type LogLine, limitedLog } from "./log-limit.js";
import { type ExitInfo, PluginProcess } from "./process.js";

export type PluginState = "starting" | "ready" | "restarting" | "failed" | "stopping" | "stopped";
export const PLUGIN_STATES: readonly PluginState[] = ["starting", "ready", "restarting", "failed", "stopping", "stopped"];

export interface SupervisorOptions {
  /** Reply to `initialize` within this (nexo: NEXO_PLUGIN_INIT_TIMEOUT_MS, default 5000). */
  initTimeoutMs: number;
  /** After `shutdown`, how long a child may take to exit before its group is killed. */
  shutdownGraceMs: number;
  /** First restart delay; doubles per crash in the window, up to maxDelayMs, with ±50% jitter. */
  restartDelayMs: number;
  restartMaxDelayMs: number;
  /** This many crashes within crashWindowMs and the plugin is left `failed`. */
  maxCrashes: number;
  crashWindowMs: number;
}

/** What one plugin may cost the daemon. */
export interface PluginLimits {
  /** Longest JSON-RPC line it may write; a longer one gets it killed and restarted. */
  maxLineBytes: number;
  /** Bytes waiting to go to it past which new requests get 503. */
  maxQueuedBytes: number;
  /** Log lines its output may cause per second; the rest are counted. */
  maxLogLinesPerSecond: number;
  /** Taking none of its input for this long while some waits: killed and restarted. */
  inputStallMs: number;
}

export const DEFAULT_LIMITS: PluginLimits = {
  maxLineBytes: 32 * 1024 * 1024,
  maxQueuedBytes: 16 * 1024 * 1024,
  maxLogLinesPerSecond: 200,
  inputStallMs: 60_000,
};

export const DEFAULT_SUPERVISOR: SupervisorOptions = {
  initTimeoutMs: Number(process.env.NEXO_PLUGIN_INIT_TIMEOUT_MS) || 5000,
  shutdownGraceMs: 10_000,
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
  /** The protocol the running child speaks (1: nexo's, 2: took portico's offer, "http": serves HTTP itself); null while none is ready. */
  protocol: PluginProtocol | null;
  lastExit: string | null;
  /** While restarting: when the next attempt is due (ISO time). */
  nextAttemptAt: string | null;
}

/** Lines of a plugin's output kept across its runs, for the status page. */
const OUTPUT_KEPT_LINES = 50;

export interface PluginEvents {
  state: [state: PluginState, previous: PluginState];
  restart: [];
}

export class Plugin extends EventEmitter<PluginEvents> implements Upstream {
  readonly manifest: PluginManifest;
  readonly #opts: SupervisorOptions;
  readonly #limits: PluginLimits;
  readonly #log: Logger;
  /** The plugin's own output in the log, within its lines-per-second allowance. */
  readonly #logLine: LogLine;
  #state: PluginState = "stopped";
  #run: Run | undefined;
  #crashes: number[] = [];
  #restarts = 0;
  #lastExit: string | null = null;
  #nextAttemptAt = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Its stderr (and an own-server app's stdout) across runs: a run's own tail dies with the run. */
  readonly #output = new LineRing(OUTPUT_KEPT_LINES);

  constructor(manifest: PluginManifest, opts: SupervisorOptions, limits: PluginLimits, log: Logger) {
    super();
    this.manifest = manifest;
    this.#opts = opts;
    this.#limits = limits;
    this.#log = log.child({ plugin: manifest.id });
    const limited = limitedLog(this.#log, limits.maxLogLinesPerSecond);
    // What the plugin wrote that made it into the log is kept for the status page too.
    this.#logLine = (level, line) =>
      limited(level, () => {
        const out = line();
        if (out[0].stream !== undefined) this.#output.push(out[1]);
        return out;
      });
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

  /** The protocol the running plugin speaks: 2 if it took portico's offer, "http" for an app, else 1 (nexo's). */
  get protocol(): PluginProtocol {
    return this.#run?.connection.protocol ?? 1;
  }

  /** Only nexo's v1 takes whole bodies. */
  get streamsBodies(): boolean {
    return this.protocol !== 1;
  }

  /** Opens one exchange; a GatewayError (503) unless the plugin is ready. */
  open(head: RequestHead, end: boolean): Exchange {
    const run = this.#run;
    if (this.#state !== "ready" || !run) throw this.#unavailable();
    // It isn't taking what it was given: don't give it more.
    if (run.connection.queued > this.#limits.maxQueuedBytes) {
      throw new GatewayError("overloaded", `over ${this.#limits.maxQueuedBytes} bytes queued for the plugin`, { retryAfter: 1 });
    }
    return run.connection.open(head, end);
  }

  /** Graceful: `shutdown`, wait up to the grace period, then kill. Never restarts afterwards. */
  async stop(): Promise<void> {
    clearTimeout(this.#restartTimer);
    const run = this.#run;
    if (!run || run.process.exited) {
      this.#setState("stopped");
      return;
    }
    this.#setState("stopping");
    const exit = await shutdown(run, this.#opts.shutdownGraceMs);
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
    this.#run?.process.kill(reason);
  }

  /** The last lines it wrote on stderr that reached the log, across its restarts, oldest first. */
  stderrTail(): string[] {
    return this.#output.lines();
  }

  /** Exchanges in flight on the running plugin. */
  get inFlight(): number {
    return this.#run?.connection.inFlight ?? 0;
  }

  status(): PluginStatus {
    return {
      id: this.id,
      state: this.#state,
      pid: this.#state === "ready" || this.#state === "starting" ? (this.#run?.process.pid ?? null) : null,
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
    let run: Run;
    try {
      run = this.#startRun();
    } catch (err) {
      this.#onCrash({ code: null, signal: null, reason: (err as Error).message });
      return;
    }
    this.#run = run;
    const stopWatch = watchInput(run.connection, this.#limits.inputStallMs, () => {
      this.#log.error({ stallMs: this.#limits.inputStallMs }, "plugin stopped reading its input; killing it");
      run.process.kill(`stopped reading its input (nothing taken for ${this.#limits.inputStallMs / 1000} s)`);
    });
    run.process.waitExit().then((info) => {
      stopWatch();
      // Everything in flight on it ends first; a death while starting is reported by the
      // handshake path below, with the stderr tail.
      run.connection.close(info.reason);
      if (this.#run === run && this.#state === "ready") this.#onCrash(info);
    });
    try {
      const { serverVersion } = await run.connection.initialize(this.#opts.initTimeoutMs);
      if (this.#run !== run || this.#state !== "starting") return;
      this.#log.info({ pid: run.process.pid, serverVersion, protocol: run.connection.protocol }, "plugin ready");
      this.#setState("ready");
    } catch (err) {
      run.process.kill((err as Error).message);
      const exit = await run.process.waitExit();
      if (this.#run !== run || this.#state !== "starting") return;
      const tail = run.process.stderrTail();
      const why =
        (err as Error).message.includes("exited") || (err as Error).message.includes("killed")
          ? `exited before ${run.readiness} (${exit.reason})`
          : (err as Error).message;
      this.#log.error({ stderr: tail.length ? tail.join("\n") : undefined }, `plugin failed to start: ${why}`);
      this.#onCrash({ ...exit, reason: why });
    }
  }

  /** A process and portico's channel to it. Throws when there is nothing to spawn. */
  #startRun(): Run {
    // An app with its own HTTP server: same process supervision, HTTP over loopback instead of stdio.
    if (this.manifest.httpServer) return startApp(this.manifest, this.manifest.httpServer, this.#log, this.#logLine);
    const proc = new PluginProcess(this.manifest, this.#logLine);
    const connection = new PluginConnection(streamTransport(proc.output, proc.input), {
      pluginId: this.manifest.id,
      manifestFile: this.manifest.file,
      maxLineBytes: this.#limits.maxLineBytes,
      log: this.#log,
      logLine: this.#logLine,
      onBroken: (reason) => proc.kill(reason),
    });
    return { process: proc, connection, readiness: "initialize" };
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
    const tail = this.#run?.process.stderrTail().slice(-5);
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
    // Every state change is one line, whatever caused it, so a log reader can follow a plugin alone.
    this.#log.info({ state, previous, pid: this.#run?.process.pid }, `plugin state ${previous} → ${state}`);
    this.emit("state", state, previous);
  }
}

/** `shutdown`, then wait for the process to exit by itself; after `graceMs`, kill its group. */
async function shutdown(run: Run, graceMs: number): Promise<ExitInfo> {
  const exit = run.process.waitExit();
  const grace = setTimeout(() => run.process.kill(`did not exit within ${graceMs} ms of shutdown`), graceMs);
  run.connection.shutdown().then(
    () => run.connection.endInput(),
    () => {},
  );
  try {
    return await exit;
  } finally {
    clearTimeout(grace);
  }
}
