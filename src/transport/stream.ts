/**
 * The transport over a pair of Node streams: a child's stdout and stdin on portico's side, the
 * process's own stdin and stdout on the plugin's side (the SDK).
 */
import type { Readable, Writable } from "node:stream";
import type { Transport, TransportHandlers } from "./index.js";

/** Bytes queued on the writable past which writers wait for 'drain'. */
const HIGH_WATER = 1024 * 1024;
/** Bytes read from one peer in one turn of the event loop before its reading waits for the next. */
export const READ_BUDGET = 256 * 1024;
/**
 * Milliseconds spent handling one peer's bytes in one turn before its reading waits for the next.
 * Bytes alone don't bound the time: 256 KiB of body frames is a copy, 256 KiB of short JSON-RPC
 * lines is 2,400 parses and answers, measured at 10–28 ms (a plugin flooding requests held a
 * bystander's answers back by as much).
 */
export const READ_TIME_BUDGET_MS = 4;

export function streamTransport(input: Readable, output: Writable): Transport {
  const write = tickWriter(output);
  let reader: { holdFor(ms: number): void } | undefined;
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
    holdInput(ms: number) {
      reader?.holdFor(ms);
    },
    get taken() {
      // A pipe or socket counts what reached the OS; any other writable, what was written to it.
      return (output as { bytesWritten?: number }).bytesWritten ?? 0;
    },
    attach(h: TransportHandlers) {
      reader = readFairly(input, (chunk) => h.data(chunk));
      input.on("end", () => h.end());
      output.on("drain", () => h.drain());
    },
  };
}

/**
 * Reads `input` a budget at a time: libuv reads a ready pipe up to 32 times in a row (2 MiB) before
 * anything else runs, so a peer flooding its output would hold the event loop for as long as it
 * takes to handle all that. Past READ_BUDGET bytes, or READ_TIME_BUDGET_MS of handling them, in one
 * turn, reading pauses until the next turn (what arrives meanwhile waits in the stream's buffer,
 * then the pipe), and everyone else gets theirs.
 * `holdFor(ms)` stops reading for a while: the peer's writes then block, which is how a peer whose
 * output is being thrown away (a log flood) is slowed down at its source.
 */
export function readFairly(input: Readable, onData: (chunk: Buffer) => void): { holdFor(ms: number): void } {
  let taken = 0;
  let spent = 0;
  let turnEnds = false;
  let overBudget = false;
  let heldUntil = 0;
  let holdTimer: NodeJS.Timeout | undefined;
  const update = () => {
    if (overBudget || heldUntil > Date.now()) input.pause();
    else input.resume();
  };
  const nextTurn = () => {
    turnEnds = false;
    taken = 0;
    spent = 0;
    overBudget = false;
    update();
  };
  input.on("data", (chunk: Buffer) => {
    if (!turnEnds) {
      turnEnds = true;
      setImmediate(nextTurn);
    }
    const started = performance.now();
    onData(chunk);
    spent += performance.now() - started;
    taken += chunk.length;
    if ((taken >= READ_BUDGET || spent >= READ_TIME_BUDGET_MS) && !overBudget) {
      overBudget = true;
      update();
    }
  });
  return {
    holdFor(ms) {
      if (heldUntil > Date.now() || input.destroyed) return;
      heldUntil = Date.now() + ms;
      update();
      clearTimeout(holdTimer);
      holdTimer = setTimeout(update, ms + 1);
      holdTimer.unref();
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
