/**
 * The request's `Headers` without building them until needed. undici's Headers checks and stores
 * every pair on `append`, a few microseconds for a request's dozen headers, while most handlers
 * read one or two. These answer `get` and `has` from the wire's list as it came (portico has
 * already checked it) and fill the real Headers on first use of anything else: setting, deleting,
 * iterating, inspecting. They are `instanceof Headers` and behave as Headers made by `append`ing
 * each pair, refusing silently what Headers would refuse.
 */
import type { HeaderList } from "./http.js";
import { handOff } from "./lazy.js";

const pending = Symbol("portico.headers");

export class LightHeaders extends Headers {
  /** The pairs not yet appended: undefined once the real Headers are filled. */
  declare [pending]: HeaderList | undefined;

  constructor(list: HeaderList | undefined) {
    super();
    this[pending] = list?.length ? list : undefined;
  }
}

const nativeGet = Headers.prototype.get;

/** `get` and `has` read the pending list, when there is one, without filling. */
function lightGet(this: LightHeaders, name: string): string | null {
  const list = this[pending];
  // Checks the name as Headers would (a bad one throws); without a list it is the answer.
  const own = nativeGet.call(this, name);
  if (!list) return own;
  const wanted = name.toLowerCase();
  let found: string | null = null;
  for (const [k, v] of list) {
    if (k.length !== wanted.length || k.toLowerCase() !== wanted) continue;
    const value = normalized(v);
    // As Headers joins repeated values: cookies with "; ", the rest with ", ".
    if (value !== undefined) found = found === null ? value : `${found}${wanted === "cookie" ? "; " : ", "}${value}`;
  }
  return found;
}
Object.defineProperty(LightHeaders.prototype, "get", { value: lightGet, writable: true, configurable: true });
Object.defineProperty(LightHeaders.prototype, "has", {
  value(this: LightHeaders, name: string): boolean {
    return lightGet.call(this, name) !== null;
  },
  writable: true,
  configurable: true,
});

const isWhitespace = (c: number) => c === 9 || c === 10 || c === 13 || c === 32;

/**
 * The value as Headers would store it: HTTP whitespace trimmed from both ends; undefined if it
 * would refuse it, as headersOf then skips it.
 */
function normalized(value: string): string | undefined {
  let start = 0;
  let end = value.length;
  while (start < end && isWhitespace(value.charCodeAt(start))) start++;
  while (end > start && isWhitespace(value.charCodeAt(end - 1))) end--;
  for (let i = start; i < end; i++) {
    const c = value.charCodeAt(i);
    // A NUL, CR or LF is refused, and so is anything past Latin-1 (a header value is bytes).
    if (c === 0 || c === 10 || c === 13 || c > 255) return undefined;
  }
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/** Appends the pending pairs, once: from then on these are plain Headers. */
export function fill(headers: Headers): Headers {
  const h = headers as LightHeaders;
  const list = h[pending];
  if (!list) return headers;
  h[pending] = undefined;
  for (const [k, v] of list) {
    try {
      Headers.prototype.append.call(h, k, v);
    } catch {
      // A header the WHATWG Headers class refuses cannot be shown to the handler.
    }
  }
  return headers;
}

Object.defineProperty(LightHeaders, "name", { value: "Headers" });

// Everything else fills first, then is Headers' own.
handOff(LightHeaders.prototype, Headers.prototype, (self: LightHeaders) => fill(self));
