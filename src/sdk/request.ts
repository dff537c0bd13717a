/**
 * Requests and responses without the WHATWG objects' fixed costs on the hot path.
 *
 * Building a `Request` in Node 20 (undici) costs two AbortControllers, a Headers list and brand
 * bookkeeping, several microseconds per request; most handlers read only `method`, `url` and a
 * header or two. `lazyRequest` answers those from the wire head and builds the real Request only
 * when something else is asked for (the body, clone(), …). It is `instanceof Request`.
 */
import { fill, LightHeaders } from "./headers.js";
import { type RequestHead, urlOf } from "./http.js";
import { handOff } from "./lazy.js";
import { lightBody, underlying } from "./response.js";

const real = Symbol("portico.request");

interface LazyState {
  head: RequestHead;
  url: string;
  headers: Headers | undefined;
  body: ReadableStream<Uint8Array> | Uint8Array | undefined;
  /** Created on first use of `signal`. */
  controller: AbortController | undefined;
  /** Set when the exchange was cancelled before anyone asked for the signal. */
  abortReason: unknown;
  request: Request | undefined;
}

class LazyRequest {
  declare [real]: LazyState;

  get method(): string {
    return this[real].head.method;
  }
  get url(): string {
    return this[real].url;
  }
  get headers(): Headers {
    const s = this[real];
    s.headers ??= headersFor(s.head);
    return s.headers;
  }
  get signal(): AbortSignal {
    return signalOf(this[real]);
  }
}

/** Everything else is the real Request's, built on first use. */
handOff(LazyRequest.prototype, Request.prototype, (self: LazyRequest) => materialize(self[real]));

function headersFor(head: RequestHead): Headers {
  const headers = new LightHeaders(head.headers);
  if (head.upgrade === "websocket") {
    // portico strips hop-by-hop headers and says "upgrade" in the head instead; handlers (and
    // frameworks) look for the headers, so put them back.
    headers.set("upgrade", "websocket");
    headers.set("connection", "Upgrade");
  }
  return headers;
}

function signalOf(s: LazyState): AbortSignal {
  if (!s.controller) {
    s.controller = new AbortController();
    if (s.abortReason !== undefined) s.controller.abort(s.abortReason);
  }
  return s.controller.signal;
}

function materialize(s: LazyState): Request {
  if (!s.request) {
    const hasBody = s.body !== undefined;
    s.request = new Request(s.url, {
      method: s.head.method,
      headers: fill(s.headers ?? headersFor(s.head)),
      body: s.body,
      signal: signalOf(s),
      ...(hasBody ? { duplex: "half" } : {}),
    } as RequestInit);
  }
  return s.request;
}

export interface ExchangeRequest {
  request: Request;
  /** Aborts `request.signal` (now, or when it is first asked for). */
  abort(reason: unknown): void;
  readonly aborted: boolean;
}

/** A Request for the wire head; `body` is the request body (a stream in v2, bytes in v1), if any. */
export function lazyRequest(head: RequestHead, body: ReadableStream<Uint8Array> | Uint8Array | undefined): ExchangeRequest {
  const host = head.headers?.find(([k]) => k.length === 4 && k.toLowerCase() === "host")?.[1] ?? "localhost";
  const state: LazyState = {
    head,
    url: urlOf(head, host),
    headers: undefined,
    body,
    controller: undefined,
    abortReason: undefined,
    request: undefined,
  };
  const request = Object.create(LazyRequest.prototype) as LazyRequest;
  request[real] = state;
  return new Exchanging(request as unknown as Request, state);
}

/** An ExchangeRequest as a class: its methods are shared, not closures made per request. */
class Exchanging implements ExchangeRequest {
  readonly #state: LazyState;
  constructor(
    readonly request: Request,
    state: LazyState,
  ) {
    this.#state = state;
  }
  abort(reason: unknown): void {
    const s = this.#state;
    if (s.abortReason !== undefined) return;
    s.abortReason = reason;
    s.controller?.abort(reason);
  }
  get aborted(): boolean {
    return this.#state.abortReason !== undefined;
  }
}

/**
 * The bytes of a Response whose body was given whole (a string, bytes), skipping the stream
 * machinery: a light Response's as given, an undici Response's from undici's own record of it.
 * null when the response has no body at all; undefined when the body is a real stream or the
 * internals are not what this Node version is known to have: the caller then reads the stream.
 */
export function wholeBody(response: Response): Buffer | null | undefined {
  const given = lightBody(response);
  if (given !== undefined) return given;
  const state = internal(response);
  const body = state?.body as { source?: unknown; stream?: ReadableStream } | null | undefined;
  if (!body || body.stream?.locked || response.bodyUsed) return undefined;
  const src = body.source;
  if (typeof src === "string") return Buffer.from(src);
  if (src instanceof Uint8Array) return Buffer.from(src.buffer, src.byteOffset, src.byteLength);
  if (src instanceof ArrayBuffer) return Buffer.from(src);
  return undefined;
}

/**
 * The length of the response's body when it is known without reading it (a string, bytes, an
 * ArrayBuffer, a Blob, form data): the response can then announce it with Content-Length.
 */
export function knownLength(response: Response): number | undefined {
  const given = lightBody(response);
  if (given !== undefined) return given === null ? undefined : given.length;
  const body = internal(response)?.body as { length?: unknown; stream?: ReadableStream } | null | undefined;
  if (!body || body.stream?.locked || response.bodyUsed) return undefined;
  return typeof body.length === "number" ? body.length : undefined;
}

let stateSymbol: symbol | null | undefined;
function internal(response: Response): Record<string, unknown> | undefined {
  const native = underlying(response);
  if (!native) return undefined;
  if (stateSymbol === undefined) stateSymbol = Object.getOwnPropertySymbols(native).find((s) => s.description === "state") ?? null;
  if (!stateSymbol) return undefined;
  const v = (native as unknown as Record<symbol, unknown>)[stateSymbol];
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : undefined;
}
