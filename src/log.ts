import { writeSync } from "node:fs";
import { type LevelWithSilent, type Logger, pino } from "pino";

export type { Logger };
export const LOG_LEVELS: readonly LevelWithSilent[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface LogOptions {
  level?: LevelWithSilent;
  /** Human-readable lines; defaults to whether stdout is a terminal. */
  pretty?: boolean;
}

const noop = () => {};
const STDOUT = 1;

/** Structured JSON lines (pino); pretty-printed on a terminal. */
export function createLogger(opts: LogOptions = {}): Logger {
  const level = opts.level ?? "info";
  const pretty = opts.pretty ?? process.stdout.isTTY === true;
  if (pretty) {
    return pino({
      level,
      base: undefined,
      transport: {
        target: "pino-pretty",
        options: { colorize: true, translateTime: "HH:MM:ss.l", ignore: "pid,hostname", singleLine: true },
      },
    });
  }
  const out = batched(pino.destination({ dest: STDOUT, sync: false }));
  const logger = pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, out);
  lineWriters.set(logger, out.write);
  return logger;
}

/** Loggers made by createLogger that write plain JSON lines, and how to add a line of one's own. */
const lineWriters = new WeakMap<Logger, (line: string) => boolean>();

/**
 * For a logger made by createLogger that writes plain JSON lines: a way to hand it a whole line
 * formatted elsewhere (the access log, in pino's exact shape), in order with its other lines.
 * Undefined for any other logger (pretty printing, a library caller's own): use its methods.
 */
export function lineWriterOf(log: Logger): ((line: string) => boolean) | undefined {
  return lineWriters.get(log);
}

/** A busy daemon writes its log at most this often… */
const BUSY_INTERVAL_MS = 10;
/** …or as soon as this much is waiting. */
const BUSY_BYTES = 64 * 1024;

/**
 * Lines gather in memory and go out together: a quiet daemon writes each line at the end of the
 * event-loop turn that logged it, but once it has written in the last BUSY_INTERVAL_MS it waits out
 * the rest of that interval (or until BUSY_BYTES wait), so under load every write carries many
 * lines. Each write is a trip through libuv's thread pool, a copy of the text and a wake-up of the
 * loop; per turn of a busy loop that was a tenth of a small request's cost. On exit, lines still
 * here are handed over and everything is written synchronously, so a clean shutdown loses none.
 */
function batched(destination: ReturnType<typeof pino.destination>) {
  let lines: string[] = [];
  let bytes = 0;
  let scheduled = false;
  let lastWrite = Number.NEGATIVE_INFINITY;
  // sonic-boom writes what it is given at once, or right after the write in progress: nothing
  // needs flushing. (Its minLength would hold lines back, but strands them when a flush comes
  // while a write is in progress; and a flush with a callback costs an fsync.)
  const pass = () => {
    scheduled = false;
    if (lines.length === 0) return;
    const text = lines.length === 1 ? (lines[0] as string) : lines.join("");
    lines = [];
    bytes = 0;
    lastWrite = performance.now();
    destination.write(text);
  };
  const schedule = () => {
    scheduled = true;
    const wait = lastWrite + BUSY_INTERVAL_MS - performance.now();
    if (wait <= 0) setImmediate(pass);
    else setTimeout(pass, wait).unref();
  };
  // Synchronous, for the exit: handing the lines to sonic-boom could start an asynchronous write
  // that the process does not live to finish, so they are written here, after what it holds.
  const flushSync = () => {
    destination.flushSync();
    if (lines.length === 0) return;
    const text = lines.join("");
    lines = [];
    bytes = 0;
    writeAllSync(STDOUT, Buffer.from(text));
  };
  process.once("exit", flushSync);
  return {
    write(line: string): boolean {
      lines.push(line);
      bytes += line.length;
      if (bytes >= BUSY_BYTES) pass();
      else if (!scheduled) schedule();
      return true;
    },
    flush(cb?: (err?: Error) => void) {
      pass();
      destination.flush(cb ?? noop);
    },
    flushSync,
  };
}

/** Writes all of `buf`, waiting out a full pipe (EAGAIN) in short sleeps: for the exit only. */
function writeAllSync(fd: number, buf: Buffer): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let rest = buf; rest.length > 0; ) {
    try {
      rest = rest.subarray(writeSync(fd, rest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EAGAIN") return;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

export const silentLogger: Logger = pino({ level: "silent" });
