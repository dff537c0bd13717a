/**
 * A nexo plugin that talks NATS itself (NEXO-COMPAT.md "Over NATS"): no host, no child process. A
 * gateway given its manifest (a `[plugin.http]` section and no entrypoint command) serves its
 * prefix by sending each request, whole, as a NATS request on `plugin.<id>.http.request` and
 * answering with the reply: the same v1 exchange as a stdio child's (src/connection/v1.ts), with
 * NATS carrying it instead of stdin and stdout.
 */
import { EventEmitter } from "node:events";
import type { NatsConnection } from "@nats-io/transport-node";
import { V1Exchange, withLength } from "../connection/v1.js";
import { GatewayError } from "../errors.js";
import type { Exchange, RequestHead, Upstream } from "../exchange/index.js";
import type { PluginEvents, PluginState, PluginStatus } from "../host/plugin.js";
import { encodeMessage, newInbox, requestTopic } from "../protocol/v1.js";

export class NexoNatsPlugin extends EventEmitter<PluginEvents> implements Upstream {
  readonly id: string;
  readonly streamsBodies = false;
  readonly #nc: () => NatsConnection | undefined;
  /** The request's time limit on NATS: past it the gateway has answered 504 already. */
  readonly #timeoutMs: number;
  readonly #open = new Set<V1Exchange>();
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
    return this.#open.size;
  }

  open(head: RequestHead, end: boolean): Exchange {
    const nc = this.#nc();
    if (!nc || nc.isClosed()) throw new GatewayError("plugin_unavailable", "no connection to NATS", { retryAfter: 1 });
    const exchange = new V1Exchange(this, head);
    this.#open.add(exchange);
    if (end) exchange.end();
    return exchange;
  }

  /** @internal The whole request, as nexo sends it over NATS; the reply goes back to the exchange. */
  _send(exchange: V1Exchange, head: RequestHead, body: Buffer[], size: number): string | undefined {
    const nc = this.#nc();
    if (!nc || nc.isClosed()) {
      exchange._fail(new GatewayError("plugin_unavailable", "no connection to NATS", { retryAfter: 1 }));
      return undefined;
    }
    const inbox = newInbox();
    const headers = withLength(head.headers, size);
    const req = {
      method: head.method,
      path: head.path,
      query: head.query,
      headers,
      body_base64: Buffer.concat(body, size).toString("base64"),
    };
    nc.request(requestTopic(this.id), encodeMessage(this.id, inbox, req), { timeout: this.#timeoutMs + 1000 }).then(
      (reply) => {
        this.#setState("ready", null);
        let message: unknown;
        try {
          message = JSON.parse(reply.string());
        } catch {
          return exchange._fail(new GatewayError("bad_reply", "reply is not JSON"));
        }
        // Over NATS the reply is the Message itself: where a stdio reply's event holds it.
        exchange._reply({ payload: message });
      },
      (err: Error) => exchange._fail(this.#failure(err)),
    );
    return inbox;
  }

  /** @internal */
  _closed(exchange: V1Exchange): void {
    this.#open.delete(exchange);
  }

  #failure(err: Error): GatewayError {
    // Nobody subscribed: like a plugin that is not running.
    if (/no responders/i.test(err.message) || err.name === "NoRespondersError") {
      this.#setState("stopped", "no responders on its subject");
      return new GatewayError("plugin_unavailable", `no responders on ${requestTopic(this.id)}`, { retryAfter: 1 });
    }
    return new GatewayError("plugin_unavailable", err.message, { retryAfter: 1 });
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
      inFlight: this.#open.size,
      protocol: 1,
      lastExit: this.#lastError,
      nextAttemptAt: null,
      transport: "nats",
    };
  }
}
