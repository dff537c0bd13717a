/**
 * One HTTP exchange with an own-server app, on undici's dispatcher API: the request body is a
 * stream undici pulls from (a blocked write pauses the client), and the response body is paused at
 * the socket while more than a window of it waits for the client (`consumed` resumes it). Bodies
 * stream both ways in bounded memory, whatever their size.
 */
import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import type { GatewayError } from "../errors.js";
import { type Exchange, type ExchangeEvents, type HeaderList, IGNORE_EVENTS, type RequestHead, type ResetCode } from "../exchange/index.js";
import { validateResponseHead } from "../protocol/http.js";
import { appFailure, headerPairs, mayRetry } from "./request.js";

/** Response bytes handed to the gateway and not yet written to the client, past which the app is paused. */
export const RESPONSE_WINDOW = 256 * 1024;
/** Request body bytes buffered for undici before a write reports `blocked`. */
const REQUEST_HIGH_WATER = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export class HttpExchange implements Exchange {
  events: ExchangeEvents = IGNORE_EVENTS;
  readonly #body: Readable | undefined;
  readonly #onClose: () => void;
  readonly #dispatcher: Dispatcher;
  readonly #request: Dispatcher.DispatchOptions;
  #controller: Dispatcher.DispatchController | undefined;
  #closed = false;
  #blocked = false;
  #waiters: (() => void)[] = [];
  #unacked = 0;
  /** The latest response chunk, held for the rest of this turn: if the body ends in it, it goes out with its length. */
  #held: Buffer | undefined;
  /** A response head arrived: from here on a failure is the client's answer, never a retry. */
  #answered = false;
  #retried = false;

  constructor(dispatcher: Dispatcher, head: RequestHead, end: boolean, headers: HeaderList, onClose: () => void) {
    this.#onClose = onClose;
    if (!end) this.#body = new Readable({ highWaterMark: REQUEST_HIGH_WATER, read: () => this.#unblock() });
    const flat: string[] = [];
    for (const [k, v] of headers) flat.push(k, v);
    this.#dispatcher = dispatcher;
    this.#request = {
      path: head.query ? `${head.path}?${head.query}` : head.path,
      method: head.method,
      headers: flat,
      body: this.#body ?? null,
      // The gateway owns the clocks (timeout_seconds, idle_timeout_seconds) and resets us.
      headersTimeout: 0,
      bodyTimeout: 0,
    };
    dispatcher.dispatch(this.#request, this.#handler());
  }

  get blocked(): boolean {
    return this.#blocked;
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(chunk: Buffer): Promise<void> {
    if (this.#closed || !this.#body || this.#body.push(chunk)) return Promise.resolve();
    this.#blocked = true;
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  end(): void {
    if (!this.#closed) this.#body?.push(null);
  }

  sendWs(): Promise<void> {
    return Promise.resolve(); // no WebSocket on a plain exchange
  }

  consumed(n: number): void {
    this.#unacked -= n;
    const c = this.#controller;
    if (c?.paused && this.#unacked <= RESPONSE_WINDOW / 2) c.resume();
  }

  reset(_code: ResetCode, message?: string): void {
    this.#end(new Error(message ?? "reset by the gateway"));
  }

  finish(): void {
    this.#end(new Error("finished"));
  }

  /** The app's process is gone, or its channel is closing: the exchange ends with `err`. */
  fail(err: GatewayError): void {
    if (this.#closed) return;
    this.#end(err);
    this.events.error(err);
  }

  #handler(): Dispatcher.DispatchHandler {
    return {
      onRequestStart: (controller) => {
        this.#controller = controller;
        if (this.#closed) controller.abort(new Error("exchange closed before it started"));
      },
      onResponseStart: (controller, statusCode) => {
        this.#answered = true;
        if (this.#closed) return;
        let head: ReturnType<typeof validateResponseHead>;
        try {
          head = validateResponseHead({ status: statusCode, headers: headerPairs((controller.rawHeaders ?? []) as Buffer[]) }, false);
        } catch (err) {
          return this.fail(err as GatewayError);
        }
        this.events.head(head, false);
      },
      onResponseData: (controller, chunk) => {
        if (this.#closed) return;
        this.#unacked += chunk.length;
        if (this.#unacked > RESPONSE_WINDOW) controller.pause();
        const previous = this.#held;
        this.#held = chunk;
        if (previous) this.events.data(previous, false);
        else queueMicrotask(this.#flushHeld);
      },
      onResponseEnd: () => {
        if (this.#closed) return;
        const last = this.#held ?? EMPTY;
        this.#held = undefined;
        this.#end();
        this.events.data(last, true);
      },
      // Called synchronously from dispatch for a request undici refuses: after `open` returns,
      // when the gateway is listening.
      onResponseError: (_controller, err) => queueMicrotask(() => this.#failed(err)),
    };
  }

  #failed(err: Error): void {
    if (this.#closed) return;
    if (!this.#retried && !this.#answered && mayRetry(err, this.#request.method, this.#body !== undefined)) {
      this.#retried = true;
      this.#controller = undefined;
      this.#dispatcher.dispatch(this.#request, this.#handler());
      return;
    }
    this.fail(appFailure(err));
  }

  readonly #flushHeld = () => {
    const held = this.#held;
    if (!held || this.#closed) return;
    this.#held = undefined;
    this.events.data(held, false);
  };

  #unblock(): void {
    if (!this.#blocked) return;
    this.#blocked = false;
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Over, one way or another; `abort`: tell undici to drop the request. */
  #end(abort?: Error): void {
    if (this.#closed) return;
    this.#closed = true;
    if (abort && this.#controller && !this.#controller.aborted) this.#controller.abort(abort);
    if (this.#body && !this.#body.destroyed) this.#body.destroy();
    this.#blocked = false;
    for (const w of this.#waiters.splice(0)) w();
    this.#onClose();
  }
}
