/**
 * The access log: one line per request answered. It is the one log line every request pays for,
 * so with a logger from createLogger (plain JSON lines) it is written out by hand, in exactly the
 * shape pino gives the same object, rather than through pino's generic serializer; with any other
 * logger (pretty printing, a library caller's own) it goes through the logger like any line.
 */
import { isoNow } from "../clock.js";
import { type Logger, lineWriterOf } from "../log.js";

export interface AccessEntry {
  reqId: string;
  method: string | undefined;
  path: string | undefined;
  /** Undefined for portico's own answers (no route, /health, …). */
  plugin: string | undefined;
  status: number;
  websocket: boolean | undefined;
  ms: number;
}

/** pino's numeric level for info. */
const INFO = 30;

/** A function that logs one entry at info, if info is enabled. */
export function accessLogger(log: Logger): (entry: AccessEntry) => void {
  const write = lineWriterOf(log);
  if (!write) {
    return (entry) => {
      if (log.isLevelEnabled("info")) log.info(entry, "request");
    };
  }
  return (entry) => {
    if (log.isLevelEnabled("info")) write(accessLine(entry, isoNow()));
  };
}

/** The line pino writes for `log.info(entry, "request")` (isoTime, no base fields), at `time`. */
export function accessLine(e: AccessEntry, time: string): string {
  let line = `{"level":${INFO},"time":"${time}","reqId":${JSON.stringify(e.reqId)}`;
  if (e.method !== undefined) line += `,"method":${JSON.stringify(e.method)}`;
  if (e.path !== undefined) line += `,"path":${JSON.stringify(e.path)}`;
  if (e.plugin !== undefined) line += `,"plugin":${JSON.stringify(e.plugin)}`;
  line += `,"status":${e.status}`;
  if (e.websocket !== undefined) line += `,"websocket":${e.websocket}`;
  return `${line},"ms":${e.ms},"msg":"request"}\n`;
}
