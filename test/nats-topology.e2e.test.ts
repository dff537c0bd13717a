/**
 * portico's NATS topology end to end: real nats-server processes, real `portico serve --nats …`
 * gateway and host processes (test/support/nats-portico.ts), the SDK lab plugin, all on 127.0.0.1.
 * A host opens no port; replicas on two hosts share the load; hosts are discovered within seconds
 * whichever side starts first; a frozen host is dropped and comes back; route conflicts between
 * hosts resolve the same way on every gateway; exchanges cross a three-node cluster.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { test } from "node:test";
import {
  type GatewayProc,
  gatewayHealth,
  type HealthPlugin,
  type Proc,
  startGateway,
  startHost,
  until,
  waitForPlugins,
} from "./support/nats-portico.js";
import { type NatsServer, startNatsCluster, startNatsServer } from "./support/nats-server.js";
import { fetchRaw, labSpec, MiB, type Reply, sleep, within } from "./support/v2.js";

/** What a gateway's /health says (the fields these tests read). */
interface Health {
  status: string;
  plugins: HealthPlugin[];
  hosts: { host: string; pid: number; plugins: string[] }[];
}

/** /health, bounded in time. */
function health(url: string, ms = 3000): Promise<Health> {
  return within(gatewayHealth(url) as Promise<Health>, `GET ${url}/health`, ms);
}

/** Things to release at the end of a test, last started first; every one is tried. */
class Cleanup {
  readonly #steps: (() => Promise<unknown>)[] = [];
  nats(s: NatsServer): NatsServer {
    this.#steps.push(() => s.stop());
    return s;
  }
  proc<T extends Proc>(p: T): T {
    this.#steps.push(() => p.stop(5000));
    return p;
  }
  add(step: () => Promise<unknown>): void {
    this.#steps.push(step);
  }
  async close(): Promise<void> {
    const errors: unknown[] = [];
    for (const step of this.#steps.splice(0).reverse()) await step().catch((err) => errors.push(err));
    if (errors.length) throw errors[0];
  }
}

/** Inodes of the TCP sockets in LISTEN state (0A) in this network namespace, IPv4 and IPv6. */
function listeningInodes(): Set<string> {
  const out = new Set<string>();
  for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue; // no IPv6 in this kernel
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === "0A") out.add(f[9] as string);
    }
  }
  return out;
}

/** Inodes of the sockets a process holds open (its /proc/<pid>/fd links "socket:[N]"). */
function socketInodes(pid: number): string[] {
  const out: string[] = [];
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m) out.push(m[1] as string);
  }
  return out;
}

function listeningSocketsOf(pid: number): string[] {
  const listening = listeningInodes();
  return socketInodes(pid).filter((i) => listening.has(i));
}

/** The plugin pid a lab /pid answer reports. */
function pidOf(r: Reply): number {
  return (JSON.parse(r.body.toString()) as { pid: number }).pid;
}

/** Polls GET `url` until it answers 200 or `deadline` (epoch ms) passes; the time of the first 200. */
async function first200(url: string, deadline: number): Promise<{ at: number; reply: Reply }> {
  let last = "no answer";
  while (Date.now() < deadline) {
    const r = await fetchRaw(url, {}, 1000).catch((err: Error) => err);
    if (!(r instanceof Error) && r.status === 200) return { at: Date.now(), reply: r };
    last = r instanceof Error ? r.message : `${r.status} ${r.body.toString().slice(0, 200)}`;
    await sleep(25);
  }
  throw new Error(`GET ${url}: no 200 by the deadline (last: ${last})`);
}

const replicaPids = (h: Health, id: string) => new Map(h.plugins.find((p) => p.id === id)?.replicas.map((r) => [r.host, r.pid]) ?? []);

test("a host opens no listening socket; a gateway without a plugins folder serves its plugin", { timeout: 40_000 }, async () => {
  const c = new Cleanup();
  try {
    const nats = c.nats(await startNatsServer());
    const host = c.proc(await startHost(nats.url, [labSpec("lab")]));
    const gateway = c.proc(await startGateway(nats.url));
    await waitForPlugins(gateway.url, ["lab"]);

    // The method sees what it should: the gateway listens, and the host holds a socket (to NATS).
    assert.ok(listeningSocketsOf(gateway.pid).length >= 1, "the gateway process has a LISTEN socket");
    assert.ok(socketInodes(host.pid).length >= 1, "the host process holds at least one socket (its NATS connection)");
    assert.deepEqual(listeningSocketsOf(host.pid), [], "the host process listens on no TCP port");

    const r = await fetchRaw(`${gateway.url}/lab/pid`, {}, 5000);
    assert.equal(r.status, 200, r.body.toString());
    const h = await health(gateway.url);
    assert.deepEqual(
      h.hosts.map((x) => x.pid),
      [host.pid],
    );
    assert.equal(pidOf(r), h.plugins.find((p) => p.id === "lab")?.replicas[0]?.pid);
    // Still no listening socket after serving through NATS.
    assert.deepEqual(listeningSocketsOf(host.pid), []);
  } finally {
    await c.close();
  }
});

test("replicas on two hosts share the requests", { timeout: 40_000 }, async () => {
  const c = new Cleanup();
  try {
    const nats = c.nats(await startNatsServer());
    const [hostA, hostB] = await Promise.all([startHost(nats.url, [labSpec("lab")]), startHost(nats.url, [labSpec("lab")])]);
    c.proc(hostA as Proc);
    c.proc(hostB as Proc);
    const gateway = c.proc(await startGateway(nats.url));
    await waitForPlugins(gateway.url, ["lab"], 2);

    const h = await health(gateway.url);
    const lab = h.plugins.find((p) => p.id === "lab");
    assert.ok(lab, "lab in /health");
    assert.equal(lab.replicas.length, 2, JSON.stringify(lab));
    assert.equal(h.hosts.length, 2, JSON.stringify(h.hosts));
    const pids = lab.replicas.map((r) => r.pid);
    assert.equal(new Set(pids).size, 2, `two distinct plugin pids: ${pids}`);

    const TOTAL = 200;
    const counts = new Map<number, number>();
    const failures: string[] = [];
    let next = 0;
    const worker = async () => {
      while (next < TOTAL) {
        next++;
        const r = await fetchRaw(`${gateway.url}/lab/pid`, {}, 5000).catch((err: Error) => err);
        if (r instanceof Error || r.status !== 200) {
          failures.push(r instanceof Error ? r.message : `${r.status} ${r.body.toString()}`);
          continue;
        }
        const pid = pidOf(r);
        counts.set(pid, (counts.get(pid) ?? 0) + 1);
      }
    };
    await within(Promise.all(Array.from({ length: 8 }, worker)), "200 requests", 20_000);
    assert.deepEqual(failures, []);
    assert.deepEqual([...counts.keys()].sort(), [...pids].sort(), `pids seen: ${JSON.stringify([...counts])}`);
    for (const [pid, n] of counts) assert.ok(n >= TOTAL * 0.2, `pid ${pid} served ${n} of ${TOTAL}: ${JSON.stringify([...counts])}`);
  } finally {
    await c.close();
  }
});

test("a new host is routed within 5 s of its start, and a new gateway learns it within 5 s", { timeout: 40_000 }, async () => {
  const c = new Cleanup();
  try {
    const nats = c.nats(await startNatsServer());
    const early = c.proc(await startGateway(nats.url));

    // The host is spawned synchronously inside startHost: t0 is its spawn, give or take a mkdir.
    const t0 = Date.now();
    const starting = startHost(nats.url, [labSpec("lab")]);
    const seen = first200(`${early.url}/lab/pid`, t0 + 5000);
    const [host, routed] = await Promise.allSettled([starting, seen]);
    if (host.status === "fulfilled") c.proc(host.value);
    else throw host.reason;
    if (routed.status === "rejected") throw routed.reason;
    const joinMs = routed.value.at - t0;
    assert.ok(joinMs <= 5000, `routed ${joinMs} ms after the host was spawned`);

    const t1 = Date.now();
    const late = c.proc(await startGateway(nats.url));
    const learned = await first200(`${late.url}/lab/pid`, t1 + 5000);
    const learnMs = learned.at - t1;
    assert.ok(learnMs <= 5000, `the new gateway routed ${learnMs} ms after its start`);
    assert.equal(pidOf(learned.reply), pidOf(routed.value.reply), "both gateways reach the same plugin");
    process.stdout.write(`# discovery: host routed after ${joinMs} ms, new gateway after ${learnMs} ms\n`);
  } finally {
    await c.close();
  }
});

test("a frozen host is dropped, its peer replica keeps serving, and it comes back after SIGCONT", { timeout: 60_000 }, async () => {
  const c = new Cleanup();
  const TIMEOUT_MS = 2000; // the route's time-to-first-byte timeout
  const spec = labSpec("lab", `timeout_seconds = ${TIMEOUT_MS / 1000}`);
  let frozen: number | undefined;
  try {
    const nats = c.nats(await startNatsServer());
    const [a, b] = await Promise.all([startHost(nats.url, [spec]), startHost(nats.url, [spec])]);
    const hostA = c.proc(a as Proc);
    c.proc(b as Proc);
    // Registered after the hosts' stop: runs first, so a frozen host can take its SIGTERM.
    c.add(async () => {
      if (frozen !== undefined) process.kill(frozen, "SIGCONT");
    });
    const gateway: GatewayProc = c.proc(await startGateway(nats.url));
    await waitForPlugins(gateway.url, ["lab"], 2);

    const before = await health(gateway.url);
    const idA = before.hosts.find((x) => x.pid === hostA.pid)?.host;
    assert.ok(idA, `host A (pid ${hostA.pid}) in /health hosts: ${JSON.stringify(before.hosts)}`);
    const pids = replicaPids(before, "lab");
    const pidB = [...pids].find(([host]) => host !== idA)?.[1];
    assert.ok(pidB, `a replica of lab on the other host: ${JSON.stringify([...pids])}`);

    // Steady load from 4 clients while host A freezes, is dropped, and for a while after.
    type Outcome = { start: number; ms: number; status: number | string; pid?: number };
    const outcomes: Outcome[] = [];
    let loading = true;
    const worker = async () => {
      while (loading) {
        const start = Date.now();
        const r = await fetchRaw(`${gateway.url}/lab/pid`, {}, TIMEOUT_MS + 5000).catch((err: Error) => err);
        const ms = Date.now() - start;
        if (r instanceof Error) outcomes.push({ start, ms, status: r.message });
        else outcomes.push({ start, ms, status: r.status, pid: r.status === 200 ? pidOf(r) : undefined });
      }
    };
    const workers = Promise.all(Array.from({ length: 4 }, worker));
    let dropMs = 0;
    let dropped = 0;
    try {
      await sleep(300);
      const tFreeze = Date.now();
      process.kill(hostA.pid, "SIGSTOP");
      frozen = hostA.pid;
      dropped = await until(
        async () => {
          const h = await health(gateway.url).catch(() => undefined);
          return h && !h.hosts.some((x) => x.host === idA) ? Date.now() : undefined;
        },
        10_000,
        "the frozen host to leave /health hosts",
      );
      dropMs = dropped - tFreeze;
      await sleep(1500); // requests that can only go to host B
    } finally {
      loading = false;
      await within(workers, "the load's last requests", TIMEOUT_MS + 8000);
    }
    process.stdout.write(`# frozen host dropped after ${dropMs} ms; ${outcomes.length} requests\n`);
    assert.ok(dropMs <= 10_000, `dropped after ${dropMs} ms`);

    const odd = outcomes.filter((o) => ![200, 502, 503, 504].includes(o.status as number));
    assert.deepEqual(odd, [], "every request answered 200, or 502/503/504 when it was caught on the frozen host");
    const slow = outcomes.filter((o) => o.ms > TIMEOUT_MS + 1500);
    assert.deepEqual(slow, [], `no request outlived the route's ${TIMEOUT_MS} ms timeout by much`);
    const after = outcomes.filter((o) => o.start >= dropped);
    assert.ok(after.length >= 10, `requests after the drop: ${after.length}`);
    assert.deepEqual(
      after.filter((o) => o.status !== 200 || o.pid !== pidB),
      [],
      "after the drop every request succeeds on host B",
    );

    const tCont = Date.now();
    process.kill(hostA.pid, "SIGCONT");
    frozen = undefined;
    const back = await until(
      async () => {
        const h = await health(gateway.url).catch(() => undefined);
        return h?.hosts.some((x) => x.host === idA) ? Date.now() : undefined;
      },
      5000,
      "the thawed host to return to /health hosts",
    );
    process.stdout.write(`# thawed host back after ${back - tCont} ms\n`);
    assert.ok(back - tCont <= 5000);
    // And it serves again: both replicas ready, and sequential requests (nothing else in flight)
    // reach both of them again.
    await waitForPlugins(gateway.url, ["lab"], 2, 5000);
    const counts = new Map<number, number>();
    for (let i = 0; i < 40; i++) {
      const r = await fetchRaw(`${gateway.url}/lab/pid`, {}, 5000);
      assert.equal(r.status, 200, r.body.toString());
      counts.set(pidOf(r), (counts.get(pidOf(r)) ?? 0) + 1);
    }
    const idle = (await health(gateway.url)).plugins.find((p) => p.id === "lab")?.replicas;
    const seen = `pids seen after the thaw: ${JSON.stringify([...counts])}; /health replicas, idle: ${JSON.stringify(idle)}`;
    assert.equal(counts.size, 2, seen);
    for (const n of counts.values()) assert.ok(n >= 5, seen);
  } finally {
    await c.close();
  }
});

test("a prefix claimed by plugins on two hosts goes to the same plugin on every gateway", { timeout: 40_000 }, async () => {
  const c = new Cleanup();
  try {
    const nats = c.nats(await startNatsServer());
    // One gateway sees beta first and alpha join later; the other finds both hosts already there.
    const early = c.proc(await startGateway(nats.url));
    c.proc(await startHost(nats.url, [{ ...labSpec("beta"), prefix: "/same" }]));
    await waitForPlugins(early.url, ["beta"]);
    c.proc(await startHost(nats.url, [{ ...labSpec("alpha"), prefix: "/same" }]));
    const late = c.proc(await startGateway(nats.url));

    for (const gateway of [early, late]) {
      const settled = async () => {
        const h = await health(gateway.url).catch(() => undefined);
        const ready = (id: string) => h?.plugins.find((p) => p.id === id)?.replicas.some((r) => r.state === "ready");
        return h && ready("alpha") && ready("beta") ? h : undefined;
      };
      await until(settled, 10_000, `alpha and beta both known to ${gateway.url}`);
      await sleep(750); // a few heartbeats: the outcome must hold, not just happen once
      const h = (await settled()) as Health;
      const alpha = h.plugins.find((p) => p.id === "alpha") as HealthPlugin;
      const beta = h.plugins.find((p) => p.id === "beta") as HealthPlugin;
      assert.equal(alpha.prefix, "/same", JSON.stringify(h.plugins));
      assert.equal(beta.prefix, null, JSON.stringify(h.plugins));
      const r = await fetchRaw(`${gateway.url}/same/pid`, {}, 5000);
      assert.equal(r.status, 200, r.body.toString());
      assert.equal(pidOf(r), alpha.replicas[0]?.pid, `/same answered by alpha's replica: ${JSON.stringify(alpha.replicas)}`);
    }
  } finally {
    await c.close();
  }
});

test("across a three-node cluster: host on node 2, gateway on node 0", { timeout: 40_000 }, async () => {
  const c = new Cleanup();
  try {
    const servers = await startNatsCluster(3);
    for (const s of servers) c.nats(s);
    const host = c.proc(await startHost(servers[2]?.url as string, [labSpec("lab")]));
    const gateway = c.proc(await startGateway(servers[0]?.url as string));
    await waitForPlugins(gateway.url, ["lab"]);

    const connected = (p: Proc) => p.logs.find((l) => l.msg === "connected to NATS")?.server as string | undefined;
    assert.equal(connected(host), `127.0.0.1:${servers[2]?.port}`, "the host is on node 2");
    assert.equal(connected(gateway), `127.0.0.1:${servers[0]?.port}`, "the gateway is on node 0");

    const h = await health(gateway.url);
    const r = await fetchRaw(`${gateway.url}/lab/pid`, {}, 5000);
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(pidOf(r), h.plugins.find((p) => p.id === "lab")?.replicas[0]?.pid);

    const body = randomBytes(4 * MiB);
    const echo = await fetchRaw(
      `${gateway.url}/lab/echo?tag=big`,
      { method: "POST", body, headers: { "content-type": "application/octet-stream" } },
      20_000,
    );
    assert.equal(echo.status, 200, echo.body.subarray(0, 300).toString());
    const prefix = Buffer.from("big:");
    assert.equal(echo.body.length, prefix.length + body.length, "echoed length");
    assert.ok(echo.body.subarray(0, prefix.length).equals(prefix), "the tag first");
    assert.ok(echo.body.subarray(prefix.length).equals(body), "the 4 MiB body intact");
  } finally {
    await c.close();
  }
});
