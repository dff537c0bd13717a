/**
 * portico's side of one plugin connection, over any Transport: the `initialize` handshake (with
 * the id check and portico's v2 offer), JSON-RPC calls both ways, and the codec the handshake
 * chose, v1 or v2, picked once. After that, `open` is the same call whatever the plugin speaks.
 */
import { GatewayError } from "../errors.js";
import type { Exchange } from "../exchange/index.js";
import { type LogLine, perSecondAllowance } from "../host/log-limit.js";
import type { Logger } from "../log.js";
import type { RequestHead } from "../protocol/http.js";
import { classify, type Frame, type JsonRpcId, type JsonRpcResponse, METHOD_NOT_FOUND } from "../protocol/jsonrpc.js";
import { endLine, parseLine } from "../protocol/v1.js";
import { DEFAULT_WINDOW, ProtocolError } from "../protocol/v2.js";
import type { Transport } from "../transport/index.js";
import { V1Codec } from "./v1.js";
import { V2Codec } from "./v2.js";
import { Wire } from "./wire.js";

/** How long a plugin's output is left unread once its stray lines are over its log allowance. */
const FLOOD_HOLD_MS = 50;
/** Bytes waiting for the plugin past which answers to its own requests are not sent. */
const ANSWERS_WAIT_MAX = 64 * 1024;
/**
 * Frames portico has no use for (notifications other than a reply, publishes to no waiting
 * request, answers to no call) taken per second before the plugin's output is left unread for a
 * moment. Each costs a parse: unchecked, a plugin writing them as fast as it can costs the daemon
 * a core. A chatty plugin stays far below.
 */
const IGNORED_PER_SECOND = 10_000;

/** The nexo version portico announces in `initialize`. */
export const NEXO_VERSION = "0.1.5";

export interface ConnectionOptions {
  /** The manifest's id: `initialize` must answer with it. */
  pluginId: string;
  /** For messages: where the expected id comes from. */
  manifestFile: string;
  /** Longest line accepted (v1, or before v2): a longer one breaks the connection (onBroken). */
  maxLineBytes: number;
  log: Logger;
  /** For lines the plugin's output causes (stray stdout lines): rate-limited. */
  logLine: LogLine;
  /** The plugin broke the protocol: the owner ends it (kills the process). */
  onBroken(reason: string): void;
}

interface PendingCall {
  resolve: (result: unknown) => void;
  reject: (err: Error) => void;
}

/** What the handshake chose: how exchanges travel on this connection. */
interface Codec {
  readonly protocol: 1 | 2;
  readonly inFlight: number;
  /** Bytes waiting in the codec itself, not yet given to the transport. */
  readonly queued: number;
  /** The transport's backlog drained. */
  drained(): void;
  /** A JSON-RPC message to the plugin, framed as this protocol frames them. */
  sendRpc(msg: unknown): void;
  open(head: RequestHead, end: boolean): Exchange;
  /** A `broker.publish` from the plugin (v1's replies travel as these): false if nobody wanted it. */
  onPublish(params: unknown): boolean;
  /** The plugin is gone: every exchange ends. */
  close(reason: string): void;
}

export class PluginConnection {
  readonly #opts: ConnectionOptions;
  readonly #log: Logger;
  readonly #wire: Wire;
  readonly #calls = new Map<JsonRpcId, PendingCall>();
  #nextId = 1;
  #initId: JsonRpcId | undefined;
  readonly #unusedAllowed = perSecondAllowance(IGNORED_PER_SECOND);
  /** v1 until the handshake says otherwise. */
  #codec: Codec;
  #closed: string | undefined;

  constructor(transport: Transport, opts: ConnectionOptions) {
    this.#opts = opts;
    this.#log = opts.log;
    this.#wire = new Wire(transport, {
      maxLineBytes: opts.maxLineBytes,
      onLine: (line) => this.#onLine(line),
      onOverflow: (bytes) => {
        this.#log.error({ bytes, max: opts.maxLineBytes }, "plugin wrote a line over max_line_bytes; killing it");
        opts.onBroken(`wrote a line over max_line_bytes (${opts.maxLineBytes} bytes)`);
      },
      onDrain: () => this.#codec.drained(),
      onBroken: (err) => {
        if (err instanceof ProtocolError) this.#log.error({ err: err.message }, "plugin broke protocol v2; killing it");
        else this.#log.error({ err }, "failed handling the plugin's frames; killing it");
        opts.onBroken(`protocol error: ${err.message}`);
      },
    });
    const wire = this.#wire;
    const out = {
      write: (pieces: string[]) => wire.writeAll(pieces),
      get backlog() {
        return wire.backlog;
      },
    };
    this.#codec = new V1Codec(opts.pluginId, out, this.#log);
  }

  /** 2 once the plugin accepted protocol v2 in its `initialize` reply, else 1 (nexo's). */
  get protocol(): 1 | 2 {
    return this.#codec.protocol;
  }

  get inFlight(): number {
    return this.#codec.inFlight;
  }

  /** Bytes the plugin has read so far. */
  get taken(): number {
    return this.#wire.taken;
  }

  /** Bytes on their way to the plugin that it has not taken yet. */
  get queued(): number {
    return this.#codec.queued + this.#wire.backlog;
  }

  /**
   * Resolves when the plugin answered `initialize` with the right id within `timeoutMs`; rejects
   * otherwise (the owner then ends the process).
   */
  async initialize(timeoutMs: number): Promise<{ serverVersion: string | undefined }> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply to initialize within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      // v1 plugins ignore `portico`; a v2 one answers with result.portico.protocol = 2 (docs/protocol.md).
      this.#initId = this.#nextId;
      const offer = { nexo_version: NEXO_VERSION, portico: { protocols: [2], window: DEFAULT_WINDOW } };
      const result = await Promise.race([this.call("initialize", offer), timedOut]);
      const r = result as { manifest?: { plugin?: { id?: unknown } }; server_version?: unknown } | null;
      const id = r?.manifest?.plugin?.id;
      if (id !== this.#opts.pluginId) {
        throw new Error(
          `initialize answered with plugin id ${JSON.stringify(id)}, expected "${this.#opts.pluginId}" (from ${this.#opts.manifestFile})`,
        );
      }
      return { serverVersion: typeof r?.server_version === "string" ? r.server_version : undefined };
    } finally {
      clearTimeout(timer);
    }
  }

  /** One exchange, in whichever protocol the handshake chose. Throws a GatewayError when closed. */
  open(head: RequestHead, end: boolean): Exchange {
    if (this.#closed) throw new GatewayError("plugin_unavailable", "plugin not running");
    return this.#codec.open(head, end);
  }

  /** A JSON-RPC request to the plugin; resolves with its result. */
  call(method: string, params: unknown): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#closed) return reject(new Error(`plugin ${this.#closed}`));
      this.#calls.set(id, { resolve, reject });
      this.#codec.sendRpc({ jsonrpc: "2.0", id, method, params });
    });
  }

  /** Asks the plugin to finish its work and exit; resolves when it answered. */
  shutdown(): Promise<unknown> {
    return this.call("shutdown", { reason: "host requested" });
  }

  /** Nothing more goes to the plugin (its stdin closes once the queue is out). */
  endInput(): void {
    this.#wire.end();
  }

  /** The plugin is gone (`reason` in words): every exchange and call in flight ends. */
  close(reason: string): void {
    if (this.#closed) return;
    this.#closed = reason;
    this.#codec.close(reason);
    for (const c of this.#calls.values()) c.reject(new Error(`plugin ${reason}`));
    this.#calls.clear();
  }

  #onLine(line: Buffer): void {
    let value: unknown;
    // Not even the start of a JSON object or array: skipped without paying for JSON.parse's exception.
    const first = firstNonBlank(line);
    if (first !== 0x7b && first !== 0x5b) {
      this.#stray(() => [
        { line: preview(line) },
        "plugin wrote a non-JSON line on stdout; skipped (stdout is for protocol frames, log to stderr)",
      ]);
      return;
    }
    try {
      value = parseLine(line);
    } catch {
      this.#stray(() => [
        { line: preview(line) },
        "plugin wrote a non-JSON line on stdout; skipped (stdout is for protocol frames, log to stderr)",
      ]);
      return;
    }
    try {
      this.#onFrame(line, classify(value));
    } finally {
      // A body taken out of this line is this line's only, whatever became of it.
      endLine();
    }
  }

  #onFrame(line: Buffer, frame: ReturnType<typeof classify>): void {
    if (typeof frame === "string") {
      this.#stray(() => [{ line: preview(line), why: frame }, "plugin wrote a line that is not a JSON-RPC frame; skipped"]);
      return;
    }
    if (frame.kind === "response" && frame.msg.id === this.#initId) this.#maybeSwitch(frame.msg.result);
    this.#onMessage(frame);
  }

  /**
   * The plugin took v2: from the byte after this line on, its output carries frames, and so will
   * ours (we have written nothing since `initialize`).
   */
  #maybeSwitch(result: unknown): void {
    const accepted = (result as { portico?: { protocol?: unknown; window?: unknown } } | null)?.portico;
    if (accepted?.protocol !== 2) return;
    const window = typeof accepted.window === "number" && accepted.window > 0 ? accepted.window : DEFAULT_WINDOW;
    const session = this.#wire.switchToFrames({
      sendWindow: window,
      recvWindow: DEFAULT_WINDOW,
      onRpc: (value) => {
        const frame = classify(value);
        if (typeof frame === "string")
          this.#opts.logLine("warn", () => [{ why: frame }, "plugin sent an RPC frame that is not JSON-RPC; ignored"]);
        else this.#onMessage(frame);
      },
    });
    this.#codec = new V2Codec(session, this.#log);
  }

  /**
   * A stray line, logged within the plugin's allowance. Past it, the plugin is writing junk faster
   * than it is worth reading: its output is left unread for a moment, so its writes block and the
   * flood slows down where it starts.
   */
  #stray(line: () => [Record<string, unknown>, string]): void {
    if (!this.#opts.logLine("warn", line)) this.#wire.holdInput(FLOOD_HOLD_MS);
  }

  #onMessage(frame: Frame): void {
    switch (frame.kind) {
      case "response":
        this.#onResponse(frame.msg);
        return;
      case "request":
        // A plugin asking while it doesn't read our answers would have them pile up: past a little
        // waiting for it, they are not sent (a plugin that reads never gets near it), and its
        // output is left unread for a moment, as for a log flood: reading and dropping requests as
        // fast as it writes them would cost the daemon a core.
        if (this.queued > ANSWERS_WAIT_MAX) {
          this.#wire.holdInput(FLOOD_HOLD_MS);
          return;
        }
        // nexo plugins may ask the host for things portico does not offer (memory.recall, …).
        this.#codec.sendRpc({
          jsonrpc: "2.0",
          id: frame.msg.id,
          error: { code: METHOD_NOT_FOUND, message: `method not found: ${frame.msg.method}` },
        });
        this.#log.debug({ method: frame.msg.method }, "plugin called an unsupported method");
        return;
      case "notification":
        if (frame.msg.method === "broker.publish") {
          if (!this.#codec.onPublish(frame.msg.params)) this.#unused();
          return;
        }
        this.#log.debug({ method: frame.msg.method }, "ignored notification from plugin");
        this.#unused();
        return;
    }
  }

  /** One more frame nobody wanted: past IGNORED_PER_SECOND, the plugin's output waits a moment. */
  #unused(): void {
    if (!this.#unusedAllowed()) this.#wire.holdInput(FLOOD_HOLD_MS);
  }

  #onResponse(msg: JsonRpcResponse): void {
    const call = msg.id === null ? undefined : this.#calls.get(msg.id);
    if (!call || msg.id === null) {
      this.#log.debug({ id: msg.id }, "response to no pending call; ignored");
      this.#unused();
      return;
    }
    this.#calls.delete(msg.id);
    if (msg.error) call.reject(new Error(`plugin answered error ${msg.error.code}: ${msg.error.message}`));
    else call.resolve(msg.result);
  }
}

function firstNonBlank(line: Buffer): number | undefined {
  for (const byte of line) if (byte !== 0x20 && byte !== 0x09) return byte;
  return undefined;
}

function preview(line: Buffer): string {
  const s = line.subarray(0, 200).toString("utf8");
  return line.length > 200 ? `${s}…` : s;
}
