/**
 * A nexo plugin that talks NATS itself (NEXO-COMPAT.md "Over NATS"): no host, no child process. A
 * gateway given its manifest (a `[plugin.http]` section and no entrypoint command) serves its
 * prefix by sending each request, whole, as a NATS request on `plugin.<id>.http.request` and
 * answering with the reply: nexo's v1 exchange, buffered and base64, over NATS instead of stdio.
 */
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { NatsConnection } from "@nats-io/transport-node";
import { GatewayError } from "../errors.js";
import { type Exchange, type ExchangeEvents, IGNORE_EVENTS, type RequestHead, type Upstream } from "../exchange/index.js";
import type { PluginEvents, PluginState, PluginStatus } from "../host/plugin.js";
import { decodeReply, encodeMessage, requestTopic } from "../protocol/v1.js";

const RESOLVED = Promise.resolve();

export class NexoNatsPlugin extends EventEmitter<PluginEvents> implements Upstream {
  readonly id: string;
  readonly streamsBodies = false;
  readonly #nc: () => NatsConnection | undefined;
  /** The request's time limit on NATS: past it the gateway has answered 504 already. */
  readonly #timeoutMs: number;
  #inFlight = 0;
  #state: PluginState = "ready";
  #lastError: string | null = null;

  constructor(id: string, timeoutMs: number, nc: () => NatsConnection | undefined) {
    super();
    this.id = id;
    this.#timeoutMs = timeoutMs;
    this.#nc = nc;
  }

  get state(): PluginState {
    return this.#state;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  open(head: RequestHead, end: boolean): Exchange {
    const nc = this.#nc();
    if (!nc || nc.isClosed()) throw new GatewayError("plugin_unavailable", "no connection to NATS", { retryAfter: 1 });
    this.#inFlight++;
    const exchange = new NexoNatsExchange(
      head,
      (body) => this.#request(nc, head, body),
      () => this.#inFlight--,
    );
    if (end) exchange.end();
    return exchange;
  }

  async #request(nc: NatsConnection, head: RequestHead, body: Buffer): Promise<unknown> {
    const req = { method: head.method, path: head.path, query: head.query, headers: head.headers, body_base64: body.toString("base64") };
    const msg = encodeMessage(this.id, `_inbox.${randomUUID()}`, req);
    try {
      const reply = await nc.request(requestTopic(this.id), msg, { timeout: this.#timeoutMs + 1000 });
      this.#setState("ready", null);
      return JSON.parse(reply.string()) as unknown;
    } catch (err) {
      const e = err as Error & { name?: string };
      // Nobody subscribed: like a plugin that is not running.
      if (/no responders/i.test(e.message) || e.name === "NoRespondersError") {
        this.#setState("stopped", "no responders on its subject");
        throw new GatewayError("plugin_unavailable", `no responders on ${requestTopic(this.id)}`, { retryAfter: 1 });
      }
      if (err instanceof SyntaxError) throw new GatewayError("bad_reply", "reply is not JSON");
      throw new GatewayError("plugin_unavailable", e.message, { retryAfter: 1 });
    }
  }

  #setState(state: PluginState, why: string | null): void {
    this.#lastError = why;
    if (state === this.#state) return;
    const previous = this.#state;
    this.#state = state;
    this.emit("state", state, previous);
  }

  status(): PluginStatus & { transport: string } {
    return {
      id: this.id,
      state: this.#state,
      pid: null,
      restarts: 0,
      inFlight: this.#inFlight,
      protocol: 1,
      lastExit: this.#lastError,
      nextAttemptAt: null,
      transport: "nats",
    };
  }
}

class NexoNatsExchange implements Exchange {
  events: ExchangeEvents = IGNORE_EVENTS;
  readonly blocked = false;
  readonly #send: (body: Buffer) => Promise<unknown>;
  readonly #done: () => void;
  #parts: Buffer[] = [];
  #sent = false;
  #closed = false;

  constructor(_head: RequestHead, send: (body: Buffer) => Promise<unknown>, done: () => void) {
    this.#send = send;
    this.#done = done;
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(chunk: Buffer): Promise<void> {
    if (!this.#sent && !this.#closed) this.#parts.push(chunk);
    return RESOLVED;
  }

  end(): void {
    if (this.#sent || this.#closed) return;
    this.#sent = true;
    const body = Buffer.concat(this.#parts);
    this.#parts = [];
    this.#send(body).then(
      (reply) => {
        if (this.#closed) return;
        let r: ReturnType<typeof decodeReply>;
        try {
          r = decodeReply({ payload: reply });
        } catch (err) {
          return this.#fail(err as GatewayError);
        }
        this.#close();
        this.events.head({ status: r.status, headers: r.headers }, false);
        this.events.data(r.body, true);
      },
      (err: GatewayError) => this.#fail(err),
    );
  }

  sendWs(): Promise<void> {
    return RESOLVED;
  }

  consumed(): void {}

  reset(): void {
    this.#close();
  }

  finish(): void {
    this.#close();
  }

  #fail(err: GatewayError): void {
    if (this.#closed) return;
    this.#close();
    this.events.error(err);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#done();
  }
}
