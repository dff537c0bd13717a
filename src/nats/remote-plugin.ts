/**
 * A plugin as a gateway sees it across NATS: one route, served by replicas on any number of
 * hosts. To the gateway it is an Upstream like a local plugin: `open` picks a replica and opens a
 * stream on the link to its host, and the exchange it returns is the same v2 exchange a stdio
 * child's is (same head checks, same credit, same resets).
 */
import { EventEmitter } from "node:events";
import { V2Exchange } from "../connection/v2.js";
import { GatewayError, type GatewayErrorCode } from "../errors.js";
import type { Exchange, RequestHead, Upstream } from "../exchange/index.js";
import type { PluginEvents, PluginState, PluginStatus } from "../host/plugin.js";
import type { Link } from "./link.js";
import type { PluginAnnouncement } from "./subjects.js";

/** What a remote plugin needs from the gateway that owns the links. */
export interface Links {
  /** False while the NATS connection is down. */
  readonly connected: boolean;
  linkTo(host: string): Link;
}

export interface Replica {
  host: string;
  /** The host's machine name, for /health. */
  name: string;
  info: PluginAnnouncement;
  /** Exchanges this gateway has open on this replica. */
  inFlight: number;
}

/** Errors a host may hand back for an exchange it could not start: the status the client sees. */
const HOST_ERRORS = new Set<GatewayErrorCode>(["plugin_unavailable", "overloaded", "plugin_crashed", "bad_reply", "plugin_reset"]);

/** A link ended under the exchange ("gone"), or the host refused it, or its plugin reset it. */
function remoteError(code: string, message: string | undefined, detail: Record<string, unknown>): GatewayError {
  // Nobody was there to take it: like a plugin that is not running.
  if (code === "unreachable") return new GatewayError("plugin_unavailable", message, { retryAfter: 1 });
  // The link ended under it: the host died (or was cut off) with the exchange in flight.
  if (code === "gone") return new GatewayError("plugin_crashed", message);
  const named = detail.error as GatewayErrorCode;
  if (HOST_ERRORS.has(named)) {
    const retryAfter = typeof detail.retryAfter === "number" ? detail.retryAfter : undefined;
    return new GatewayError(named, message, { retryAfter });
  }
  return new GatewayError("plugin_reset", message ?? code);
}

const ORDER: PluginState[] = ["ready", "starting", "restarting", "stopping", "failed", "stopped"];

export class RemotePlugin extends EventEmitter<PluginEvents> implements Upstream {
  readonly id: string;
  readonly #links: Links;
  #replicas: Replica[] = [];
  #inFlight = 0;
  #state: PluginState = "stopped";
  /** When its last replica went away (the route lingers a while, answering 503). */
  goneSince: number | undefined;

  constructor(id: string, links: Links) {
    super();
    this.id = id;
    this.#links = links;
  }

  get replicas(): readonly Replica[] {
    return this.#replicas;
  }

  /**
   * The replicas as the latest announcements say. A known replica keeps its object: exchanges in
   * flight on it count down on the object they counted up on.
   */
  setReplicas(next: Omit<Replica, "inFlight">[]): void {
    const before = new Map(this.#replicas.map((r) => [r.host, r]));
    this.#replicas = next.map((r) => {
      const kept = before.get(r.host);
      if (!kept) return { ...r, inFlight: 0 };
      kept.name = r.name;
      kept.info = r.info;
      return kept;
    });
    this.goneSince = next.length ? undefined : (this.goneSince ?? Date.now());
    const state = ORDER.find((s) => this.#replicas.some((r) => r.info.state === s)) ?? "stopped";
    if (state !== this.#state) {
      const previous = this.#state;
      this.#state = state;
      this.emit("state", state, previous);
    }
  }

  get state(): PluginState {
    return this.#state;
  }

  get streamsBodies(): boolean {
    // A v1 replica takes whole bodies only: the buffered-body limit must apply to all.
    return this.#replicas.length > 0 && this.#replicas.every((r) => r.info.streamsBodies);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  open(head: RequestHead, end: boolean): Exchange {
    if (!this.#links.connected) throw new GatewayError("plugin_unavailable", "no connection to NATS", { retryAfter: 1 });
    const replica = this.#pick();
    if (!replica) throw new GatewayError("plugin_unavailable", `no ready replica of ${this.id}`, { retryAfter: 1 });
    const link = this.#links.linkTo(replica.host);
    const stream = link.session.open({ ...head, plugin: this.id }, end);
    const exchange = new V2Exchange(stream, head.upgrade === "websocket", remoteError);
    this.#inFlight++;
    replica.inFlight++;
    // Set after the exchange's own handlers, which it replaces wholesale.
    stream.handlers.onClose = () => {
      this.#inFlight--;
      replica.inFlight--;
    };
    if (stream.closed) stream.handlers.onClose();
    return exchange;
  }

  /** Power of two choices on this gateway's in-flight count: even spread, slow replicas avoided. */
  #pick(): Replica | undefined {
    const ready = this.#replicas.filter((r) => r.info.state === "ready");
    if (ready.length <= 1) return ready[0];
    const a = ready[Math.floor(Math.random() * ready.length)] as Replica;
    let b = ready[Math.floor(Math.random() * (ready.length - 1))] as Replica;
    if (b === a) b = ready[ready.length - 1] as Replica;
    return b.inFlight < a.inFlight ? b : a;
  }

  status(): PluginStatus & { replicas: object[] } {
    const first = this.#replicas.find((r) => r.info.state === this.#state) ?? this.#replicas[0];
    return {
      id: this.id,
      state: this.#state,
      pid: first?.info.pid ?? null,
      restarts: this.#replicas.reduce((n, r) => n + r.info.restarts, 0),
      inFlight: this.#inFlight,
      protocol: first?.info.protocol ?? null,
      lastExit: first?.info.lastExit ?? null,
      nextAttemptAt: null,
      replicas: this.#replicas.map((r) => ({
        host: r.host,
        name: r.name,
        state: r.info.state,
        protocol: r.info.protocol,
        pid: r.info.pid,
        restarts: r.info.restarts,
        inFlight: r.inFlight,
        lastExit: r.info.lastExit,
      })),
    };
  }
}
