/**
 * Newline-delimited JSON-RPC 2.0, as nexo children speak it on stdin/stdout.
 * One compact JSON object per line; JSON.stringify never emits a raw CR or LF inside a frame.
 */

export type JsonRpcId = number | string;

export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: unknown;
}

export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: unknown;
}

export interface JsonRpcResponse {
  jsonrpc: "2.0";
  id: JsonRpcId | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
}

export type Frame =
  | { kind: "request"; msg: JsonRpcRequest }
  | { kind: "notification"; msg: JsonRpcNotification }
  | { kind: "response"; msg: JsonRpcResponse };

export const METHOD_NOT_FOUND = -32601;

export function encodeFrame(msg: JsonRpcRequest | JsonRpcNotification | JsonRpcResponse): string {
  return `${JSON.stringify(msg)}\n`;
}

/** Classifies one parsed line. Returns a reason string for anything that is not a JSON-RPC frame. */
export function classify(value: unknown): Frame | string {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "not a JSON object";
  const msg = value as Record<string, unknown>;
  if (msg.jsonrpc !== "2.0") return 'missing "jsonrpc":"2.0"';
  const hasId = "id" in msg && msg.id !== undefined;
  if (typeof msg.method === "string") {
    if (hasId) {
      if (typeof msg.id !== "number" && typeof msg.id !== "string") return "request id must be a number or string";
      return { kind: "request", msg: msg as unknown as JsonRpcRequest };
    }
    return { kind: "notification", msg: msg as unknown as JsonRpcNotification };
  }
  if (hasId && ("result" in msg || "error" in msg)) return { kind: "response", msg: msg as unknown as JsonRpcResponse };
  return "neither a request, a notification nor a response";
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Splits a byte stream into lines without copying bodies twice: chunks are kept as they arrive and
 * joined once per line. A line longer than `maxLineBytes` is dropped whole rather than buffered
 * without bound: `onOverflow` hears of it as soon as it passes the limit (with the bytes seen so
 * far), and the rest of it is skipped.
 */
export class LineSplitter {
  #parts: Buffer[] = [];
  #size = 0;
  #skipping = false;
  #handOff: ((rest: Buffer) => void) | undefined;

  constructor(
    readonly maxLineBytes: number,
    readonly onLine: (line: Buffer) => void,
    readonly onOverflow: (bytes: number) => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(LF, start);
      if (nl === -1) {
        this.#append(chunk, start, chunk.length);
        return;
      }
      this.#append(chunk, start, nl);
      this.#emit();
      start = nl + 1;
      const handOff = this.#handOff;
      if (handOff) {
        this.#handOff = undefined;
        handOff(chunk.subarray(start));
        return;
      }
    }
  }

  /**
   * Called from inside `onLine`: the stream stops being lines right after the current one (protocol
   * v2's switch). The rest of the current chunk goes to `rest`; the caller routes later chunks.
   */
  handOff(rest: (remainder: Buffer) => void): void {
    this.#handOff = rest;
  }

  /** At end of stream: a last line without a newline still counts. */
  end(): void {
    if (this.#size > 0 || this.#parts.length > 0) this.#emit();
  }

  #append(chunk: Buffer, from: number, to: number): void {
    if (to <= from) return;
    this.#size += to - from;
    if (this.#skipping) return;
    if (this.#size > this.maxLineBytes) {
      this.#skipping = true;
      this.#parts = [];
      this.onOverflow(this.#size);
      return;
    }
    this.#parts.push(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to));
  }

  #emit(): void {
    const size = this.#size;
    const parts = this.#parts;
    const skipped = this.#skipping;
    this.#parts = [];
    this.#size = 0;
    this.#skipping = false;
    if (skipped) return;
    let line = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
    if (line.length > 0 && line[line.length - 1] === CR) line = line.subarray(0, line.length - 1);
    if (line.length > 0) this.onLine(line);
  }
}
