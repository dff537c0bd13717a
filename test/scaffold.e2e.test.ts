/**
 * `portico new NAME --lang ts`: the folder it writes passes its own test (`npm test`) and serves
 * on the first try under a real `portico serve`. Bad names and occupied folders are refused.
 */
import assert from "node:assert/strict";
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { emptyDir, ensureBuilt, ROOT, run, serve, stopAll } from "./support/cli.js";

const cwd = emptyDir();
before(ensureBuilt);
after(async () => {
  await stopAll();
  rmSync(cwd, { recursive: true, force: true });
});

test("new --lang ts: its own test passes, and portico serve mounts it at once", async () => {
  const r = await run(["new", "hello-ts", "--lang", "ts", "--dir", "plugins"], cwd);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const folder = join(cwd, "plugins", "hello-ts");
  for (const f of ["nexo-plugin.toml", "handler.ts", "plugin.ts", "handler.test.ts", "package.json", "README.md"]) {
    assert.ok(existsSync(join(folder, f)), `${f} written`);
  }
  assert.ok(lstatSync(join(folder, "node_modules", "portico")).isSymbolicLink(), "node_modules/portico links to this portico");
  assert.match(readFileSync(join(folder, "nexo-plugin.toml"), "utf8"), /mount_prefix = "\/hello-ts"/);
  assert.match(r.stdout, /portico serve --plugins plugins/);

  const check = await run(["check", join(cwd, "plugins")], cwd);
  assert.equal(check.code, 0, check.stdout);

  const own = await run(["test"], folder, { command: "npm", timeoutMs: 60_000 });
  assert.equal(own.code, 0, own.stdout + own.stderr);
  assert.match(own.stdout, /# pass 3/);

  const s = await serve(["--plugins", join(cwd, "plugins")], cwd);
  const hello = await fetch(`${s.url}/hello-ts/`);
  assert.equal(hello.status, 200);
  assert.equal(await hello.text(), "hello from hello-ts\n");
  const json = await fetch(`${s.url}/hello-ts/json?x=1`);
  assert.deepEqual(await json.json(), { plugin: "hello-ts", method: "GET", query: { x: "1" } });
  assert.equal((await fetch(`${s.url}/hello-ts/nope`)).status, 404);
  const health = (await (await fetch(`${s.url}/health`)).json()) as { plugins: { id: string; state: string; protocol: number }[] };
  assert.deepEqual(health.plugins, [{ ...health.plugins[0], id: "hello-ts", state: "ready", protocol: 2 }]);
});

test("new: bad names, reserved prefixes, unknown languages and occupied folders are refused", async () => {
  for (const name of ["Hello", "1st", "my plugin", "a/b", "x".repeat(65)]) {
    const r = await run(["new", name, "--dir", "bad"], cwd);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /is not a valid plugin name: use a lowercase letter/);
  }
  const reserved = await run(["new", "admin", "--dir", "bad"], cwd);
  assert.equal(reserved.code, 2);
  assert.match(reserved.stderr, /would mount at \/admin, which portico keeps for itself/);
  const lang = await run(["new", "fine", "--lang", "rust", "--dir", "bad"], cwd);
  assert.equal(lang.code, 2);
  assert.match(lang.stderr, /--lang rust: use one of ts, python/);
  assert.ok(!existsSync(join(cwd, "bad")), "nothing written for a refused name");

  mkdirSync(join(cwd, "taken", "mine"), { recursive: true });
  writeFileSync(join(cwd, "taken", "mine", "notes.txt"), "keep me");
  const taken = await run(["new", "mine", "--dir", "taken"], cwd);
  assert.equal(taken.code, 2);
  assert.match(taken.stderr, /taken\/mine exists and is not empty/);
  assert.equal(readFileSync(join(cwd, "taken", "mine", "notes.txt"), "utf8"), "keep me");
  assert.ok(!existsSync(join(cwd, "taken", "mine", "nexo-plugin.toml")));
  // An empty folder is fine.
  mkdirSync(join(cwd, "taken", "empty"));
  assert.equal((await run(["new", "empty", "--dir", "taken"], cwd)).code, 0);
  assert.ok(existsSync(join(cwd, "taken", "empty", "nexo-plugin.toml")));
  assert.ok(ROOT);
});
