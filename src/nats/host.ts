/**
 * The host role on NATS: runs the plugins of its folder as stdio children (the same supervisor as
 * the embedded default), announces them every heartbeat, and serves the links gateways open to it,
 * relaying each stream to the local plugin it names. It opens no public port.
 */
import { hostname } from "node:os";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Upstream } from "../exchange/index.js";
import type { Plugin } from "../host/plugin.js";
import type { Logger } from "../log.js";
import type { Route } from "../router/index.js";
import { Link } from "./link.js";
import { relay } from "./relay.js";
import { type HostAnnouncement, newPeerId, type PluginAnnouncement, parseHeartbeat, Subjects, senderOf } from "./subjects.js";
import { brokenMessage, parseMessage } from "./wire.js";

export interface HostRoleOptions {
  subjectPrefix: string;
  heartbeatMs: number;
  peerTimeoutMs: number;
  maxInFlight: number;
  log: Logger;
}

interface KnownGateway {
  lastSeen: number;
  link: Link | undefined;
}

/** A local plugin and its route, as this host serves it. */
export interface HostedPlugin {
  plugin: Plugin;
  route: Route;
}

export class NatsHost {
  readonly id = newPeerId();
  readonly #nc: NatsConnection;
  readonly #plugins: Map<string, HostedPlugin>;
  readonly #subjects: Subjects;
  readonly #opts: HostRoleOptions;
  readonly #log: Logger;
  readonly #gateways = new Map<string, KnownGateway>();
  readonly #subs: Subscription[] = [];
  #timer: NodeJS.Timeout | undefined;
  #leaving = false;

  constructor(nc: NatsConnection, plugins: Map<string, HostedPlugin>, opts: HostRoleOptions) {
    this.#nc = nc;
    this.#plugins = plugins;
    this.#opts = opts;
    this.#subjects = new Subjects(opts.subjectPrefix);
    this.#log = opts.log.child({ host: this.id });
  }

  start(): void {
    const s = this.#subjects;
    this.#subs.push(this.#nc.subscribe(s.discover, { callback: () => this.announce() }));
    this.#subs.push(this.#nc.subscribe(s.gateways, { callback: (_err, msg) => this.#onHeartbeat(msg) }));
    this.#subs.push(this.#nc.subscribe(s.hostInbox(this.id), { callback: (_err, msg) => this.#onLinkMessage(msg) }));
    // A state change (ready after a restart, failed) reaches gateways at once, not a heartbeat later.
    for (const { plugin } of this.#plugins.values()) plugin.on("state", () => this.announce());
    this.announce();
    this.#timer = setInterval(() => {
      this.announce();
      this.#sweep();
    }, this.#opts.heartbeatMs);
  }

  /** Streams open on all links: exchanges gateways have running here. */
  get inFlight(): number {
    let n = 0;
    for (const g of this.#gateways.values()) n += g.link?.session.streamCount ?? 0;
    return n;
  }

  announce(): void {
    if (this.#nc.isClosed()) return;
    const a: HostAnnouncement = {
      v: 1,
      host: this.id,
      name: hostname(),
      pid: process.pid,
      plugins: this.#leaving ? [] : this.#announced(),
    };
    if (this.#leaving) a.bye = true;
    try {
      this.#nc.publish(this.#subjects.hosts, JSON.stringify(a));
    } catch (err) {
      this.#log.error({ err: (err as Error).message }, "could not announce this host");
    }
  }

  /** Shutting down: gateways route nothing new here; what is in flight may finish. */
  leave(): void {
    this.#leaving = true;
    this.announce();
  }

  disconnected(): void {
    for (const g of this.#gateways.values()) g.link?.break("lost the connection to NATS", false);
  }

  reconnected(): void {
    const now = Date.now();
    for (const g of this.#gateways.values()) g.lastSeen = now;
    this.announce();
  }

  close(): void {
    clearInterval(this.#timer);
    for (const s of this.#subs.splice(0)) s.unsubscribe();
    for (const g of this.#gateways.values()) g.link?.break("host shutting down");
  }

  #announced(): PluginAnnouncement[] {
    return [...this.#plugins.values()].map(({ plugin, route }) => {
      const st = plugin.status();
      return {
        id: plugin.id,
        prefix: route.prefix,
        timeoutMs: route.timeoutMs,
        idleTimeoutMs: route.idleTimeoutMs,
        maxBodyBytes: route.maxBodyBytes,
        state: st.state,
        protocol: st.protocol,
        streamsBodies: st.protocol === 2 || st.protocol === "http",
        pid: st.pid,
        restarts: st.restarts,
        inFlight: st.inFlight,
        lastExit: st.lastExit,
      };
    });
  }

  #onHeartbeat(msg: Msg): void {
    const h = parseHeartbeat(msg.data);
    if (!h) return;
    const known = this.#gateways.get(h.gateway);
    if (h.bye) {
      known?.link?.break("gateway shutting down", false);
      this.#gateways.delete(h.gateway);
      return;
    }
    if (known) known.lastSeen = Date.now();
    else this.#gateways.set(h.gateway, { lastSeen: Date.now(), link: undefined });
  }

  #onLinkMessage(msg: Msg): void {
    const gateway = senderOf(msg.subject);
    // No responders: the gateway is gone; what it had running here can stop.
    if (msg.headers?.code === 503) {
      this.#gateways.get(gateway)?.link?.break("gateway unreachable", false);
      return;
    }
    const m = parseMessage(msg.data);
    if (m.kind === "invalid") return;
    let known = this.#gateways.get(gateway);
    if (!known) {
      known = { lastSeen: Date.now(), link: undefined };
      this.#gateways.set(gateway, known);
    }
    const current = known.link;
    if (m.kind === "broken") {
      if (current?.epoch === m.epoch) current.break("the gateway ended the link", false);
      return;
    }
    if (current?.epoch === m.epoch) {
      current.receive(m.seq, m.bytes);
      return;
    }
    // A new link starts at seq 0 with a newer epoch; anything else belongs to a link we lost.
    if (m.seq !== 0 || (current && m.epoch < current.epoch)) {
      this.#nc.publish(this.#subjects.toGateway(gateway, this.id), brokenMessage(m.epoch));
      return;
    }
    current?.break("replaced by a newer link", false);
    known.link = this.#newLink(gateway, known, m.epoch);
    known.link.receive(m.seq, m.bytes);
  }

  #newLink(gateway: string, known: KnownGateway, epoch: number): Link {
    const to = this.#subjects.toGateway(gateway, this.id);
    const reply = this.#subjects.toHost(this.id, gateway);
    const ctx = {
      plugin: (id: string): Upstream | undefined => (this.#leaving ? undefined : this.#plugins.get(id)?.plugin),
      maxInFlight: this.#opts.maxInFlight,
    };
    const link: Link = new Link({
      epoch,
      maxPayload: this.#nc.info?.max_payload ?? 1024 * 1024,
      publish: (payload) => this.#nc.publish(to, payload, { reply }),
      onStream: (stream, head, end) => relay(stream, head, end, ctx),
      onBroken: (reason) => {
        if (known.link === link) known.link = undefined;
        this.#log.debug({ gateway, reason }, "link closed");
      },
    });
    return link;
  }

  #sweep(): void {
    const now = Date.now();
    for (const [id, g] of this.#gateways) {
      if (now - g.lastSeen <= this.#opts.peerTimeoutMs) continue;
      g.link?.break(`gateway ${id} stopped heartbeating`, false);
      this.#gateways.delete(id);
    }
  }
}
