/**
 * One run of a plugin's process: spawned in its own process group with the plugin's folder as
 * working directory, its stderr copied into the log, and its end reported once and truthfully.
 * It knows processes, not frames: what travels on stdin/stdout is the connection's business.
 */
import { type ChildProcess, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import type { PluginManifest } from "../manifest/index.js";
import { LineSplitter } from "../protocol/jsonrpc.js";
import { readFairly } from "../transport/stream.js";
import type { LogLine } from "./log-limit.js";

const STDERR_TAIL_LINES = 20;
/** How long stderr is left unread once the plugin's lines are over its log allowance. */
const FLOOD_HOLD_MS = 50;
/** After the plugin exits, how long its pipes may stay open (held by an escaped helper) before we drop them. */
const PIPE_CLOSE_WAIT_MS = 1000;

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why, in words, for health and logs. */
  reason: string;
}

export interface SpawnOptions {
  /** Set after the manifest's own environment (an app's token). */
  env?: Record<string, string>;
  /**
   * The plugin serves HTTP itself: nothing travels on its stdio, so its stdin is /dev/null and its
   * stdout is a log like its stderr.
   */
  ownServer?: boolean;
}

export class PluginProcess {
  readonly #proc: ChildProcess;
  readonly #stderrTail: string[] = [];
  #exited: ExitInfo | undefined;
  #exitWaiters: ((info: ExitInfo) => void)[] = [];
  /** Reason recorded before we kill the process ourselves, so the exit is reported truthfully. */
  #killReason: string | undefined;

  /** Throws when the manifest has no command to run. */
  constructor(manifest: PluginManifest, logLine: LogLine, opts: SpawnOptions = {}) {
    const ep = manifest.entrypoint;
    if (!ep) throw new Error(`plugin ${manifest.id} has no entrypoint command`);
    // Own process group (detached): a terminal's Ctrl-C must not reach plugins before our
    // `shutdown` does, and a kill of the group also takes the plugin's own children.
    const proc = spawn(ep.command, ep.args, {
      cwd: manifest.dir,
      env: { ...process.env, ...ep.env, ...opts.env },
      stdio: [opts.ownServer ? "ignore" : "pipe", "pipe", "pipe"],
      detached: true,
    });
    this.#proc = proc;
    proc.on("error", (err) => this.#onExit({ code: null, signal: null, reason: `could not start: ${err.message}` }));
    proc.on("exit", () => {
      // The plugin is gone. Whatever is left in its process group is a helper it started: it would
      // outlive the plugin and, holding our stdout/stderr pipes, delay 'close' forever, so the
      // plugin would look alive (never restarted, requests timing out). Kill the group; if 'close'
      // still doesn't come (a helper that left the group), stop waiting for the pipes.
      this.#killGroup();
      setTimeout(() => {
        if (this.#exited) return;
        proc.stdout?.destroy();
        proc.stderr?.destroy();
      }, PIPE_CLOSE_WAIT_MS).unref();
    });
    // 'close', not 'exit': a reply written just before the process exits is still in the pipe.
    proc.on("close", (code, signal) => {
      const reason = this.#killReason ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
      this.#onExit({ code, signal, reason });
    });

    this.#logOutput(proc.stderr, "stderr", logLine);
    if (opts.ownServer) this.#logOutput(proc.stdout, "stdout", logLine);
  }

  /**
   * Copies one output stream's lines into the log. It is only a log: past the plugin's allowance
   * it is left unread for a moment, so a flood blocks in the plugin instead of costing portico
   * reads of lines it throws away.
   */
  #logOutput(stream: Readable | null, name: "stderr" | "stdout", logLine: LogLine): void {
    if (!stream) return;
    const lines = new LineSplitter(
      64 * 1024,
      (line) => {
        // The tail keeps what was logged: a flood's junk would push the last words out anyway.
        const logged = logLine("info", () => {
          const text = line.toString("utf8");
          this.#stderrTail.push(text);
          if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
          return [{ stream: name }, text];
        });
        if (!logged) reader.holdFor(FLOOD_HOLD_MS);
      },
      () => {},
    );
    const reader = readFairly(stream, (chunk) => lines.push(chunk));
    stream.on("end", () => lines.end());
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  /** What the plugin writes (its stdout). */
  get output(): Readable {
    return this.#proc.stdout as Readable;
  }

  /** What the plugin reads (its stdin). */
  get input(): Writable {
    return this.#proc.stdin as Writable;
  }

  get exited(): ExitInfo | undefined {
    return this.#exited;
  }

  waitExit(): Promise<ExitInfo> {
    if (this.#exited) return Promise.resolve(this.#exited);
    return new Promise((resolve) => this.#exitWaiters.push(resolve));
  }

  /** SIGTERM to the process group: how an app serving HTTP itself is asked to stop. */
  terminate(): void {
    const pid = this.#proc.pid;
    if (this.#exited || pid === undefined) return;
    try {
      process.kill(-pid, "SIGTERM");
    } catch {
      this.#proc.kill("SIGTERM");
    }
  }

  /** SIGKILL to the whole process group; `reason` is what its exit will say. */
  kill(reason: string): void {
    if (this.#exited) return;
    this.#killReason ??= reason;
    if (!this.#killGroup()) this.#proc.kill("SIGKILL");
  }

  /** The last lines the plugin wrote on stderr (its last words, when it dies). */
  stderrTail(): string[] {
    return [...this.#stderrTail];
  }

  /** SIGKILL to the process group; false when there was none to signal. */
  #killGroup(): boolean {
    const pid = this.#proc.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, "SIGKILL");
      return true;
    } catch {
      return false;
    }
  }

  #onExit(info: ExitInfo): void {
    if (this.#exited) return;
    this.#exited = info;
    for (const w of this.#exitWaiters) w(info);
    this.#exitWaiters = [];
  }
}
