/** A portico process's log as the tests read it: one JSON object per line, anything else kept as `msg`. */
export type LogLine = Record<string, unknown>;

/** A 'data' listener that appends each complete line of the stream to `into`. */
export function collectLogLines(into: LogLine[]): (chunk: Buffer) => void {
  let pending = "";
  return (chunk) => {
    pending += chunk.toString();
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      try {
        into.push(JSON.parse(line) as LogLine);
      } catch {
        into.push({ msg: line });
      }
    }
  };
}
