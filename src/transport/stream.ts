/**
 * The transport over a pair of Node streams: a child's stdout and stdin on portico's side, the
 * process's own stdin and stdout on the plugin's side (the SDK).
 */
import type { Readable, Writable } from "node:stream";
import type { Transport, TransportHandlers } from "./index.js";

/** Bytes queued on the writable past which writers wait for 'drain'. */
const HIGH_WATER = 1024 * 1024;

export function streamTransport(input: Readable, output: Writable): Transport {
  const write = tickWriter(output);
  // EPIPE when the peer is gone: whoever watches the process reports it.
  output.on("error", () => {});
  return {
    write,
    end: () => {
      if (!output.destroyed) output.end();
    },
    get backlog() {
      return output.writableLength;
    },
    attach(h: TransportHandlers) {
      input.on("data", (chunk: Buffer) => h.data(chunk));
      input.on("end", () => h.end());
      output.on("drain", () => h.drain());
    },
  };
}

/**
 * Writes over a Node writable: chunks written in one turn of the event loop leave in one write
 * (writev), and the writable's own backpressure is passed on. setImmediate, not nextTick: requests
 * arriving on many connections in one poll phase then share a system call.
 */
export function tickWriter(out: Writable): (chunks: readonly (Buffer | string)[]) => boolean {
  let corked = false;
  return (chunks) => {
    if (out.destroyed || out.writableEnded) return true;
    if (!corked) {
      corked = true;
      out.cork();
      setImmediate(() => {
        corked = false;
        out.uncork();
      });
    }
    for (const c of chunks) out.write(c);
    // Not write()'s verdict: while corked it says "wait" past 16 KiB, which a turn's worth of small
    // responses for many streams easily is. Flow control already bounds each stream; the transport
    // only has to stop the writers when a real backlog builds up.
    return out.writableLength < HIGH_WATER;
  };
}
