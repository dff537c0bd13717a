/**
 * The current time as an ISO 8601 string (what `new Date().toISOString()` gives), formatted once
 * per millisecond: a busy daemon stamps several lines and messages per request, many in the same
 * millisecond, and formatting a Date is most of what each stamp costs.
 */
let lastMs = -1;
let lastIso = "";

export function isoNow(): string {
  const ms = Date.now();
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}
