/**
 * What a plugin makes portico log (its stderr, stray lines on its stdout) is capped per second:
 * lines over the cap are counted, not kept, and summed up in one line once a second. A plugin
 * flooding its output then costs the daemon a counter, not memory and event-loop time.
 */
import type { Logger } from "../log.js";

/**
 * Logs one line if the allowance has room, and says whether it did. `line` is only called then: a
 * dropped line costs no string building.
 */
export type LogLine = (level: "info" | "warn" | "error", line: () => [fields: Record<string, unknown>, msg: string]) => boolean;

/**
 * A token bucket: says whether one more event fits in `perSecond`, with bursts of up to one
 * second's worth, then the steady rate.
 */
export function perSecondAllowance(perSecond: number): () => boolean {
  let tokens = perSecond;
  let refilled = Date.now();
  return () => {
    const now = Date.now();
    tokens = Math.min(perSecond, tokens + ((now - refilled) * perSecond) / 1000);
    refilled = now;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}

export function limitedLog(log: Logger, perSecond: number): LogLine {
  const allowed = perSecondAllowance(perSecond);
  let dropped = 0;
  let summary: NodeJS.Timeout | undefined;
  const report = () => {
    summary = undefined;
    if (dropped === 0) return;
    log.warn({ dropped, maxPerSecond: perSecond }, `plugin output over max_log_lines_per_second: ${dropped} lines dropped`);
    dropped = 0;
  };
  return (level, line) => {
    if (allowed()) {
      const [fields, msg] = line();
      log[level](fields, msg);
      return true;
    }
    dropped++;
    if (!summary) {
      summary = setTimeout(report, 1000);
      summary.unref();
    }
    return false;
  };
}
