/**
 * One run of a plugin process: spawn, `initialize` handshake, frames in and out over stdio, the
 * exchanges in flight, and its end. Restarting is the supervisor's business (plugin.ts); a Child
 * lives exactly once.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { GatewayError } from "../errors.js";
import type { Logger } from "../log.js";
import type { PluginManifest } from "../manifest/index.js";
import {
  classify,
  encodeFrame,
  type Frame,
  type JsonRpcId,
  type JsonRpcResponse,
  LineSplitter,
  METHOD_NOT_FOUND,
} from "../protocol/jsonrpc.js";
import { decodeReply, encodeRequest, type HttpReply, type HttpRequestV1, newInbox, replyEnvelope } from "../protocol/v1.js";
import { DEFAULT_WINDOW, ProtocolError, Session, type Stream, tickWriter } from "../protocol/v2.js";

/** The nexo version portico announces in `initialize`. */
export const NEXO_VERSION = "0.1.5";
/** nexo's TypeScript SDK silently drops incoming frames larger than this. */
const NEXO_TS_SDK_MAX_FRAME = 1024 * 1024;
const STDERR_TAIL_LINES = 20;
/** After the plugin exits, how long its pipes may stay open (held by an escaped helper) before we drop them. */
const PIPE_CLOSE_WAIT_MS = 1000;

export interface ChildOptions {
  initTimeoutMs: number;
  /** Longest stdout line accepted; longer ones are dropped and logged. */
  maxFrameBytes: number;
  log: Logger;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why, in words, for health and logs. */
  reason: string;
}

interface Pending {
  resolve: (reply: HttpReply) => void;
  reject: (err: GatewayError) => void;
}

interface PendingCall {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
}

export class Child {
  readonly #manifest: PluginManifest;
  readonly #opts: ChildOptions;
  readonly #log: Logger;
  readonly #proc: ChildProcess;
  readonly #exchanges = new Map<string, Pending>();
  readonly #calls = new Map<JsonRpcId, PendingCall>();
  readonly #stderrTail: string[] = [];
  #nextId = 1;
  #initId: JsonRpcId | undefined;
  #lines: LineSplitter | undefined;
  /** Set when the plugin took protocol v2. */
  #session: Session | undefined;
  /** v1 lines go through the same batching writer as v2 frames. */
  #writeStdin: ((chunks: (Buffer | string)[]) => boolean) | undefined;
  #exited: ExitInfo | undefined;
  #exitWaiters: ((info: ExitInfo) => void)[] = [];
  /** Reason recorded before we kill the child ourselves, so the exit is reported truthfully. */
  #killReason: string | undefined;

  constructor(manifest: PluginManifest, opts: ChildOptions) {
    this.#manifest = manifest;
    this.#opts = opts;
    this.#log = opts.log;
    const ep = manifest.entrypoint;
    if (!ep) throw new Error(`plugin ${manifest.id} has no entrypoint command`);
    // Own process group (detached): a terminal's Ctrl-C must not reach plugins before our
    // `shutdown` does, and a kill of the group also takes the plugin's own children.
    this.#proc = spawn(ep.command, ep.args, {
      cwd: manifest.dir,
      env: { ...process.env, ...ep.env },
      stdio: ["pipe", "pipe", "pipe"],
      detached: true,
    });
    const proc = this.#proc;
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
    // 'close', not 'exit': a reply written just before the child exits is still in the pipe.
    proc.on("close", (code, signal) => {
      const reason = this.#killReason ?? (signal ? `killed by ${signal}` : `exited with code ${code}`);
      this.#onExit({ code, signal, reason });
    });
    proc.stdin?.on("error", () => {}); // EPIPE when the child is gone; the exit handler reports it.
    if (proc.stdin) this.#writeStdin = tickWriter(proc.stdin);

    const stdout = new LineSplitter(
      opts.maxFrameBytes,
      (line) => this.#onLine(line),
      (bytes) => this.#log.error({ bytes, max: opts.maxFrameBytes }, "plugin wrote a stdout line over the frame limit; dropped"),
    );
    this.#lines = stdout;
    proc.stdout?.on("data", (chunk: Buffer) => (this.#session ? this.#feed(chunk) : stdout.push(chunk)));
    proc.stdout?.on("end", () => {
      if (!this.#session) stdout.end();
    });
    proc.stdin?.on("drain", () => this.#session?.drained());

    const stderr = new LineSplitter(
      64 * 1024,
      (line) => {
        const text = line.toString("utf8");
        this.#stderrTail.push(text);
        if (this.#stderrTail.length > STDERR_TAIL_LINES) this.#stderrTail.shift();
        this.#log.info({ stream: "stderr" }, text);
      },
      () => {},
    );
    proc.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    proc.stderr?.on("end", () => stderr.end());
  }

  get pid(): number | undefined {
    return this.#proc.pid;
  }

  get exited(): ExitInfo | undefined {
    return this.#exited;
  }

  /** 2 once the plugin accepted protocol v2 in its `initialize` reply, else 1 (nexo's). */
  get protocol(): 1 | 2 {
    return this.#session ? 2 : 1;
  }

  get inFlight(): number {
    return this.#session ? this.#session.streamCount : this.#exchanges.size;
  }

  /** Resolves when the child answered `initialize` with the right id; rejects (and kills it) otherwise. */
  async initialize(): Promise<{ serverVersion: string | undefined }> {
    const timeout = this.#opts.initTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply to initialize within ${timeout} ms`)), timeout);
    });
    try {
      // v1 plugins ignore `portico`; a v2 one answers with result.portico.protocol = 2 (docs/protocol.md).
      this.#initId = this.#nextId;
      const offer = { nexo_version: NEXO_VERSION, portico: { protocols: [2], window: DEFAULT_WINDOW } };
      const result = await Promise.race([this.call("initialize", offer), timedOut]);
      const r = result as { manifest?: { plugin?: { id?: unknown } }; server_version?: unknown } | null;
      const id = r?.manifest?.plugin?.id;
      if (id !== this.#manifest.id) {
        throw new Error(
          `initialize answered with plugin id ${JSON.stringify(id)}, expected "${this.#manifest.id}" (from ${this.#manifest.file})`,
        );
      }
      return { serverVersion: typeof r?.server_version === "string" ? r.server_version : undefined };
    } catch (err) {
      const message = (err as Error).message;
      this.kill(message);
      throw new Error(message);
    } finally {
      clearTimeout(timer);
    }
  }

  /** One HTTP exchange (codec v1). Rejects with a GatewayError; the caller owns the timeout. */
  exchange(req: HttpRequestV1): { reply: Promise<HttpReply>; cancel: () => void } {
    if (this.#exited) {
      return { reply: Promise.reject(new GatewayError("plugin_unavailable", "plugin not running")), cancel: () => {} };
    }
    const inbox = newInbox();
    const line = encodeRequest(this.#manifest.id, inbox, req);
    // Cheap test first: a string's length never exceeds its UTF-8 byte length, and latin-1 header
    // bytes may count twice on the wire.
    if (line.length * 3 > NEXO_TS_SDK_MAX_FRAME) {
      const bytes = Buffer.byteLength(line);
      if (bytes > NEXO_TS_SDK_MAX_FRAME) {
        this.#log.warn(
          { bytes },
          "request frame over 1 MiB: nexo's SDKs drop such frames without replying (the client then gets a 504); keep v1 bodies under ~750 KiB or use protocol v2",
        );
      }
    }
    const reply = new Promise<HttpReply>((resolve, reject) => {
      this.#exchanges.set(inbox, { resolve, reject });
    });
    this.#write(line);
    return { reply, cancel: () => this.#exchanges.delete(inbox) };
  }

  /** Opens a protocol v2 stream with the request HEAD. The caller drives it (gateway/proxy-v2). */
  open(head: unknown, end: boolean): Stream {
    if (!this.#session || this.#exited) throw new GatewayError("plugin_unavailable", "plugin not running");
    return this.#session.open(head, end);
  }

  /** A JSON-RPC request to the child; resolves with its result. */
  call(method: string, params: unknown): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#exited) return reject(new Error(`plugin ${this.#exited.reason}`));
      this.#calls.set(id, { resolve, reject });
      if (this.#session) this.#session.sendRpc({ jsonrpc: "2.0", id, method, params });
      else this.#write(encodeFrame({ jsonrpc: "2.0", id, method, params }));
    });
  }

  /** `shutdown`, then wait for the child to exit by itself; after `graceMs`, kill its group. */
  async shutdown(graceMs: number): Promise<ExitInfo> {
    if (this.#exited) return this.#exited;
    const exit = this.waitExit();
    const grace = setTimeout(() => this.kill(`did not exit within ${graceMs} ms of shutdown`), graceMs);
    this.call("shutdown", { reason: "host requested" }).then(
      () => this.#proc.stdin?.end(),
      () => {},
    );
    try {
      return await exit;
    } finally {
      clearTimeout(grace);
    }
  }

  /** SIGKILL to the whole process group. */
  kill(reason: string): void {
    if (this.#exited) return;
    this.#killReason ??= reason;
    if (!this.#killGroup()) this.#proc.kill("SIGKILL");
  }

  /** SIGKILL to the child's process group; false when there was none to signal. */
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

  waitExit(): Promise<ExitInfo> {
    if (this.#exited) return Promise.resolve(this.#exited);
    return new Promise((resolve) => this.#exitWaiters.push(resolve));
  }

  stderrTail(): string[] {
    return [...this.#stderrTail];
  }

  // Many exchanges written in one turn of the event loop go to the pipe as one write.
  #write(line: string): void {
    this.#writeStdin?.([line]);
  }

  #onLine(line: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(line.toString("utf8"));
    } catch {
      this.#log.warn(
        { line: preview(line) },
        "plugin wrote a non-JSON line on stdout; skipped (stdout is for protocol frames, log to stderr)",
      );
      return;
    }
    const frame = classify(value);
    if (typeof frame === "string") {
      this.#log.warn({ line: preview(line), why: frame }, "plugin wrote a line that is not a JSON-RPC frame; skipped");
      return;
    }
    if (frame.kind === "response" && frame.msg.id === this.#initId) this.#maybeSwitch(frame.msg.result);
    this.#onMessage(frame);
  }

  /**
   * The plugin took v2: from the byte after this line on, its stdout carries frames, and so will
   * our writes to its stdin (we have written nothing since `initialize`).
   */
  #maybeSwitch(result: unknown): void {
    const accepted = (result as { portico?: { protocol?: unknown; window?: unknown } } | null)?.portico;
    if (accepted?.protocol !== 2) return;
    const window = typeof accepted.window === "number" && accepted.window > 0 ? accepted.window : DEFAULT_WINDOW;
    const write = this.#writeStdin;
    if (!write) return;
    this.#session = new Session({
      sendWindow: window,
      recvWindow: DEFAULT_WINDOW,
      write,
      onRpc: (value) => {
        const frame = classify(value);
        if (typeof frame === "string") this.#log.warn({ why: frame }, "plugin sent an RPC frame that is not JSON-RPC; ignored");
        else this.#onMessage(frame);
      },
    });
    this.#lines?.handOff((rest) => this.#feed(rest));
  }

  #feed(chunk: Buffer): void {
    try {
      this.#session?.push(chunk);
    } catch (err) {
      // Frames are handled synchronously from this 'data' event: whatever goes wrong there, a
      // plugin's bytes must never take the daemon down. This plugin is restarted instead.
      if (err instanceof ProtocolError) this.#log.error({ err: err.message }, "plugin broke protocol v2; killing it");
      else this.#log.error({ err }, "failed handling the plugin's frames; killing it");
      this.kill(`protocol error: ${(err as Error).message}`);
    }
  }

  #onMessage(frame: Frame): void {
    switch (frame.kind) {
      case "response":
        return this.#onResponse(frame.msg);
      case "request": {
        // nexo children may ask the host for things portico does not offer (memory.recall, …).
        const answer = {
          jsonrpc: "2.0" as const,
          id: frame.msg.id,
          error: { code: METHOD_NOT_FOUND, message: `method not found: ${frame.msg.method}` },
        };
        if (this.#session) this.#session.sendRpc(answer);
        else this.#write(encodeFrame(answer));
        this.#log.debug({ method: frame.msg.method }, "plugin called an unsupported method");
        return;
      }
      case "notification":
        if (frame.msg.method === "broker.publish") return this.#onPublish(frame.msg.params);
        this.#log.debug({ method: frame.msg.method }, "ignored notification from plugin");
        return;
    }
  }

  #onResponse(msg: JsonRpcResponse): void {
    const call = msg.id === null ? undefined : this.#calls.get(msg.id);
    if (!call || msg.id === null) {
      this.#log.debug({ id: msg.id }, "response to no pending call; ignored");
      return;
    }
    this.#calls.delete(msg.id);
    if (msg.error) call.reject(new Error(`plugin answered error ${msg.error.code}: ${msg.error.message}`));
    else call.resolve(msg.result);
  }

  #onPublish(params: unknown): void {
    const env = replyEnvelope(params);
    const pending = env && this.#exchanges.get(env.topic);
    if (!env || !pending) {
      this.#log.debug({ topic: env?.topic }, "broker.publish to a topic with no waiting request; ignored");
      return;
    }
    this.#exchanges.delete(env.topic);
    try {
      pending.resolve(decodeReply(env.event));
    } catch (err) {
      pending.reject(err instanceof GatewayError ? err : new GatewayError("bad_reply", String(err)));
    }
  }

  #onExit(info: ExitInfo): void {
    if (this.#exited) return;
    this.#exited = info;
    for (const p of this.#exchanges.values()) p.reject(new GatewayError("plugin_crashed", info.reason));
    this.#exchanges.clear();
    this.#session?.fail(new Error(info.reason));
    for (const c of this.#calls.values()) c.reject(new Error(`plugin ${info.reason}`));
    this.#calls.clear();
    for (const w of this.#exitWaiters) w(info);
    this.#exitWaiters = [];
  }
}

function preview(line: Buffer): string {
  const s = line.subarray(0, 200).toString("utf8");
  return line.length > 200 ? `${s}…` : s;
}
