/**
 * A nexo plugin that talks NATS itself, served by a gateway from its manifest alone (no command,
 * no host): requests go out as NATS requests on plugin.<id>.http.request, as nexo sends them.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { FAST_NATS } from "./support/nats-portico.js";
import { startNatsServer } from "./support/nats-server.js";
import { fetchRaw } from "./support/v2.js";

const PLUGIN = fileURLToPath(new URL("./fixtures/nats/nexo-nats-plugin.mjs", import.meta.url));
const BIN = fileURLToPath(new URL("../bin/portico.js", import.meta.url));

test("a nexo plugin on NATS is served from its manifest: GET, a POST body both ways, 503 once it is gone", async () => {
  const nats = await startNatsServer();
  const dir = mkdtempSync(join(tmpdir(), "portico-nexo-nats-"));
  mkdirSync(join(dir, "natsdemo"));
  writeFileSync(
    join(dir, "natsdemo", "nexo-plugin.toml"),
    '[plugin]\nid = "natsdemo"\nversion = "0.1.0"\nname = "natsdemo"\ndescription = "nexo on NATS"\n\n[plugin.http]\nmount_prefix = "/natsdemo"\ntimeout_seconds = 2\n',
  );
  writeFileSync(
    join(dir, "portico.toml"),
    `listen = "127.0.0.1:0"\nplugins = "${dir}"\n[nats]\nurl = "${nats.url}"\nrole = "gateway"\n${FAST_NATS}`,
  );
  const plugin = spawn(process.execPath, [PLUGIN], { env: { ...process.env, NATS_URL: nats.url }, stdio: ["ignore", "pipe", "inherit"] });
  const gateway = spawn(process.execPath, [BIN, "serve", "--config", join(dir, "portico.toml")], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    await once(plugin.stdout, "data");
    let out = "";
    gateway.stdout.on("data", (c: Buffer) => {
      out += c.toString();
    });
    const deadline = Date.now() + 10_000;
    while (!/portico listening on (http:\/\/\S+)/.test(out) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const url = /portico listening on (http:\/\/[^\s"]+)/.exec(out)?.[1];
    assert.ok(url, `gateway did not listen: ${out}`);

    const r = await fetchRaw(`${url}/natsdemo/hello?x=1`);
    assert.equal(r.status, 200);
    const seen = JSON.parse(r.body.toString());
    assert.deepEqual([seen.method, seen.path, seen.query, seen.topic], ["GET", "/natsdemo/hello", "x=1", "plugin.natsdemo.http.request"]);

    const body = randomBytes(256 * 1024);
    const echo = await fetchRaw(`${url}/natsdemo/echo`, { method: "POST", body });
    assert.equal(echo.status, 200);
    assert.ok(echo.body.equals(body), "the body came back intact");

    const health = JSON.parse((await fetchRaw(`${url}/health`)).body.toString());
    const entry = health.plugins.find((p: { id: string }) => p.id === "natsdemo");
    assert.equal(entry.prefix, "/natsdemo");
    assert.equal(entry.state, "ready");

    plugin.kill("SIGKILL");
    await once(plugin, "exit");
    const started = Date.now();
    const gone = await fetchRaw(`${url}/natsdemo/hello`);
    assert.equal(gone.status, 503);
    assert.ok(Date.now() - started < 1000, `503 took ${Date.now() - started} ms`);
    assert.ok(gone.headers["retry-after"]);
  } finally {
    plugin.kill("SIGKILL");
    gateway.kill("SIGTERM");
    await once(gateway, "exit");
    await nats.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
