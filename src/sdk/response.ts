/**
 * A `Response` without the WHATWG object's fixed costs, for the commonest answer: a whole body
 * (a string, bytes or nothing) and a status.
 *
 * undici's Response wraps every body in a ReadableStream at construction (a stream, its
 * controller, a transferable brand), which the SDK then never reads: it takes the bytes as they
 * are. That is a good part of the plugin's CPU per small request and of its garbage. Once
 * `serve()` has been called, the global `Response` is this class: it keeps the body, status and
 * headers as given and builds undici's Response only when something beyond `status`, `ok`,
 * `statusText`, `type`, `url`, `redirected` and `bodyUsed` is asked for (`headers`, `body`,
 * `text()`, `clone()`, …); the SDK reads the headers without building it. Instances are
 * `instanceof Response`, as are undici's own Responses (from `fetch`, `Response.json`). Any other
 * body (a stream, a Blob, form data), or an init undici would have to judge, goes to undici's
 * Response at once.
 */

import { handOff } from "./lazy.js";

const Native = globalThis.Response;
const light = Symbol("portico.response");
const TEXT_PLAIN = "text/plain;charset=UTF-8";

type WholeBody = string | Uint8Array | ArrayBuffer | null | undefined;

interface LightState {
  body: WholeBody;
  status: number;
  /** The init's headers, checked and copied at construction; made on first need when none. */
  headers: Headers | undefined;
  /** undici's Response, once something needed it. */
  real: Response | undefined;
}

/** A body kept as given: a string, a Uint8Array (not another typed array), an ArrayBuffer, none. */
const isWhole = (body: unknown): body is WholeBody =>
  body == null ||
  typeof body === "string" ||
  (body instanceof Uint8Array && body.constructor === Uint8Array) ||
  Buffer.isBuffer(body) ||
  body instanceof ArrayBuffer;

/** An init with nothing for undici to judge but headers: a plain status in range, no status text. */
function simpleInit(init: unknown, hasBody: boolean): init is ResponseInit | undefined {
  if (init === undefined) return true;
  if (typeof init !== "object" || init === null) return false;
  const { status, statusText } = init as ResponseInit;
  if (statusText !== undefined && statusText !== "") return false;
  if (status === undefined) return true;
  return (
    typeof status === "number" &&
    Number.isInteger(status) &&
    status >= 200 &&
    status <= 599 &&
    !(hasBody && (status === 204 || status === 205 || status === 304))
  );
}

class LightResponse {
  declare [light]: LightState;

  constructor(body?: ConstructorParameters<typeof Response>[0], init?: ResponseInit) {
    if (isWhole(body) && simpleInit(init, body != null)) {
      // Headers are checked and copied now, as undici's constructor would: a bad name throws here.
      const headers = init?.headers === undefined ? undefined : withDefaultType(new Headers(init.headers), body);
      // Bytes are copied, as undici does: the caller may reuse its buffer once it has returned.
      const copy = body instanceof ArrayBuffer ? body.slice(0) : body instanceof Uint8Array ? Uint8Array.prototype.slice.call(body) : body;
      this[light] = { body: copy, status: init?.status ?? 200, headers, real: undefined };
      return;
    }
    // Anything else is undici's to judge and carry, from the start.
    this[light] = { body: undefined, status: 0, headers: undefined, real: new Native(body, init) };
  }
}

/** undici adds a content type for a string body the headers don't type. */
function withDefaultType(headers: Headers, body: WholeBody): Headers {
  if (typeof body === "string" && !headers.has("content-type")) headers.set("content-type", TEXT_PLAIN);
  return headers;
}

/** What a light Response answers itself; `undefined` from one of these means "ask undici's". */
const ANSWERS: Record<string, (s: LightState) => unknown> = {
  status: (s) => s.status,
  ok: (s) => s.status >= 200 && s.status <= 299,
  statusText: () => "",
  type: () => "default",
  url: () => "",
  redirected: () => false,
  bodyUsed: () => false,
};

// What it answers itself while light; undici's Response behind it answers once built, and on
// undici's own Responses (Response.prototype.status called on a fetched one) undici's own.
for (const [key, answer] of Object.entries(ANSWERS)) {
  const get = Object.getOwnPropertyDescriptor(Native.prototype, key)?.get as (this: Response) => unknown;
  Object.defineProperty(LightResponse.prototype, key, {
    get(this: LightResponse) {
      const s = this[light];
      if (!s) return get.call(this as unknown as Response);
      return s.real ? get.call(s.real) : answer(s);
    },
    configurable: true,
  });
}
// Everything else is undici's Response's (built on first use; undici's own Responses are their own).
handOff(LightResponse.prototype, Native.prototype, (self: LightResponse) => (self[light] ? realOf(self) : self));
// Response.json(), Response.redirect(), Response.error() stay undici's.
Object.setPrototypeOf(LightResponse, Native);
Object.defineProperty(LightResponse, "name", { value: "Response" });
Object.defineProperty(LightResponse, Symbol.hasInstance, {
  value(this: unknown, value: unknown): boolean {
    // `x instanceof Response` holds for undici's Responses as for these; a subclass is itself.
    if (this !== LightResponse) return Function.prototype[Symbol.hasInstance].call(this, value);
    return value instanceof Native;
  },
});

function realOf(response: LightResponse): Response {
  const s = response[light];
  if (!s.real) {
    s.real = new Native(s.body, { status: s.status, headers: s.headers });
    s.body = undefined;
    s.headers = undefined;
  }
  return s.real;
}

function stateOf(response: Response): LightState | undefined {
  const s = (response as unknown as { [light]?: LightState })[light];
  return s && !s.real ? s : undefined;
}

/** undici's Response behind this one: itself, or a light one's once built; undefined while light. */
export function underlying(response: Response): Response | undefined {
  const s = (response as unknown as { [light]?: LightState })[light];
  return s ? s.real : response;
}

/** The response's headers, read without building undici's Response for a light one. */
export function responseHeaders(response: Response): Headers {
  const s = stateOf(response);
  if (!s) return response.headers;
  s.headers ??= withDefaultType(new Headers(), s.body);
  return s.headers;
}

/** The bytes of a light Response's body as given (null: it has none), or undefined if it is not light. */
export function lightBody(response: Response): Buffer | null | undefined {
  const s = stateOf(response);
  if (!s) return undefined;
  const b = s.body;
  if (b == null) return null;
  if (typeof b === "string") return Buffer.from(b);
  if (b instanceof Uint8Array) return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  return Buffer.from(b);
}

/** From now on `Response` is the light one (unless the plugin asked otherwise). */
export function useLightResponses(): void {
  if (globalThis.Response === Native) globalThis.Response = LightResponse as unknown as typeof Response;
}

export { LightResponse };
