/**
 * The gateway role on NATS: learns hosts and their plugins from their announcements, keeps the
 * router in step with them, and owns one link per host that exchanges travel on.
 *
 * A host that stops announcing (killed, frozen, cut off) is dropped after `peerTimeoutMs`; one
 * whose link messages find nobody listening ("no responders") is dropped at once. A plugin whose
 * last replica went away keeps its route for `lingerMs`, answering 503 (a restarting host, a
 * rolling deploy) rather than 404.
 */
import { EventEmitter } from "node:events";
import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Logger } from "../log.js";
import { type Route, RouteError, type Router } from "../router/index.js";
import { Link } from "./link.js";
import type { NexoNatsPlugin } from "./nexo-plugin.js";
import { type Links, RemotePlugin } from "./remote-plugin.js";
import { type GatewayHeartbeat, type HostAnnouncement, newPeerId, parseAnnouncement, Subjects, senderOf } from "./subjects.js";
import { parseMessage } from "./wire.js";

export interface GatewayRoleOptions {
  subjectPrefix: string;
  heartbeatMs: number;
  peerTimeoutMs: number;
  lingerMs: number;
  log: Logger;
}

interface KnownHost {
  announcement: HostAnnouncement;
  lastSeen: number;
  link: Link | undefined;
  /** When a link message from it last came. */
  lastHeard: number;
}

/**
 * A link with exchanges in flight whose host has said nothing for this long gets a probe: if the
 * host is dead, NATS answers "no responders" and it is dropped now, not when the picker next
 * happens to choose it (a dead host's stuck exchanges count against it, so that could take a
 * while, and that request would be the one to fail). The probe is one byte on the host's link
 * subject, which a host skips (shorter than any link message: no sequence number is used), and
 * its "no responders" comes back on a subject of its own: the exchanges in flight then end as a
 * host's death ends them (502), not as a message the host never saw (503, retry).
 */
const PROBE_MS = 250;
const PROBE = new Uint8Array(1);

export interface GatewayRoleEvents {
  /** A plugin id seen for the first time (its metrics start). */
  plugin: [plugin: RemotePlugin | NexoNatsPlugin];
}

export class NatsGateway extends EventEmitter<GatewayRoleEvents> implements Links {
  readonly id = newPeerId();
  /** Plugins hosts announce, and nexo plugins on NATS this gateway was given manifests for. */
  readonly plugins = new Map<string, RemotePlugin | NexoNatsPlugin>();
  readonly #nc: NatsConnection;
  readonly #router: Router;
  readonly #subjects: Subjects;
  readonly #opts: GatewayRoleOptions;
  readonly #log: Logger;
  readonly #hosts = new Map<string, KnownHost>();
  readonly #subs: Subscription[] = [];
  /** The routes the announcements ask for, and those of them the router took. */
  #wanted = new Map<string, Route>();
  #registered: string[] = [];
  #epoch = 0;
  #timer: NodeJS.Timeout | undefined;
  #probe: NodeJS.Timeout | undefined;
  #connected = true;

  constructor(nc: NatsConnection, router: Router, opts: GatewayRoleOptions) {
    super();
    this.#nc = nc;
    this.#router = router;
    this.#opts = opts;
    this.#subjects = new Subjects(opts.subjectPrefix);
    this.#log = opts.log.child({ gateway: this.id });
  }

  get connected(): boolean {
    return this.#connected;
  }

  /** The hosts this gateway knows, for /health. */
  hosts(): object[] {
    const now = Date.now();
    return [...this.#hosts.values()].map(({ announcement: a, lastSeen }) => ({
      host: a.host,
      name: a.name,
      pid: a.pid,
      lastSeenMs: now - lastSeen,
      plugins: a.plugins.map((p) => p.id),
    }));
  }

  start(): void {
    const s = this.#subjects;
    this.#subs.push(this.#nc.subscribe(s.hosts, { callback: (_err, msg) => this.#onAnnouncement(msg) }));
    this.#subs.push(this.#nc.subscribe(s.gatewayInbox(this.id), { callback: (_err, msg) => this.#onLinkMessage(msg) }));
    this.#subs.push(this.#nc.subscribe(s.probeInbox(this.id), { callback: (_err, msg) => this.#onProbeAnswer(msg) }));
    this.#heartbeat();
    this.#nc.publish(s.discover, JSON.stringify({ v: 1, gateway: this.id }));
    this.#timer = setInterval(() => {
      this.#heartbeat();
      this.#sweep();
    }, this.#opts.heartbeatMs);
    this.#probe = setInterval(() => this.#probeQuietLinks(), PROBE_MS);
    this.#probe.unref();
  }

  #probeQuietLinks(): void {
    if (!this.#connected || this.#nc.isClosed()) return;
    const now = Date.now();
    for (const [host, h] of this.#hosts) {
      const link = h.link;
      if (!link || link.broken || link.session.streamCount === 0 || now - h.lastHeard < PROBE_MS) continue;
      this.#nc.publish(this.#subjects.toHost(host, this.id), PROBE, { reply: this.#subjects.probeReply(this.id, host) });
    }
  }

  #onProbeAnswer(msg: Msg): void {
    if (msg.headers?.code !== 503) return;
    const host = senderOf(msg.subject);
    this.#hosts.get(host)?.link?.break(`host ${host} is gone (no responders to a probe)`, false, "gone");
    this.#drop(host, "no responders to a probe");
  }

  /** A nexo plugin that talks NATS itself, routed by this gateway (its route already registered). */
  addNative(plugin: NexoNatsPlugin): void {
    this.plugins.set(plugin.id, plugin);
    this.emit("plugin", plugin);
  }

  /** The NATS connection dropped: what was in flight on the links is lost; routes stay (503). */
  disconnected(): void {
    this.#connected = false;
    for (const h of this.#hosts.values()) h.link?.break("lost the connection to NATS", false);
  }

  /** Back: hosts get a fresh timeout (they announce again within a heartbeat); ask them now. */
  reconnected(): void {
    this.#connected = true;
    const now = Date.now();
    for (const h of this.#hosts.values()) h.lastSeen = now;
    this.#nc.publish(this.#subjects.discover, JSON.stringify({ v: 1, gateway: this.id }));
  }

  linkTo(host: string): Link {
    const known = this.#hosts.get(host);
    if (!known) throw new Error(`unknown host ${host}`);
    if (known.link) return known.link;
    const to = this.#subjects.toHost(host, this.id);
    const reply = this.#subjects.toGateway(this.id, host);
    const link = new Link({
      epoch: ++this.#epoch,
      maxPayload: this.#nc.info?.max_payload ?? 1024 * 1024,
      publish: (payload) => this.#nc.publish(to, payload, { reply }),
      onBroken: (reason) => {
        if (known.link === link) known.link = undefined;
        this.#log.debug({ host, reason }, "link closed");
      },
    });
    known.link = link;
    return link;
  }

  close(): void {
    clearInterval(this.#timer);
    clearInterval(this.#probe);
    if (!this.#nc.isClosed()) {
      const bye: GatewayHeartbeat = { v: 1, gateway: this.id, bye: true };
      this.#nc.publish(this.#subjects.gateways, JSON.stringify(bye));
    }
    for (const s of this.#subs.splice(0)) s.unsubscribe();
    for (const h of this.#hosts.values()) h.link?.break("gateway shutting down");
  }

  #heartbeat(): void {
    if (!this.#connected || this.#nc.isClosed()) return;
    const beat: GatewayHeartbeat = { v: 1, gateway: this.id };
    this.#nc.publish(this.#subjects.gateways, JSON.stringify(beat));
  }

  #onAnnouncement(msg: Msg): void {
    const a = parseAnnouncement(msg.data);
    if (!a) {
      this.#log.debug({ subject: msg.subject }, "ignored a malformed host announcement");
      return;
    }
    if (a.bye) {
      this.#drop(a.host, "host shutting down");
      return;
    }
    const known = this.#hosts.get(a.host);
    if (!known) this.#log.info({ host: a.host, name: a.name, plugins: a.plugins.map((p) => p.id) }, "host joined");
    if (known) {
      known.announcement = a;
      known.lastSeen = Date.now();
    } else {
      this.#hosts.set(a.host, { announcement: a, lastSeen: Date.now(), link: undefined, lastHeard: Date.now() });
    }
    this.#rebuild();
  }

  #onLinkMessage(msg: Msg): void {
    const host = senderOf(msg.subject);
    const known = this.#hosts.get(host);
    // No responders: the host's subscription is gone (its process, or its connection).
    if (msg.headers?.code === 503) {
      known?.link?.break(`host ${host} is gone (no responders)`, false, "unreachable");
      this.#drop(host, "no responders on its link");
      return;
    }
    if (known) known.lastHeard = Date.now();
    const m = parseMessage(msg.data);
    const link = known?.link;
    if (m.kind === "invalid" || !link || m.epoch !== link.epoch) return;
    if (m.kind === "broken") link.break("the host ended the link", false);
    else link.receive(m.seq, m.bytes);
  }

  #sweep(): void {
    const now = Date.now();
    if (this.#connected) {
      for (const [id, h] of this.#hosts) if (now - h.lastSeen > this.#opts.peerTimeoutMs) this.#drop(id, "stopped announcing");
    }
    let changed = false;
    for (const [id, p] of this.plugins) {
      if (p instanceof RemotePlugin && p.goneSince !== undefined && now - p.goneSince > this.#opts.lingerMs) {
        this.plugins.delete(id);
        changed = true;
      }
    }
    if (changed) this.#rebuild();
  }

  #drop(host: string, reason: string): void {
    const known = this.#hosts.get(host);
    if (!known) return;
    this.#hosts.delete(host);
    known.link?.break(`host ${host} ${reason}`, false);
    this.#log.warn({ host, name: known.announcement.name, reason }, "host dropped");
    this.#rebuild();
  }

  /**
   * Replicas and routes from what every known host announces. A plugin's route is the one its
   * replica on the lowest host id announces (replicas that disagree are not used), and routes are
   * registered in plugin-id order, so every gateway resolves conflicts the same way, as
   * `portico serve` does locally.
   */
  #rebuild(): void {
    const byPlugin = new Map<string, { host: string; name: string; info: HostAnnouncement["plugins"][number] }[]>();
    for (const host of [...this.#hosts.keys()].sort()) {
      const a = (this.#hosts.get(host) as KnownHost).announcement;
      for (const info of a.plugins) {
        const list = byPlugin.get(info.id) ?? [];
        list.push({ host, name: a.name, info });
        byPlugin.set(info.id, list);
      }
    }
    for (const [id, list] of byPlugin) {
      let plugin = this.plugins.get(id);
      // This gateway's own nexo-on-NATS plugin of that id wins over an announced one.
      if (plugin && !(plugin instanceof RemotePlugin)) continue;
      if (!plugin) {
        plugin = new RemotePlugin(id, this);
        this.plugins.set(id, plugin);
        this.emit("plugin", plugin);
      }
      const lead = (list[0] as (typeof list)[number]).info;
      const agreeing = list.filter((r) => sameRoute(r.info, lead));
      this.#warnDisagreeing(
        id,
        list.filter((r) => !agreeing.includes(r)).map((r) => r.host),
      );
      plugin.setReplicas(agreeing);
    }
    for (const [id, plugin] of this.plugins) if (!byPlugin.has(id) && plugin instanceof RemotePlugin) plugin.setReplicas([]);
    this.#syncRoutes(byPlugin);
  }

  /** Replicas announcing another route than the lead's: said once per change, not every heartbeat. */
  readonly #disagreeing = new Map<string, string>();
  #warnDisagreeing(id: string, hosts: string[]): void {
    const key = hosts.sort().join(",");
    if ((this.#disagreeing.get(id) ?? "") === key) return;
    this.#disagreeing.set(id, key);
    if (hosts.length) this.#log.warn({ plugin: id, hosts }, "replicas announce a different route than the lowest host id's; not used");
  }

  #syncRoutes(byPlugin: Map<string, { info: HostAnnouncement["plugins"][number] }[]>): void {
    const wanted = new Map<string, Route>();
    for (const id of [...this.plugins.keys()].sort()) {
      if (!(this.plugins.get(id) instanceof RemotePlugin)) continue;
      const info = byPlugin.get(id)?.[0]?.info;
      const route = info ? routeOf(info) : this.#wanted.get(id);
      if (route) wanted.set(id, route);
    }
    if (sameRoutes(wanted, this.#wanted)) return;
    this.#wanted = wanted;
    for (const id of this.#registered.splice(0)) this.#router.unregister(id);
    for (const [id, route] of wanted) {
      try {
        this.#router.register(route);
        this.#registered.push(id);
      } catch (err) {
        if (!(err instanceof RouteError)) throw err;
        this.#log.error({ plugin: id }, `plugin refused: ${err.message}`);
      }
    }
  }
}

function routeOf(p: HostAnnouncement["plugins"][number]): Route {
  return { pluginId: p.id, prefix: p.prefix, timeoutMs: p.timeoutMs, idleTimeoutMs: p.idleTimeoutMs, maxBodyBytes: p.maxBodyBytes };
}

function sameRoute(a: HostAnnouncement["plugins"][number], b: HostAnnouncement["plugins"][number]): boolean {
  return a.prefix === b.prefix && a.timeoutMs === b.timeoutMs && a.idleTimeoutMs === b.idleTimeoutMs && a.maxBodyBytes === b.maxBodyBytes;
}

function sameRoutes(a: Map<string, Route>, b: Map<string, Route>): boolean {
  if (a.size !== b.size) return false;
  for (const [id, r] of a) {
    const o = b.get(id);
    if (
      !o ||
      o.prefix !== r.prefix ||
      o.timeoutMs !== r.timeoutMs ||
      o.idleTimeoutMs !== r.idleTimeoutMs ||
      o.maxBodyBytes !== r.maxBodyBytes
    ) {
      return false;
    }
  }
  return true;
}
