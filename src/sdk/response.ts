/**
 * A `Response` without the WHATWG object's fixed costs, for the commonest answer: a whole body
 * (a string, bytes or nothing) and a status.
 *
 * undici's Response wraps every body in a ReadableStream at construction (a stream, its
 * controller, a transferable brand), which the SDK then never reads: it takes the bytes as they
 * are. That is a good part of the plugin's CPU per small request and of its garbage. While
 * `serve()` runs, the global `Response` is this class: it keeps the body and init as given and
 * builds undici's Response only when something beyond status, headers and the bytes is asked for
 * (`body`, `text()`, `clone()`, …). Instances are `instanceof Response`, as are undici's own
 * Responses (from `fetch`, `Response.json`), so code checking either way keeps working. Any other
 * body (a stream, a Blob, form data) is handed to undici's Response at once.
 */

const Native = globalThis.Response;
const light = Symbol("portico.response");
const TEXT_PLAIN = "text/plain;charset=UTF-8";

type WholeBody = string | Uint8Array | ArrayBuffer | null | undefined;

interface LightState {
  body: WholeBody;
  status: number;
  statusText: string;
  headers: Headers | undefined;
  init: ResponseInit | undefined;
  /** undici's Response, once something needed it. */
  real: Response | undefined;
}

const isWhole = (body: unknown): body is WholeBody =>
  body == null || typeof body === "string" || body instanceof Uint8Array || body instanceof ArrayBuffer;

/** The statuses fetch's Response accepts (the spec's range), minus those that may carry no body. */
const simpleStatus = (status: number, hasBody: boolean) =>
  Number.isInteger(status) && status >= 200 && status <= 599 && !(hasBody && (status === 204 || status === 205 || status === 304));

class LightResponse {
  declare [light]: LightState;

  constructor(body?: ConstructorParameters<typeof Response>[0], init?: ResponseInit) {
    const status = init?.status ?? 200;
    const statusText = init?.statusText;
    if (isWhole(body) && simpleStatus(status, body != null) && (statusText === undefined || statusText === "")) {
      // Headers are checked now, as undici's constructor would: a bad name throws here, not later.
      const headers = init?.headers === undefined ? undefined : new Headers(init.headers);
      // Bytes are copied, as undici does: the caller may reuse its buffer once it has returned.
      const copy = body instanceof ArrayBuffer ? body.slice(0) : body instanceof Uint8Array ? Uint8Array.prototype.slice.call(body) : body;
      this[light] = { body: copy, status, statusText: "", headers, init, real: undefined };
      return;
    }
    // Anything else is undici's to validate and carry, from the start.
    this[light] = { body: undefined, status, statusText: "", headers: undefined, init, real: new Native(body, init) };
  }

  get status(): number {
    const s = this[light];
    return s.real ? s.real.status : s.status;
  }
  get ok(): boolean {
    const status = this.status;
    return status >= 200 && status <= 299;
  }
  get statusText(): string {
    const s = this[light];
    return s.real ? s.real.statusText : s.statusText;
  }
  get headers(): Headers {
    const s = this[light];
    if (s.real) return s.real.headers;
    if (!s.headers) s.headers = new Headers();
    if (typeof s.body === "string" && !s.headers.has("content-type")) s.headers.set("content-type", TEXT_PLAIN);
    return s.headers;
  }
  get type(): Response["type"] {
    const s = this[light];
    return s.real ? s.real.type : "default";
  }
  get url(): string {
    const s = this[light];
    return s.real ? s.real.url : "";
  }
  get redirected(): boolean {
    const s = this[light];
    return s.real ? s.real.redirected : false;
  }
  get bodyUsed(): boolean {
    const s = this[light];
    return s.real ? s.real.bodyUsed : false;
  }
}

/** Everything else is undici's Response's, built on first use. */
for (const key of Reflect.ownKeys(Native.prototype)) {
  if (key === "constructor" || Object.hasOwn(LightResponse.prototype, key)) continue;
  const desc = Object.getOwnPropertyDescriptor(Native.prototype, key);
  if (!desc) continue;
  if (typeof desc.value === "function") {
    Object.defineProperty(LightResponse.prototype, key, {
      value(this: LightResponse, ...args: unknown[]) {
        const r = realOf(this) as unknown as Record<PropertyKey, (...a: unknown[]) => unknown>;
        return r[key]?.apply(r, args);
      },
      writable: true,
      configurable: true,
    });
  } else if (desc.get) {
    Object.defineProperty(LightResponse.prototype, key, {
      get(this: LightResponse) {
        return (realOf(this) as unknown as Record<PropertyKey, unknown>)[key];
      },
      configurable: true,
    });
  }
}
Object.setPrototypeOf(LightResponse.prototype, Native.prototype);
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
    const headers = s.headers ?? s.init?.headers;
    s.real = new Native(s.body, { status: s.status, headers });
    s.body = undefined;
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

/** While serve() runs, `Response` is the light one (unless the plugin asked otherwise). */
export function useLightResponses(): void {
  if (globalThis.Response === Native) globalThis.Response = LightResponse as unknown as typeof Response;
}

export { LightResponse };
