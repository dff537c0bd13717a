/**
 * `portico new NAME --lang python`: a plain ASGI app whose own test (unittest, standard library
 * only) passes, served by portico's Python SDK (python/portico_sdk, put on PYTHONPATH by the
 * manifest) on the first try under a real `portico serve`.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { emptyDir, ensureBuilt, ROOT, run, serve, stopAll } from "./support/cli.js";

const cwd = emptyDir();
const folder = join(cwd, "plugins", "hello_py");
before(() => {
  ensureBuilt();
  assert.equal(spawnSync("python3", ["--version"]).status, 0, "python3 is needed (Debian package python3: scripts/install-system-deps.sh)");
});
after(async () => {
  await stopAll();
  rmSync(cwd, { recursive: true, force: true });
});

test("new --lang python: the folder, and its own test passes", async () => {
  const r = await run(["new", "hello_py", "--lang", "python", "--dir", "plugins"], cwd);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const f of ["nexo-plugin.toml", "app.py", "plugin.py", "test_app.py", "README.md"])
    assert.ok(existsSync(join(folder, f)), `${f} written`);
  const manifest = readFileSync(join(folder, "nexo-plugin.toml"), "utf8");
  assert.match(manifest, /mount_prefix = "\/hello_py"/);
  assert.ok(manifest.includes(`PYTHONPATH = ${JSON.stringify(join(ROOT, "python"))}`), manifest);
  const own = await run(["-m", "unittest", "-v"], folder, { command: "python3" });
  assert.equal(own.code, 0, own.stdout + own.stderr);
  assert.match(own.stderr, /Ran 3 tests[\s\S]*OK/);
});

// Needs portico's Python SDK (python/portico_sdk in this repository).
test("new --lang python: portico serve mounts it at once", async () => {
  assert.ok(existsSync(join(folder, "plugin.py")), "the previous test wrote the plugin");
  assert.ok(existsSync(join(ROOT, "python", "portico_sdk")), `portico's Python SDK is missing: ${join(ROOT, "python", "portico_sdk")}`);
  const s = await serve(["--plugins", join(cwd, "plugins")], cwd);
  const hello = await fetch(`${s.url}/hello_py/`);
  assert.equal(hello.status, 200, s.lines.map((l) => JSON.stringify(l)).join("\n"));
  assert.equal(await hello.text(), "hello from hello_py\n");
  const json = await fetch(`${s.url}/hello_py/json?x=1`);
  assert.deepEqual(await json.json(), { plugin: "hello_py", method: "GET", query: { x: "1" } });
  assert.equal((await fetch(`${s.url}/hello_py/nope`)).status, 404);
});
