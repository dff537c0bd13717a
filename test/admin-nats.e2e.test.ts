/**
 * The admin API on a NATS gateway: it shows the plugins its hosts run, with the hosts and their
 * pids, and the traffic it forwarded; it cannot restart or stop them (409), and their stderr stays
 * on the host. The page says so too.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";
import { type GatewayProc, type Proc, startGateway, startHost, waitForPlugins } from "./support/nats-portico.js";
import { type NatsServer, startNatsServer } from "./support/nats-server.js";
import { until } from "./support/portico.js";

let nats: NatsServer;
let host: Proc;
let gateway: GatewayProc;

before(async () => {
  nats = await startNatsServer();
  host = await startHost(nats.url, [{ id: "alpha" }]);
  gateway = await startGateway(nats.url, "[admin]\nenabled = true\n");
  await waitForPlugins(gateway.url, ["alpha"]);
});

after(async () => {
  await gateway?.stop();
  await host?.stop();
  await nats?.stop();
});

interface Replica {
  host: string;
  name: string;
  state: string;
  pid: number | null;
}

test("status on a gateway: the plugin, its host and pid, the gateway's traffic; no stderr; actions 409", async () => {
  for (let i = 0; i < 5; i++) assert.equal((await fetch(`${gateway.url}/alpha/echo`)).status, 200);
  const health = (await (await fetch(`${gateway.url}/health`)).json()) as { plugins: { id: string; replicas: Replica[] }[] };
  const replica = health.plugins.find((p) => p.id === "alpha")?.replicas[0];
  assert.ok(replica?.pid, JSON.stringify(health));
  let alpha: Record<string, unknown> | undefined;
  await until(
    async () => {
      const s = (await (await fetch(`${gateway.url}/admin/api/status`)).json()) as {
        portico: { role: string };
        plugins: Record<string, unknown>[];
      };
      assert.equal(s.portico.role, "gateway");
      alpha = s.plugins.find((p) => p.id === "alpha");
      return (alpha?.traffic as { history: number[] } | undefined)?.history.reduce((a, b) => a + b, 0) === 5;
    },
    5000,
    "the gateway's traffic to alpha in its figures",
  );
  assert.equal(alpha?.state, "ready");
  assert.equal(alpha?.prefix, "/alpha");
  assert.equal(alpha?.pid, replica.pid);
  assert.equal(alpha?.local, false);
  assert.equal(alpha?.stderr, null);
  const replicas = alpha?.replicas as Replica[];
  assert.equal(replicas.length, 1);
  assert.deepEqual([replicas[0]?.host, replicas[0]?.name, replicas[0]?.pid], [replica.host, replica.name, replica.pid]);
  assert.equal(typeof replicas[0]?.name, "string");
  const r = await fetch(`${gateway.url}/admin/api/plugins/alpha/restart`, { method: "POST" });
  assert.equal(r.status, 409);
  assert.deepEqual(await r.json(), { error: "plugin not run by this process" });
});

test("the page on a gateway: the plugin's host and pid, the host count, no buttons", async () => {
  const executablePath = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"].find((p) => existsSync(p));
  assert.ok(executablePath, "this test needs the Debian package `chromium` (sh scripts/install-system-deps.sh installs it)");
  const health = (await (await fetch(`${gateway.url}/health`)).json()) as { plugins: { id: string; replicas: Replica[] }[] };
  const replica = health.plugins.find((p) => p.id === "alpha")?.replicas[0];
  const browser = await chromium.launch({ executablePath });
  try {
    const page = await browser.newPage();
    await page.goto(`${gateway.url}/admin`);
    await page.waitForSelector('[data-plugin="alpha"][data-state="ready"]', { timeout: 10_000 });
    const facts = (await page.locator('[data-plugin="alpha"] [data-field="facts"]').textContent()) ?? "";
    assert.ok(facts.startsWith(`on ${replica?.name} (pid ${replica?.pid}) · up `), facts);
    assert.match((await page.locator("#meta").textContent()) ?? "", /^gateway · pid \d+ · up \d+s · 1 plugin · 1 host$/);
    assert.equal(await page.locator('[data-plugin="alpha"] button[data-action="restart"]').isVisible(), false);
    assert.equal(await page.locator('[data-plugin="alpha"] [data-field="stderr"]').textContent(), "(stderr stays on its NATS host)");
  } finally {
    await browser.close();
  }
});
