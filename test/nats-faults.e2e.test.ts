/**
 * Faults across NATS, with real processes only: a real nats-server (test/support/nats-server.ts)
 * and `portico serve --role gateway|host` processes (test/support/nats-portico.ts), on 127.0.0.1.
 *
 *   1. a host SIGKILLed under load: every request ends with a status, the live replica takes over;
 *   2. a request right after the only host died: 503 at once (NATS "no responders"), not 404;
 *   3. nats-server stopped for ~3 s under load: 503 while it is away, 200 again by itself;
 *   4. 256 MiB each way with max_payload 64 KiB: intact, gateway and host RSS bounded;
 *   5. gateway SIGTERM: its WebSockets close with 1001, it exits 0;
 *   6. a plugin that never answers: 504 after the route's timeout.
 *
 * Every test starts its own nats-server and portico processes and stops them in `finally`; every
 * load loop is bounded in count and in time; every request has a client-side deadline.
 */
import assert from "node:assert/strict";
import { Agent, type IncomingHttpHeaders, type IncomingMessage, request } from "node:http";
import { test } from "node:test";
import WebSocket from "ws";
import { CHUNK, chunkOf, crc32, expected } from "./fixtures/v2/pattern.mjs";
import { defined } from "./support/assert.js";
import { type GatewayProc, gatewayHealth, type Proc, startGateway, startHost, until, waitForPlugins } from "./support/nats-portico.js";
import { type NatsServer, type NatsServerOptions, startNatsServer } from "./support/nats-server.js";
import type { PluginSpec } from "./support/portico.js";
import { labSpec, MiB, memoryOf, sleep, within } from "./support/v2.js";

/**
 * The processes one test started, stopped in reverse order (gateways, hosts, then NATS). close()
 * first waits for starts still under way (a sibling's failure must not leave one running).
 */
class Lab {
  readonly #servers: NatsServer[] = [];
  readonly #procs: Proc[] = [];
  readonly #starting: Promise<unknown>[] = [];

  #track<T>(start: Promise<T>, keep: (v: T) => void): Promise<T> {
    const p = start.then((v) => {
      keep(v);
      return v;
    });
    this.#starting.push(p.catch(() => {}));
    return p;
  }

  nats(opts: NatsServerOptions = {}): Promise<NatsServer> {
    return this.#track(startNatsServer(opts), (s) => this.#servers.push(s));
  }

  host(nats: NatsServer, plugins: PluginSpec[]): Promise<Proc> {
    return this.#track(startHost(nats.url, plugins), (h) => this.#procs.push(h));
  }

  gateway(nats: NatsServer): Promise<GatewayProc> {
    return this.#track(startGateway(nats.url), (g) => this.#procs.push(g));
  }

  async close(): Promise<void> {
    await Promise.all(this.#starting.splice(0));
    for (const p of this.#procs.splice(0).reverse()) await p.stop(3000).catch(() => {});
    for (const s of this.#servers.splice(0)) await s.stop().catch(() => {});
  }
}

/** How one request ended. Times are performance.now() values. */
interface Outcome {
  path: string;
  start: number;
  end: number;
  ms: number;
  /** 0: no response head at all (connection refused, reset, or the client deadline). */
  status: number;
  headers: IncomingHttpHeaders;
  /** The first 4 KiB of the body. */
  body: string;
  bytes: number;
  /** The body was cut short (after a head). */
  cut: boolean;
  /** The client deadline fired: the request hung. */
  hung: boolean;
  error: string | undefined;
}

/** One request; resolves however it ends (never rejects), within `deadlineMs` (then it is destroyed, `hung`). */
function hit(base: string, path: string, opts: { agent?: Agent; deadlineMs: number }): Promise<Outcome> {
  const start = performance.now();
  return new Promise((resolve) => {
    let res: IncomingMessage | undefined;
    let settled = false;
    let hung = false;
    let error: string | undefined;
    let bytes = 0;
    let body = "";
    const done = (cut: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      const end = performance.now();
      resolve({
        path,
        start,
        end,
        ms: end - start,
        status: res?.statusCode ?? 0,
        headers: res?.headers ?? {},
        body,
        bytes,
        cut,
        hung,
        error,
      });
    };
    const req = request(`${base}${path}`, { agent: opts.agent ?? false }, (r) => {
      res = r;
      r.on("data", (c: Buffer) => {
        bytes += c.length;
        if (body.length < 4096) body += c.toString("latin1").slice(0, 4096 - body.length);
      });
      r.on("end", () => done(!r.complete));
      r.on("aborted", () => done(true));
      r.on("error", (err) => {
        error = (err as NodeJS.ErrnoException).code ?? err.message;
        done(true);
      });
      r.on("close", () => done(!r.complete));
    });
    const timer = setTimeout(() => {
      hung = true;
      req.destroy(new Error("client deadline"));
    }, opts.deadlineMs);
    req.on("error", (err) => {
      error ??= (err as NodeJS.ErrnoException).code ?? err.message;
      done(res !== undefined);
    });
    req.end();
  });
}

/** "200×12 503×3 …" */
function tally(list: Outcome[]): string {
  const by = new Map<string, number>();
  for (const o of list) {
    const k = `${o.hung ? "hung" : o.status}${o.cut ? "(cut)" : ""}`;
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  return (
    [...by]
      .sort()
      .map(([k, n]) => `${k}×${n}`)
      .join(" ") || "none"
  );
}

const pidOf = (o: Outcome): number | undefined => {
  try {
    return (JSON.parse(o.body) as { pid?: number }).pid;
  } catch {
    return undefined;
  }
};

test("a host SIGKILLed under load: every request ends with a status, the live replica takes everything at once", async (t) => {
  const ROUTE_TIMEOUT_S = 3;
  const lab = new Lab();
  try {
    const nats = await lab.nats();
    const spec = labSpec("lab", `timeout_seconds = ${ROUTE_TIMEOUT_S}\nidle_timeout_seconds = ${ROUTE_TIMEOUT_S}`);
    const [victim, survivor] = await Promise.all([lab.host(nats, [spec]), lab.host(nats, [spec])]);
    const gateway = await lab.gateway(nats);
    await waitForPlugins(gateway.url, ["lab"], 2);

    // Which plugin pid lives on which host (a host's NATS id carries its process id).
    const replicas = defined(
      (await gatewayHealth(gateway.url)).plugins.find((p) => p.id === "lab"),
      "lab in /health",
    ).replicas;
    const pluginOn = (h: Proc) => defined(replicas.find((r) => r.host.includes(`-${h.pid}-`))?.pid, `the replica on host ${h.pid}`);
    const victimPid = pluginOn(victim);
    const survivorPid = pluginOn(survivor);

    const DOWNLOAD = MiB;
    const t0 = performance.now();
    const deadline = t0 + 6000;
    const outcomes: Outcome[] = [];
    /** `path(i)`: the i-th request's path. */
    const worker = async (path: (i: number) => string) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 20_000 && performance.now() < deadline; i++) {
          outcomes.push(await hit(gateway.url, path(i), { agent, deadlineMs: (ROUTE_TIMEOUT_S + 2) * 1000 }));
        }
      } finally {
        agent.destroy();
      }
    };
    let tKill = 0;
    const killer = (async () => {
      await sleep(2000);
      tKill = performance.now();
      await victim.kill();
    })();
    await Promise.all([
      ...Array.from({ length: 8 }, () => worker(() => "/lab/pid")),
      // A tag of its own for each download: the lab plugin counts what it produced per tag.
      ...Array.from({ length: 2 }, (_, w) => worker((i) => `/lab/download?bytes=${DOWNLOAD}&cl=1&tag=dl-${w}-${i}`)),
      killer,
    ]);

    const rel = (x: number) => (x - tKill).toFixed(0);
    const show = (o: Outcome) =>
      `${o.path} start ${rel(o.start)} ms, ${o.ms.toFixed(0)} ms: ${o.hung ? "hung" : o.status}${o.cut ? " cut" : ""} ${o.error ?? ""}`;
    const before = outcomes.filter((o) => o.end < tKill);
    const across = outcomes.filter((o) => o.end >= tKill && o.start < tKill + 1000);
    const after = outcomes.filter((o) => o.start >= tKill + 1000);
    const firstBad = after.filter((o) => o.status !== 200 || o.cut).sort((a, b) => a.start - b.start)[0];
    const lastNon200 = Math.max(0, ...outcomes.filter((o) => o.status !== 200).map((o) => o.end - tKill));
    t.diagnostic(
      `${outcomes.length} requests in ${((performance.now() - t0) / 1000).toFixed(1)} s; before the kill: ${tally(before)}; ` +
        `kill → +1 s: ${tally(across)}; from +1 s: ${tally(after)}; last non-200 ended at +${lastNon200.toFixed(0)} ms; ` +
        `slowest ${Math.max(...outcomes.map((o) => o.ms)).toFixed(0)} ms`,
    );

    assert.ok(tKill > 0, "the host was killed");
    assert.ok(before.length > 40 && after.length > 100, `too few requests: ${before.length} before, ${after.length} after`);
    const hung = outcomes.filter((o) => o.hung);
    assert.deepEqual(hung.map(show), [], "no request outlived the route timeout");
    const headless = outcomes.filter((o) => o.status === 0);
    assert.deepEqual(headless.map(show), [], "every request got a status (no reset without a head)");
    const odd = outcomes.filter((o) => ![200, 502, 503, 504].includes(o.status));
    assert.deepEqual(odd.map(show), [], "every status is 200, 502, 503 or 504");
    assert.deepEqual(before.filter((o) => o.status !== 200 || o.cut).map(show), [], "all 200 before the kill");
    assert.equal(firstBad, undefined, `from 1 s after the kill every request is 200; first that was not: ${firstBad && show(firstBad)}`);

    // Both replicas served before; only the survivor after.
    const pidsBefore = new Set(before.map(pidOf).filter(Boolean));
    const pidsAfter = new Set(after.map(pidOf).filter(Boolean));
    assert.deepEqual([...pidsBefore].sort(), [victimPid, survivorPid].sort(), "both replicas served before the kill");
    assert.deepEqual([...pidsAfter], [survivorPid], "only the live replica serves after the kill");
    // Downloads that completed are whole.
    const downloads = outcomes.filter((o) => o.path.includes("download") && o.status === 200 && !o.cut);
    assert.ok(downloads.length > 0, "some downloads completed");
    for (const d of downloads) assert.equal(d.bytes, DOWNLOAD);
  } finally {
    await lab.close();
  }
});

test("no responders: a request right after the only host was SIGKILLed gets 503 with Retry-After within 1 s, not 404", async (t) => {
  const lab = new Lab();
  try {
    const nats = await lab.nats();
    const host = await lab.host(nats, [labSpec("lab")]);
    const gateway = await lab.gateway(nats);
    await waitForPlugins(gateway.url, ["lab"]);
    // The link to the host is up and used.
    const warm = await hit(gateway.url, "/lab/pid", { deadlineMs: 5000 });
    assert.equal(warm.status, 200, warm.body);

    // An exchange the host already has when it dies: it must end too, not wait for the route timeout.
    const inFlight = hit(gateway.url, "/lab/never?tag=inflight", { deadlineMs: 5000 });
    await sleep(200); // it reaches the plugin within a few ms

    const killedAt = performance.now();
    await host.kill();
    const sentAfter = performance.now() - killedAt;
    const r = await hit(gateway.url, "/lab/pid", { deadlineMs: 5000 });
    // And once more: the route lingers (503), it does not vanish (404).
    const again = await hit(gateway.url, "/lab/pid", { deadlineMs: 5000 });
    const held = await inFlight;
    const heldEnd = held.end - killedAt;
    t.diagnostic(
      `the request in flight at the kill: ${held.hung ? "hung" : held.status} ${held.ms.toFixed(0)} ms after it was sent, ${heldEnd.toFixed(0)} ms after SIGKILL, Retry-After ${held.headers["retry-after"]}, body ${held.body.trim()}`,
    );
    t.diagnostic(
      `request sent ${sentAfter.toFixed(0)} ms after SIGKILL: ${r.status} in ${r.ms.toFixed(0)} ms, Retry-After ${r.headers["retry-after"]}, body ${r.body.trim()}; ` +
        `next: ${again.status} in ${again.ms.toFixed(0)} ms`,
    );
    assert.ok(sentAfter < 100, `the request went out ${sentAfter.toFixed(0)} ms after the kill`);
    assert.equal(r.status, 503, `got ${r.status} ${r.error ?? ""} ${r.body}`);
    assert.ok(r.ms < 1000, `503 after ${r.ms.toFixed(0)} ms`);
    assert.ok(Number(r.headers["retry-after"]) >= 1, `Retry-After: ${r.headers["retry-after"]}`);
    assert.equal(again.status, 503, `then ${again.status} ${again.body}`);
    assert.ok(again.ms < 1000, `then 503 after ${again.ms.toFixed(0)} ms`);
    assert.ok(
      [502, 503].includes(held.status),
      `in flight at the kill: ${held.hung ? "hung" : held.status} ${held.error ?? ""} ${held.body}`,
    );
    assert.ok(heldEnd < 1000, `the request in flight at the kill ended ${heldEnd.toFixed(0)} ms after it`);
  } finally {
    await lab.close();
  }
});

test("nats-server stopped for 3 s under load: 503 (never 404) while it is away, 200 again by itself once it is back", async (t) => {
  const lab = new Lab();
  try {
    const nats = await lab.nats();
    await lab.host(nats, [labSpec("lab", "timeout_seconds = 3")]);
    const gateway = await lab.gateway(nats);
    await waitForPlugins(gateway.url, ["lab"]);

    const t0 = performance.now();
    const deadline = t0 + 20_000;
    const outcomes: Outcome[] = [];
    let stopBegin = 0;
    let down = 0;
    let upBegin = 0;
    let up = 0;
    let firstOk = 0;
    /** Once back: stop a second and a half after the first 200 (or at the deadline). */
    const finished = () => performance.now() > deadline || (firstOk > 0 && performance.now() > firstOk + 1500);
    const worker = async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < 5000 && !finished(); i++) {
          const o = await hit(gateway.url, "/lab/pid", { agent, deadlineMs: 5000 });
          outcomes.push(o);
          if (up && !firstOk && o.status === 200 && o.start >= up) firstOk = o.end;
          await sleep(10);
        }
      } finally {
        agent.destroy();
      }
    };
    const operator = (async () => {
      await sleep(1000);
      stopBegin = performance.now();
      await nats.stop();
      down = performance.now();
      await sleep(3000);
      upBegin = performance.now();
      await nats.restart();
      up = performance.now();
    })();
    await Promise.all([worker(), worker(), operator]);

    const rel = (x: number) => (x - down).toFixed(0);
    const show = (o: Outcome) =>
      `start ${rel(o.start)} ms, ${o.ms.toFixed(0)} ms: ${o.hung ? "hung" : o.status} ${o.error ?? ""} ${o.body.slice(0, 120)}`;
    const beforeStop = outcomes.filter((o) => o.end < stopBegin);
    const atStop = outcomes.filter((o) => o.start < down && o.end >= stopBegin);
    const whileDown = outcomes.filter((o) => o.start >= down && o.start < upBegin);
    const afterUp = outcomes.filter((o) => o.start >= upBegin);
    const back = firstOk ? firstOk - up : Number.NaN;
    t.diagnostic(
      `${outcomes.length} requests; before the stop: ${tally(beforeStop)}; in flight at the stop: ${tally(atStop)}; ` +
        `while down (3 s): ${tally(whileDown)}, slowest ${Math.max(0, ...whileDown.map((o) => o.ms)).toFixed(0)} ms; ` +
        `after restart: ${tally(afterUp)}; first 200 ${back.toFixed(0)} ms after the server accepted connections again`,
    );

    assert.ok(up > 0, "the server came back");
    assert.deepEqual(outcomes.filter((o) => o.status === 404).map(show), [], "never 404");
    assert.deepEqual(outcomes.filter((o) => o.status === 0).map(show), [], "every request got a status");
    assert.ok(beforeStop.length > 10 && beforeStop.every((o) => o.status === 200), `before the stop: ${tally(beforeStop)}`);
    assert.deepEqual(atStop.filter((o) => ![200, 502, 503].includes(o.status)).map(show), [], "in flight at the stop: 200, 502 or 503");
    assert.ok(whileDown.length > 20, `only ${whileDown.length} requests while the server was down`);
    assert.deepEqual(whileDown.filter((o) => o.status !== 503 || o.ms >= 2000).map(show), [], "503 within 2 s while down");
    assert.ok(
      whileDown.every((o) => Number(o.headers["retry-after"]) >= 1),
      "503s carry Retry-After",
    );
    assert.ok(firstOk > 0 && back < 10_000, `200 again within 10 s of the restart (${back.toFixed(0)} ms)`);
    assert.deepEqual(
      afterUp.filter((o) => o.status !== 200 && o.status !== 503).map(show),
      [],
      "after the restart: 503 until back, then 200",
    );
    assert.deepEqual(afterUp.filter((o) => o.start > firstOk && o.status !== 200).map(show), [], "200 every time once back");
  } finally {
    await lab.close();
  }
});

test("256 MiB down and 256 MiB up over NATS with max_payload 64 KiB: intact, gateway and host RSS under 150 MiB", async (t) => {
  const SIZE = 256 * MiB;
  const RSS_LIMIT = 150 * MiB;
  const lab = new Lab();
  let sampler: NodeJS.Timeout | undefined;
  try {
    const nats = await lab.nats({ maxPayload: 64 * 1024 });
    const host = await lab.host(nats, [labSpec("lab", "timeout_seconds = 30\nidle_timeout_seconds = 30")]);
    const gateway = await lab.gateway(nats);
    await waitForPlugins(gateway.url, ["lab"]);
    const plugin = await hit(gateway.url, "/lab/pid", { deadlineMs: 5000 });
    const pluginPid = defined(pidOf(plugin), "the plugin's pid");

    const watched = { gateway: gateway.pid, host: host.pid, plugin: pluginPid };
    const atStart = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, memoryOf(pid).rss])) as Record<
      keyof typeof watched,
      number
    >;
    const peak = { ...atStart };
    let samples = 0;
    const sample = () => {
      samples++;
      for (const [k, pid] of Object.entries(watched) as [keyof typeof watched, number][]) {
        try {
          peak[k] = Math.max(peak[k], memoryOf(pid).rss);
        } catch {
          // exited: the assertions below catch that
        }
      }
    };
    sampler = setInterval(sample, 100);

    // Download: checksummed as it arrives, nothing held.
    const down = await within(
      new Promise<{ status: number; bytes: number; crc: number; complete: boolean; ms: number; cl: string | undefined }>(
        (resolve, reject) => {
          const t0 = performance.now();
          const req = request(`${gateway.url}/lab/download?bytes=${SIZE}&cl=1&tag=big`, { agent: false }, (res) => {
            let bytes = 0;
            let crc = 0;
            res.on("data", (c: Buffer) => {
              bytes += c.length;
              crc = crc32(c, crc);
            });
            res.on("end", () =>
              resolve({
                status: res.statusCode ?? 0,
                bytes,
                crc,
                complete: res.complete,
                ms: performance.now() - t0,
                cl: res.headers["content-length"],
              }),
            );
            res.on("error", reject);
          });
          req.on("error", reject);
          req.end();
        },
      ),
      "the 256 MiB download",
      60_000,
    );

    // Upload: chunk by chunk as the connection takes them.
    let sentCrc = 0;
    const up = await within(
      new Promise<{ status: number; body: string; ms: number }>((resolve, reject) => {
        const t0 = performance.now();
        const req = request(
          `${gateway.url}/lab/upload?tag=big`,
          { method: "POST", agent: false, headers: { "content-type": "application/octet-stream", "content-length": String(SIZE) } },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (c: string) => (body += c));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0 }));
            res.on("error", reject);
          },
        );
        req.on("error", reject);
        void (async () => {
          for (let i = 0, at = 0; at < SIZE && !req.destroyed; i++) {
            const c = chunkOf(i, Math.min(CHUNK, SIZE - at));
            at += c.length;
            sentCrc = crc32(c, sentCrc);
            await new Promise<void>((r) => req.write(c, () => r()));
          }
          req.end();
        })().catch(reject);
      }),
      "the 256 MiB upload",
      60_000,
    );
    clearInterval(sampler);
    sample();

    const mb = (n: number) => (n / MiB).toFixed(1);
    const rate = (ms: number) => (SIZE / MiB / (ms / 1000)).toFixed(0);
    const hwm = Object.fromEntries(Object.entries(watched).map(([k, pid]) => [k, mb(memoryOf(pid).hwm)]));
    t.diagnostic(
      `download ${down.ms.toFixed(0)} ms (${rate(down.ms)} MiB/s), upload ${up.ms.toFixed(0)} ms (${rate(up.ms)} MiB/s); ` +
        `peak RSS over ${samples} samples: gateway ${mb(peak.gateway)} MiB (start ${mb(atStart.gateway)}), ` +
        `host ${mb(peak.host)} MiB (start ${mb(atStart.host)}), plugin ${mb(peak.plugin)} MiB (start ${mb(atStart.plugin)}); ` +
        `VmHWM gateway ${hwm.gateway}, host ${hwm.host}, plugin ${hwm.plugin} MiB`,
    );

    assert.equal(down.status, 200);
    assert.equal(down.cl, String(SIZE));
    assert.ok(down.complete, "the download completed");
    assert.deepEqual({ bytes: down.bytes, crc: down.crc }, expected(SIZE), "the download is intact");
    assert.equal(up.status, 200, up.body);
    assert.deepEqual(JSON.parse(up.body), { bytes: SIZE, crc: sentCrc }, "the plugin got the upload intact");
    assert.ok(peak.gateway < RSS_LIMIT, `gateway peak RSS ${mb(peak.gateway)} MiB`);
    assert.ok(peak.host < RSS_LIMIT, `host peak RSS ${mb(peak.host)} MiB`);
  } finally {
    clearInterval(sampler);
    await lab.close();
  }
});

test("gateway SIGTERM: its WebSockets close with 1001 promptly, and it exits 0", async (t) => {
  const lab = new Lab();
  let ws: WebSocket | undefined;
  try {
    const nats = await lab.nats();
    await lab.host(nats, [labSpec("lab")]);
    const gateway = await lab.gateway(nats);
    await waitForPlugins(gateway.url, ["lab"]);

    const socket = new WebSocket(`${gateway.url.replace("http:", "ws:")}/lab/ws?tag=term`, ["lab.v2"]);
    ws = socket;
    await within(
      new Promise<void>((resolve, reject) => {
        socket.once("open", resolve);
        socket.once("error", reject);
        socket.once("unexpected-response", (_req, res: IncomingMessage) => reject(new Error(`unexpected response ${res.statusCode}`)));
      }),
      "the WebSocket to open",
    );
    assert.equal(socket.protocol, "lab.v2");
    const echoed = within(new Promise<string>((resolve) => socket.once("message", (d: Buffer) => resolve(d.toString()))), "the echo");
    socket.send("hello over nats");
    assert.equal(await echoed, "hello over nats");

    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      socket.once("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString(), at: performance.now() })),
    );
    const t0 = performance.now();
    const exit = gateway.stop(10_000);
    const c = await within(closed, "the WebSocket to close", 5000);
    const code = await exit;
    const exitMs = performance.now() - t0;
    t.diagnostic(
      `close ${c.code} "${c.reason}" ${(c.at - t0).toFixed(0)} ms after SIGTERM; gateway exited ${code} after ${exitMs.toFixed(0)} ms`,
    );
    assert.equal(c.code, 1001);
    assert.ok(c.at - t0 < 3000, `closed ${(c.at - t0).toFixed(0)} ms after SIGTERM`);
    assert.equal(code, 0, `gateway exit code: ${JSON.stringify(gateway.logs.slice(-5))}`);
  } finally {
    ws?.terminate();
    await lab.close();
  }
});

test("a plugin that never answers: 504 after the route's 0.5 s timeout", async (t) => {
  const lab = new Lab();
  try {
    const nats = await lab.nats();
    await lab.host(nats, [labSpec("labt", "timeout_seconds = 0.5")]);
    const gateway = await lab.gateway(nats);
    await waitForPlugins(gateway.url, ["labt"]);
    const warm = await hit(gateway.url, "/labt/pid", { deadlineMs: 5000 });
    assert.equal(warm.status, 200);

    const r = await hit(gateway.url, "/labt/never?tag=late", { deadlineMs: 5000 });
    t.diagnostic(`GET /labt/never: ${r.status} after ${r.ms.toFixed(0)} ms`);
    assert.equal(r.status, 504, `${r.status} ${r.error ?? ""} ${r.body}`);
    assert.ok(r.ms >= 450 && r.ms < 1500, `504 after ${r.ms.toFixed(0)} ms`);
    // The plugin was told: the abort reaches it across the link.
    await until(
      async () => {
        const s = await hit(gateway.url, "/labt/state?tag=late", { deadlineMs: 2000 });
        return s.status === 200 && (JSON.parse(s.body) as { aborted: string | null }).aborted ? true : undefined;
      },
      3000,
      "the plugin to see the abort",
    );
  } finally {
    await lab.close();
  }
});
