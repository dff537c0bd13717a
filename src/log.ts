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

/**
 * Lines gather in memory and go out together once the current event-loop turn is over: a busy
 * daemon pays one write for all the lines of a turn instead of one per line (and one copy of them,
 * where sonic-boom measuring each line flattened it first), and a quiet one still writes each line
 * at once. On exit, lines still here are handed over and everything is written synchronously, so
 * a clean shutdown loses none.
 */
function batched(destination: ReturnType<typeof pino.destination>) {
  let lines: string[] = [];
  // sonic-boom writes what it is given at once, or right after the write in progress: nothing
  // needs flushing. (Its minLength would hold lines back, but strands them when a flush comes
  // while a write is in progress; and a flush with a callback costs an fsync.)
  const pass = () => {
    if (lines.length === 0) return;
    const text = lines.length === 1 ? (lines[0] as string) : lines.join("");
    lines = [];
    destination.write(text);
  };
  // Synchronous, for the exit: handing the lines to sonic-boom could start an asynchronous write
  // that the process does not live to finish, so they are written here, after what it holds.
  const flushSync = () => {
    destination.flushSync();
    if (lines.length === 0) return;
    const text = lines.join("");
    lines = [];
    writeAllSync(STDOUT, Buffer.from(text));
  };
  process.once("exit", flushSync);
  return {
    write(line: string): boolean {
      if (lines.push(line) === 1) setImmediate(pass);
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
