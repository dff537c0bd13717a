/**
 * The Python SDK under a host that offers no protocol v2 (nexo): the same FastAPI and Flask apps
 * answer over nexo's buffered v1. First driven by hand exactly as nexo drives a plugin (an
 * `initialize` with no portico offer, `broker.event` requests, `shutdown`), then through portico
 * with the plugin declining v2.
 */
import assert from "node:assert/strict";
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { type Running, startPortico } from "./support/portico.js";
import { PY_FIXTURES, PY_SDK, pySpec, pythonWith } from "./support/python.js";
import { fetchRaw, getJson, within } from "./support/v2.js";

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A plugin process as nexo runs one: its folder as working directory, JSON lines both ways. */
function nexoHost(file: string, id: string, python: string, env: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "portico-pyv1-"));
  dirs.push(dir);
  writeFileSync(join(dir, "nexo-plugin.toml"), `[plugin]\nid = "${id}"\nversion = "0.1.0"\nname = "${id}"\ndescription = "v1"\n`);
  const child: ChildProcessWithoutNullStreams = spawn(python, [join(PY_FIXTURES, file)], {
    cwd: dir,
    env: { ...process.env, PYTHONPATH: `${PY_SDK}:${PY_FIXTURES}`, PYTHONDONTWRITEBYTECODE: "1", ...env },
  });
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  const pending: ((line: Record<string, unknown>) => void)[] = [];
  const queued: Record<string, unknown>[] = [];
  let rest = "";
  child.stdout.on("data", (c: Buffer) => {
    rest += c.toString();
    for (let i = rest.indexOf("\n"); i >= 0; i = rest.indexOf("\n")) {
      const msg = JSON.parse(rest.slice(0, i)) as Record<string, unknown>;
      rest = rest.slice(i + 1);
      const waiter = pending.shift();
      if (waiter) waiter(msg);
      else queued.push(msg);
    }
  });
  const next = () =>
    within(
      new Promise<Record<string, unknown>>((resolve) => {
        const q = queued.shift();
        if (q) resolve(q);
        else pending.push(resolve);
      }),
      `a line from ${file} (stderr: ${stderr})`,
    );
  const send = (msg: unknown) => child.stdin.write(`${JSON.stringify(msg)}\n`);
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, next, send, exited, dir, stderr: () => stderr };
}

/** One HTTP request the way nexo sends it, and the HTTP reply out of the publish the plugin answers with. */
async function exchange(host: ReturnType<typeof nexoHost>, n: number, req: Record<string, unknown>) {
  const replyTo = `_inbox.test-${n}`;
  host.send({
    jsonrpc: "2.0",
    method: "broker.event",
    params: {
      topic: "plugin.x.http.request",
      event: { payload: { id: `m${n}`, topic: "plugin.x.http.request", reply_to: replyTo, payload: req } },
    },
  });
  const msg = (await host.next()) as {
    method: string;
    params: { topic: string; event: { payload: { payload: Record<string, unknown> } } };
  };
  assert.equal(msg.method, "broker.publish");
  assert.equal(msg.params.topic, replyTo);
  const reply = msg.params.event.payload.payload as { status: number; headers: [string, string][]; body_base64: string };
  return { ...reply, body: Buffer.from(reply.body_base64, "base64").toString() };
}

const head = (path: string, extra: [string, string][] = []) => ({
  method: "GET",
  path,
  query: "",
  headers: [["Host", "127.0.0.1:9"], ["X-Forwarded-Prefix", "/lab"], ...extra],
  body_base64: "",
});

test("FastAPI under a host that offers no v2: it answers initialize as v1, serves buffered, runs lifespan shutdown on shutdown", async () => {
  const python = pythonWith(["fastapi"]);
  const lifespan = join(mkdtempSync(join(tmpdir(), "portico-pyv1-")), "lifespan.txt");
  dirs.push(join(lifespan, ".."));
  const host = nexoHost("fastapi_lab.py", "fastapi_v1", python, { LIFESPAN_FILE: lifespan });
  host.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5" } });
  const init = (await host.next()) as { id: number; result: Record<string, unknown> };
  assert.equal(init.id, 1);
  assert.deepEqual(Object.keys(init.result).sort(), ["manifest", "server_version"]);
  assert.equal((init.result.manifest as { plugin: { id: string } }).plugin.id, "fastapi_v1");

  const item = await exchange(host, 1, { ...head("/lab/items/5"), query: "q=x" });
  assert.equal(item.status, 200);
  assert.deepEqual(JSON.parse(item.body), { id: "5", q: "x" });
  const body = Buffer.from(JSON.stringify({ a: 1 })).toString("base64");
  const posted = await exchange(host, 2, {
    ...head("/lab/json", [["Content-Type", "application/json"]]),
    method: "POST",
    body_base64: body,
  });
  assert.deepEqual(JSON.parse(posted.body), { got: { a: 1 }, type: "application/json" });
  // A streamed response is buffered whole.
  const events = await exchange(host, 3, { ...head("/lab/events"), query: "n=3&interval_ms=10" });
  assert.equal(events.body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
  assert.equal((await exchange(host, 4, head("/lab/nope"))).status, 404);

  host.send({ jsonrpc: "2.0", id: 7, method: "memory.recall", params: {} });
  assert.deepEqual(((await host.next()) as { error: { code: number } }).error.code, -32601);
  host.send({ jsonrpc: "2.0", id: 2, method: "shutdown", params: {} });
  assert.deepEqual(await host.next(), { jsonrpc: "2.0", id: 2, result: { ok: true } });
  assert.equal(await within(host.exited, "the plugin to exit"), 0);
  assert.equal(readFileSync(lifespan, "utf8"), "startup\nshutdown\n");
});

test("when the host goes away (stdin closes), lifespan shutdown runs and the plugin exits 0; a failed startup exits 1", async () => {
  const python = pythonWith(["fastapi"]);
  const lifespan = join(mkdtempSync(join(tmpdir(), "portico-pyv1-")), "lifespan.txt");
  dirs.push(join(lifespan, ".."));
  const host = nexoHost("fastapi_lab.py", "gone_v1", python, { LIFESPAN_FILE: lifespan });
  host.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5" } });
  await host.next();
  host.child.stdin.end();
  assert.equal(await within(host.exited, "the plugin to exit"), 0);
  assert.equal(readFileSync(lifespan, "utf8"), "startup\nshutdown\n");

  const failing = nexoHost("fastapi_lab.py", "fail_v1", python, { FAIL_STARTUP: "1" });
  failing.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5" } });
  assert.equal(await within(failing.exited, "the failing plugin to exit"), 1);
  assert.match(failing.stderr(), /the app failed to start: .*the database is not there/s);
});

test("Flask under a host that offers no v2: the same app answers, a failing view is a 500", async () => {
  const python = pythonWith(["flask"]);
  const host = nexoHost("flask_lab.py", "flask_v1", python);
  host.send({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5" } });
  const init = (await host.next()) as { result: Record<string, unknown> };
  assert.equal(init.result.portico, undefined);
  const home = await exchange(host, 1, head("/lab/"));
  assert.equal(JSON.parse(home.body).url_for, "/lab/items/7");
  const body = Buffer.from("x".repeat(100_000)).toString("base64");
  const up = await exchange(host, 2, { ...head("/lab/upload"), method: "POST", body_base64: body });
  assert.equal(JSON.parse(up.body).bytes, 100_000);
  assert.equal((await exchange(host, 3, head("/lab/fail"))).status, 500);
  host.send({ jsonrpc: "2.0", id: 2, method: "shutdown", params: {} });
  assert.deepEqual(await host.next(), { jsonrpc: "2.0", id: 2, result: { ok: true } });
  assert.equal(await within(host.exited, "the plugin to exit"), 0);
});

test("through portico, a plugin that declines v2 (protocol=1) is served over v1", async () => {
  const python = pythonWith(["fastapi"]);
  let p: Running | undefined;
  try {
    p = await startPortico([pySpec("fa_v1", "fastapi_lab.py", python, { env: { PORTICO_PROTOCOL: "1" } })]);
    const health = await getJson<{ plugins: { id: string; protocol: number }[] }>(`${p.url}/health`);
    assert.equal(health.plugins.find((x) => x.id === "fa_v1")?.protocol, 1);
    const home = await getJson(`${p.url}/fa_v1/`);
    assert.match(String(home.url_for), /\/fa_v1\/items\/7$/);
    const events = await fetchRaw(`${p.url}/fa_v1/events?n=2&interval_ms=10`);
    assert.equal(events.body.toString(), "data: 0\n\ndata: 1\n\n");
    assert.equal(events.headers["content-length"], String(events.body.length));
  } finally {
    await p?.close();
  }
});
