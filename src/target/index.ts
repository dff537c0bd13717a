// Request-target normalization: the one place that decides what path a request is for.
// Every routing decision (reserved prefix or plugin prefix) is made on the path returned here, so
// two spellings of one resource must come out identical, and anything ambiguous is refused (400)
// rather than guessed at. Rules: ./README.md.

export type Target =
  // query: raw text after the first '?', without it; "" if none. authority: set for absolute-form.
  { ok: true; path: string; query: string; authority?: string } | { ok: false; reason: string }; // → 400; reason is for logs

type Fail = { ok: false; reason: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const QUESTION = 0x3f;
const HASH = 0x23;
const BACKSLASH = 0x5c;
const HEX = "0123456789ABCDEF";

function fail(reason: string): Fail {
  return { ok: false, reason };
}

/** Rule 2: control chars, space, DEL, non-ASCII, '#' and '\' are refused anywhere in the target. */
function forbidden(c: number): boolean {
  return c <= 0x20 || c >= 0x7f || c === HASH || c === BACKSLASH;
}

function badChar(raw: string, i: number): Fail {
  return fail(`forbidden character 0x${raw.charCodeAt(i).toString(16)} at ${i}`);
}

/** ALPHA / DIGIT / '-' / '.' / '_' / '~' (RFC 3986 §2.3): their encodings mean the same as the char. */
function unreserved(c: number): boolean {
  return (
    (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT || c === 0x5f || c === 0x7e
  );
}

/** Encodings we refuse: '/' and '\' would let one segment pose as two; controls are hostile. */
function refusedEscape(v: number): boolean {
  return v < 0x20 || v === 0x7f || v === SLASH || v === BACKSLASH;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20; // ASCII lower-case
  return l >= 0x61 && l <= 0x66 ? l - 0x57 : -1;
}

/** True when raw[i] is '%' starting an escape already in final form (upper-case hex, kept as is). */
function canonicalEscape(raw: string, i: number): boolean {
  const a = raw.charCodeAt(i + 1); // NaN past the end: not hex
  const b = raw.charCodeAt(i + 2);
  if (!(a >= 0x30 && a <= 0x39) && !(a >= 0x41 && a <= 0x46)) return false;
  if (!(b >= 0x30 && b <= 0x39) && !(b >= 0x41 && b <= 0x46)) return false;
  const v = hexValue(a) * 16 + hexValue(b);
  return !unreserved(v) && !refusedEscape(v);
}

/** A segment that normalization would remove or change: "", "." or "..". */
function dotOrEmpty(raw: string, from: number, to: number): boolean {
  const n = to - from;
  return n === 0 || (n <= 2 && raw.charCodeAt(from) === DOT && raw.charCodeAt(to - 1) === DOT);
}

/** Normalize a raw HTTP/1.1 request-target (node's req.url, exactly as received). */
export function normalizeTarget(raw: string): Target {
  if (raw.charCodeAt(0) !== SLASH) {
    const absolute = absoluteToOrigin(raw);
    if ("ok" in absolute) return absolute;
    const target = normalizeTarget(absolute.origin);
    return target.ok ? { ...target, authority: absolute.authority } : target;
  }
  // One pass: validate every char (rule 2), find the query, and note whether the path is already
  // in final form, so the common case returns slices of `raw` without building anything.
  const len = raw.length;
  let q = -1;
  let clean = true;
  let segStart = 1;
  for (let i = 1; i < len; i++) {
    const c = raw.charCodeAt(i);
    if (forbidden(c)) return badChar(raw, i);
    if (q >= 0) continue; // query: rule 2 only
    if (c === SLASH) {
      if (clean && dotOrEmpty(raw, segStart, i)) clean = false;
      segStart = i + 1;
    } else if (c === PERCENT) {
      if (clean && !canonicalEscape(raw, i)) clean = false;
    } else if (c === QUESTION) {
      q = i;
    }
  }
  const pathEnd = q >= 0 ? q : len;
  // The last segment may be empty (trailing slash, or the root) but not "." or "..".
  if (clean && pathEnd - segStart > 0 && dotOrEmpty(raw, segStart, pathEnd)) clean = false;
  const query = q >= 0 ? raw.slice(q + 1) : "";
  if (clean) return { ok: true, path: q >= 0 ? raw.slice(0, q) : raw, query };
  const path = normalizePath(raw, pathEnd);
  return typeof path === "string" ? { ok: true, path, query } : path;
}

/**
 * absolute-form ("http://host/p?q", scheme case-insensitive) → origin-form ("/p?q") and its
 * authority. The authority is checked by rule 2 and must be non-empty; whether it agrees with Host
 * is the gateway's to judge.
 */
function absoluteToOrigin(raw: string): { origin: string; authority: string } | Fail {
  const lower = raw.slice(0, 8).toLowerCase();
  const start = lower.startsWith("http://") ? 7 : lower.startsWith("https://") ? 8 : -1;
  if (start < 0) return fail("request-target is neither origin-form nor http(s) absolute-form");
  let i = start;
  for (; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === SLASH || c === QUESTION) break;
    if (forbidden(c)) return badChar(raw, i);
  }
  if (i === start) return fail("absolute-form without a host");
  const authority = raw.slice(start, i);
  if (i === raw.length) return { origin: "/", authority };
  return { origin: raw.charCodeAt(i) === SLASH ? raw.slice(i) : `/${raw.slice(i)}`, authority };
}

/**
 * The slow path, for raw[0, end) (starts with '/', chars already validated): decode unreserved
 * escapes and upper-case the rest, then collapse '/' runs and resolve dot-segments (RFC 3986
 * §5.2.4) on whole segments. Decoding comes first so "%2e%2e" is a '..' like any other.
 */
function normalizePath(raw: string, end: number): string | Fail {
  const out: string[] = [];
  let trailingSlash = false;
  let seg = ""; // the current segment, decoded up to `from`
  let from = 1;
  for (let i = 1; i <= end; i++) {
    const c = i < end ? raw.charCodeAt(i) : SLASH; // a virtual '/' closes the last segment
    if (c === PERCENT) {
      const a = hexValue(raw.charCodeAt(i + 1));
      const b = hexValue(raw.charCodeAt(i + 2));
      if (i + 2 >= end || a < 0 || b < 0) return fail(`malformed percent-encoding at ${i}`);
      const v = a * 16 + b;
      const encoded = `%${HEX.charAt(a)}${HEX.charAt(b)}`;
      if (refusedEscape(v)) return fail(`refused percent-encoding ${encoded} at ${i}`);
      seg += raw.slice(from, i) + (unreserved(v) ? String.fromCharCode(v) : encoded);
      i += 2;
      from = i + 1;
    } else if (c === SLASH) {
      seg += raw.slice(from, i);
      from = i + 1;
      const last = i === end;
      if (seg === "" || seg === ".") {
        // Empty segments collapse and "." vanishes; either one last still leaves the trailing '/'.
        if (last) trailingSlash = true;
      } else if (seg === "..") {
        if (out.length === 0) return fail("'..' climbs above the root");
        out.pop();
        if (last) trailingSlash = true;
      } else {
        out.push(seg);
      }
      seg = "";
    }
  }
  if (out.length === 0) return "/";
  return `/${out.join("/")}${trailingSlash ? "/" : ""}`;
}

/**
 * True when `path` is inside `prefix` on whole segments: path === prefix or path starts with
 * prefix + "/". Prefix has no trailing slash ("" or "/" stand for the root and contain every path).
 */
export function underPrefix(path: string, prefix: string): boolean {
  if (prefix === "" || prefix === "/") return path.charCodeAt(0) === SLASH;
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === SLASH);
}
