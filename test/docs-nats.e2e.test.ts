/**
 * docs/metrics.md's NATS gateway section against a real one: a nats-server, a host running one
 * plugin and a gateway, each a process of its own. The gateway's /health has exactly the fields
 * documented (plugin entries, replicas, hosts), and its /metrics the documented series.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { codeSpan, type Table, tablesWith } from "./support/markdown.js";
import { type GatewayProc, type Proc, startGateway, startHost, waitForPlugins } from "./support/nats-portico.js";
import { type NatsServer, startNatsServer } from "./support/nats-server.js";

const md = readFileSync(join(fileURLToPath(new URL("..", import.meta.url)), "docs", "metrics.md"), "utf8");
const fieldTables = tablesWith(md, "field", "type", "meaning");
const names = (t: Table | undefined) => (t?.rows ?? []).map((r) => codeSpan(r[0] ?? "") as string).sort();
const tableWith = (field: string) => fieldTables.find((t) => t.rows.some((r) => r[0] === `\`${field}\``));

let nats: NatsServer;
let host: Proc;
let gateway: GatewayProc;
before(async () => {
  nats = await startNatsServer();
  [host, gateway] = await Promise.all([startHost(nats.url, [{ id: "docs_nats" }]), startGateway(nats.url)]);
  await waitForPlugins(gateway.url, ["docs_nats"]);
});
after(async () => {
  await Promise.all([gateway?.stop(), host?.stop()]);
  await nats?.stop();
});

test("a gateway's /health has exactly the documented fields", async () => {
  const health = (await (await fetch(`${gateway.url}/health`)).json()) as {
    plugins: (Record<string, unknown> & { replicas: Record<string, unknown>[] })[];
    hosts: Record<string, unknown>[];
  };
  assert.deepEqual(Object.keys(health).sort(), names(tableWith("status")));
  const [plugin] = health.plugins;
  assert.ok(plugin);
  // The embedded fields, plus `replicas` (`transport` is only for a nexo plugin on NATS).
  const gatewayFields = names(tableWith("replicas")).filter((f) => f !== "transport");
  assert.deepEqual(Object.keys(plugin).sort(), [...names(tableWith("nextAttemptAt")), ...gatewayFields].sort());
  assert.equal(plugin.nextAttemptAt, null);
  const replicaCell = tableWith("replicas")?.rows.find((r) => r[0] === "`replicas`")?.[2] ?? "";
  const replicaFields = [...replicaCell.matchAll(/`(\w+)`/g)].map((m) => m[1] as string).sort();
  assert.deepEqual(Object.keys(plugin.replicas[0] ?? {}).sort(), replicaFields);
  assert.deepEqual(Object.keys(health.hosts[0] ?? {}).sort(), names(tableWith("lastSeenMs")));
});

test("a gateway's /metrics has the documented series", async () => {
  await fetch(`${gateway.url}/docs_nats/echo`).then((r) => r.text());
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  const series = [...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string).sort();
  const [table] = tablesWith(md, "name", "type", "labels");
  assert.deepEqual(names(table), series);
  assert.match(text, /portico_plugin_restarts_total\{plugin="docs_nats"\} 0/, "documented: stays at 0 on a gateway");
});
