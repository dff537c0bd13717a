/** RFC 3986 unreserved characters: a segment made only of these means the same thing raw or decoded. */
const UNRESERVED_SEGMENT = /^[A-Za-z0-9._~-]+$/;

/**
 * The check used for mount prefixes, shared with the router. Returns an error message (worded to
 * follow the offending value, e.g. `"/x/" must not end with '/'`) or undefined when acceptable.
 *
 * Accepting only unreserved characters means a prefix never depends on how the request target was
 * encoded, so the router can compare decoded, normalized paths segment by segment.
 */
export function mountPrefixProblem(prefix: string): string | undefined {
  if (prefix === "") return "must not be empty";
  if (!prefix.startsWith("/")) return "must start with '/'";
  if (/[?#]/.test(prefix)) return "must not contain '?' or '#' (a prefix is a path, not a query or fragment)";
  if (prefix === "/") {
    return 'must not be "/": it would shadow the whole surface, including the daemon\'s reserved prefixes';
  }
  if (prefix.endsWith("/")) return "must not end with '/' (a prefix matches whole segments, so the '/' is implied)";
  const segments = prefix.slice(1).split("/");
  if (segments.includes("")) return "must not contain empty segments ('//')";
  if (segments.some((s) => s === "." || s === "..")) return "must not contain '.' or '..' segments";
  const bad = segments.find((s) => !UNRESERVED_SEGMENT.test(s));
  if (bad !== undefined) {
    return (
      `must use only letters, digits, '-', '.', '_' and '~' in each segment ` +
      `(no percent-encoding, spaces or backslashes); segment ${JSON.stringify(bad)} does not`
    );
  }
  return undefined;
}

/**
 * A prefix that passes mountPrefixProblem and stays as close as possible to what was written, for
 * "fix:" hints. `fallback` (a plugin id, normally) is used when nothing of the input survives.
 */
export function suggestMountPrefix(prefix: string, fallback = "my_plugin"): string {
  const pathPart = prefix.split(/[?#]/, 1)[0] ?? "";
  const segments = pathPart
    .split(/[\\/]+/)
    .map((s) => safeDecode(s).replace(/[^A-Za-z0-9._~-]+/g, "_"))
    .filter((s) => s !== "" && s !== "." && s !== "..");
  return `/${segments.length > 0 ? segments.join("/") : fallback}`;
}

function safeDecode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment; // malformed %-escape: the replace step above turns the '%' into '_'
  }
}
