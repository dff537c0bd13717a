import { type LevelWithSilent, type Logger, pino } from "pino";

export type { Logger };
export const LOG_LEVELS: readonly LevelWithSilent[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface LogOptions {
  level?: LevelWithSilent;
  /** Human-readable lines; defaults to whether stdout is a terminal. */
  pretty?: boolean;
}

/** Below sonic-boom's largest single write (16 KiB), which it requires. */
const MIN_WRITE = 8 * 1024;

const noop = () => {};

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
  return pino(
    { level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime },
    batched(pino.destination({ sync: false, minLength: MIN_WRITE })),
  );
}

/**
 * Lines gather in memory and go out together once the current event-loop turn is over (or once
 * MIN_WRITE bytes wait): a busy daemon pays one write for all the access lines of a turn instead
 * of one per line, and a quiet one still writes each line at once. sonic-boom writes what it holds
 * synchronously when the process exits, so a clean shutdown loses none.
 */
function batched(destination: ReturnType<typeof pino.destination>) {
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    destination.flush(noop);
  };
  return {
    write(line: string): boolean {
      const ok = destination.write(line);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
      return ok;
    },
    flush(cb?: (err?: Error) => void) {
      destination.flush(cb ?? noop);
    },
    flushSync() {
      destination.flushSync();
    },
  };
}

export const silentLogger: Logger = pino({ level: "silent" });
