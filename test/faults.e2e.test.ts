/**
 * Faults under load: steady traffic on two plugins while one of them is SIGKILLed every few
 * seconds. The other must answer every request; the killed one's requests must each end (an
 * answer, a clean error status, or a response cut short) within its timeout, never hang. portico
 * runs as its own process; the run is bounded to about 20 seconds.
 */
import assert from "node:assert/strict";
import { Agent, request } from "node:http";
import { after, before, test } from "node:test";
import { type Daemon, pluginHealth, startDaemon } from "./hostile/harness.js";
import { labSpec } from "./support/v2.js";

const TIMEOUT_S = 2;
let d: Daemon;
before(async () => {
  d = await startDaemon(
    [labSpec("steady"), labSpec("victim", `timeout_seconds = ${TIMEOUT_S}\nidle_timeout_seconds = ${TIMEOUT_S}`)],
    "[supervisor]\nrestart_delay_ms = 50\nrestart_max_delay_ms = 200\nmax_crashes = 100\ncrash_window_seconds = 60\n",
  );
});
after(() => d?.close());

interface Outcome {
  status: number;
  ms: number;
  /** The response started but was cut short, or the connection failed. */
  cut: boolean;
}

/** One request; resolves however it ends (never rejects), with how long it took. */
function hit(url: string, agent: Agent): Promise<Outcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const done = (status: number, cut: boolean) => resolve({ status, ms: performance.now() - started, cut });
    const req = request(url, { agent }, (res) => {
      res.on("data", () => {});
      res.on("end", () => done(res.statusCode ?? 0, !res.complete));
      res.on("error", () => done(res.statusCode ?? 0, true));
      res.on("aborted", () => done(res.statusCode ?? 0, true));
    });
    req.on("error", () => done(0, true));
    req.setTimeout(30_000, () => req.destroy());
    req.end();
  });
}

test("one plugin SIGKILLed every 2 s under load: the other answers everything, the killed one's requests end in time", async () => {
  const deadline = Date.now() + 16_000;
  const steady: Outcome[] = [];
  const victim: Outcome[] = [];
  const loop = async (url: string, into: Outcome[]) => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 100_000 && Date.now() < deadline; i++) into.push(await hit(url, agent));
    agent.destroy();
  };
  const killer = (async () => {
    let kills = 0;
    while (Date.now() < deadline - 2000) {
      await new Promise((r) => setTimeout(r, 2000));
      const h = await pluginHealth(d, "victim");
      if (h.pid) {
        process.kill(h.pid, "SIGKILL");
        kills++;
      }
    }
    return kills;
  })();
  await Promise.all([
    ...Array.from({ length: 4 }, () => loop(`${d.url}/steady/pid`, steady)),
    // Small answers, and streams that are often in flight when the kill comes.
    ...Array.from({ length: 2 }, () => loop(`${d.url}/victim/pid`, victim)),
    ...Array.from({ length: 2 }, () => loop(`${d.url}/victim/sse?n=4&ms=100`, victim)),
  ]);
  const kills = await killer;

  assert.ok(kills >= 5, `only ${kills} kills`);
  assert.ok(steady.length > 200, `only ${steady.length} steady requests`);
  const steadyBad = steady.filter((o) => o.status !== 200 || o.cut);
  assert.deepEqual(steadyBad, [], "every request to the steady plugin answered 200");

  const slowest = Math.max(...victim.map((o) => o.ms));
  assert.ok(slowest < (TIMEOUT_S + 1.5) * 1000, `a request to the killed plugin took ${slowest.toFixed(0)} ms`);
  const statuses = new Set(victim.map((o) => o.status));
  for (const s of statuses) assert.ok([0, 200, 502, 503, 504].includes(s), `unexpected status ${s}`);
  assert.ok(
    victim.some((o) => o.status === 200 && !o.cut),
    "the killed plugin still served between kills",
  );
  assert.ok(
    victim.some((o) => o.status === 503 || o.status === 502 || o.cut),
    "the kills showed (some requests failed cleanly)",
  );
});
