import { type LevelWithSilent, type Logger, pino } from "pino";

export type { Logger };
export const LOG_LEVELS: readonly LevelWithSilent[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface LogOptions {
  level?: LevelWithSilent;
  /** Human-readable lines; defaults to whether stdout is a terminal. */
  pretty?: boolean;
}

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
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ sync: false }));
}

export const silentLogger: Logger = pino({ level: "silent" });
