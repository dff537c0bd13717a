/**
 * Hot reload end to end, on a real `portico serve` process: plugins added, changed (blue-green)
 * and removed while a bounded load loop runs against several prefixes, by SIGHUP and by --watch.
 * No request may fail unless it was aimed at a removed route (and then it gets 404, nothing else).
 */
import assert from "node:assert/strict";
import { mkdirSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { emptyDir, ensureBuilt, type Served, serve, stopAll } from "./support/cli.js";
import type { LogLine } from "./support/log-lines.js";
import { alive, manifestText, pluginsDir, startPortico, until } from "./support/portico.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/reload-plugin.mjs", import.meta.url));
const cleanups: (() => void)[] = [];

before(ensureBuilt);
after(async () => {
  await stopAll();
  for (const c of cleanups) c();
});

/** A manifest for the reload fixture; `gen` shows in every answer, so a swap can be seen. */
const manifest = (id: string, gen: string, env: Record<string, string> = {}) =>
  manifestText({ id, command: process.execPath, args: [FIXTURE], env: { GEN: gen, ...env } });

function plugins(specs: Record<string, string>): string {
  const d = pluginsDir(Object.entries(specs).map(([id, gen]) => ({ id, manifest: manifest(id, gen) })));
  cleanups.push(d.cleanup);
  return d.dir;
}

/** A folder with a portico.toml that keeps the drain and shutdown grace short. */
function workDir(): string {
  const cwd = emptyDir();
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  writeFileSync(join(cwd, "portico.toml"), "[supervisor]\nshutdown_grace_ms = 5000\n");
  return cwd;
}

interface Answer {
  id: string;
  gen: string;
  pid: number;
}

async function get(url: string): Promise<{ status: number; answer?: Answer; body: string }> {
  const res = await fetch(url);
  const body = await res.text();
  return { status: res.status, body, answer: res.status === 200 ? (JSON.parse(body) as Answer) : undefined };
}

interface Outcome {
  prefix: string;
  status: number;
  /** When the request was sent. */
  at: number;
  gen?: string;
  error?: string;
}

/**
 * Four clients in a loop over `prefixes` (read on every request: the test adds to it), each
 * request after the last, 10 ms apart; bounded to 6000 requests and 60 s.
 */
function loadLoop(url: string, prefixes: string[]): { results: Outcome[]; stop(): Promise<Outcome[]> } {
  const results: Outcome[] = [];
  const deadline = Date.now() + 60_000;
  let stopped = false;
  const worker = async (n: number) => {
    for (let i = n; !stopped && results.length < 6000 && Date.now() < deadline; i++) {
      const prefix = prefixes[i % prefixes.length] as string;
      const at = Date.now();
      try {
        const r = await get(`${url}${prefix}/x`);
        results.push({ prefix, status: r.status, at, gen: r.answer?.gen, error: r.status === 200 ? undefined : r.body });
      } catch (err) {
        results.push({ prefix, status: 0, at, error: String((err as Error).cause ?? err) });
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const done = Promise.all([0, 1, 2, 3].map(worker));
  return {
    results,
    async stop() {
      stopped = true;
      await done;
      return results;
    },
  };
}

/** Every request to these prefixes succeeded. */
function allServed(results: Outcome[], prefixes: string[]): void {
  const mine = results.filter((r) => prefixes.includes(r.prefix));
  assert.ok(mine.length > 50, `the load loop ran (${mine.length} requests)`);
  const failed = mine.filter((r) => r.status !== 200);
  assert.deepEqual(failed.slice(0, 5), [], `${failed.length} of ${mine.length} requests failed`);
}

const summaries = (s: Served) => s.lines.filter((l) => String(l.msg).startsWith("reload ("));
const stateLines = (s: Served, plugin: string, pid: number) =>
  s.lines.filter((l) => l.plugin === plugin && l.pid === pid && String(l.msg).startsWith("plugin state")).map((l) => l.state);

test("SIGHUP: add, change and remove under load; in-flight requests finish on the old processes", async () => {
  const dir = plugins({ a: "1", b: "1", c: "1" });
  const s = await serve(["--plugins", dir], workDir());
  const before = await get(`${s.url}/b/x`);
  const oldB = before.answer?.pid as number;
  const oldC = (await get(`${s.url}/c/x`)).answer?.pid as number;
  const prefixes = ["/a", "/b", "/c"];
  const load = loadLoop(s.url, prefixes);
  await until(() => load.results.length > 40, 10_000, "load to run");

  // In flight across the reload: on b (changed) and on c (removed).
  const slowB = get(`${s.url}/b/sleep/1500`);
  const slowC = get(`${s.url}/c/sleep/1500`);
  await new Promise((r) => setTimeout(r, 200));
  mkdirSync(join(dir, "d"));
  writeFileSync(join(dir, "d", "nexo-plugin.toml"), manifest("d", "1"));
  writeFileSync(join(dir, "b", "nexo-plugin.toml"), manifest("b", "2"));
  rmSync(join(dir, "c"), { recursive: true });
  s.child.kill("SIGHUP");
  await until(() => summaries(s).length === 1, 15_000, "the reload summary");
  const removedAt = Date.now();
  const summary = summaries(s)[0] as LogLine;
  assert.equal(summary.trigger, "SIGHUP");
  assert.deepEqual([summary.added, summary.changed, summary.removed, summary.unchanged], [["d"], ["b"], ["c"], ["a"]]);
  assert.match(String(summary.msg), /1 added, 1 changed, 1 removed, 1 unchanged/);

  prefixes.push("/d");
  await until(() => load.results.filter((r) => r.prefix === "/d").length > 20, 10_000, "requests to /d");
  const results = await load.stop();

  allServed(results, ["/a", "/b", "/d"]);
  // Aimed at the removed route: served before, 404 after, nothing else.
  const toC = results.filter((r) => r.prefix === "/c");
  assert.deepEqual(
    toC.filter((r) => r.status !== 200 && r.status !== 404),
    [],
  );
  assert.ok(
    toC.filter((r) => r.at > removedAt).every((r) => r.status === 404 && r.error === '{"error":"not found"}'),
    "requests to /c after the reload get portico's 404",
  );
  // b: the old generation up to the swap, only the new one after it.
  const toB = results.filter((r) => r.prefix === "/b");
  const firstNew = toB.findIndex((r) => r.gen === "2");
  assert.ok(firstNew > 0, "b answered from both generations");
  assert.ok(
    toB.slice(firstNew).every((r) => r.gen === "2" || r.at < removedAt),
    "after the swap, b is the new process",
  );

  // The requests in flight finished, on the processes that took them.
  const [b, c] = await Promise.all([slowB, slowC]);
  assert.deepEqual([b.status, b.answer?.gen, b.answer?.pid], [200, "1", oldB]);
  assert.deepEqual([c.status, c.answer?.pid], [200, oldC]);
  // Then the old processes got `shutdown` and stopped, each state change one log line.
  await until(() => !alive(oldB) && !alive(oldC), 10_000, "the old b and c to exit");
  // Log lines go out in batches (at most every 10 ms while busy): wait for both last lines.
  await until(() => stateLines(s, "c", oldC).includes("stopped"), 5000, "c's last state line");
  await until(() => stateLines(s, "b", oldB).includes("stopped"), 5000, "b's last state line");
  assert.deepEqual(stateLines(s, "b", oldB), ["ready", "stopping", "stopped"]);
  assert.deepEqual(stateLines(s, "c", oldC), ["ready", "stopping", "stopped"]);
  // The new process: started (its pid is known from `ready` on), then ready.
  const newB = (await get(`${s.url}/b/x`)).answer?.pid as number;
  assert.deepEqual(stateLines(s, "b", newB), ["ready"]);
  assert.deepEqual(
    s.lines.filter((l) => String(l.msg).startsWith("plugin changed")).map((l) => [l.plugin, l.prefix, l.pid, l.oldPid]),
    [["b", "/b", newB, oldB]],
  );
  assert.equal(s.lines.filter((l) => l.plugin === "b" && l.msg === "plugin state stopped → starting").length, 2);
  assert.ok(
    s.lines.some((l) => l.plugin === "c" && l.msg === "plugin stopped" && l.exit === "exited with code 0"),
    "c exited by itself after shutdown",
  );
  assert.equal((await get(`${s.url}/c/x`)).status, 404);
  const health = (await (await fetch(`${s.url}/health`)).json()) as { plugins: { id: string }[] };
  assert.deepEqual(health.plugins.map((p) => p.id).sort(), ["a", "b", "d"]);
});

test("--watch: a new folder, an edited manifest, an invalid one, a new process that fails, a removed folder", async () => {
  const dir = plugins({ a: "1", b: "1" });
  const s = await serve(["--plugins", dir, "--watch"], workDir());
  const prefixes = ["/a", "/b"];
  const load = loadLoop(s.url, prefixes);
  const genOf = async (prefix: string) => (await get(`${s.url}${prefix}/x`)).answer?.gen;

  // A new folder, written the way `cp -r` does: folder first, then the files in it.
  mkdirSync(join(dir, "c"));
  writeFileSync(join(dir, "c", "nexo-plugin.toml"), manifest("c", "1"));
  await until(async () => (await get(`${s.url}/c/x`)).status === 200, 10_000, "/c to be mounted");
  prefixes.push("/c");

  // An edited manifest, saved the way editors do: a new file renamed over the old one.
  writeFileSync(join(dir, "a", "nexo-plugin.toml.tmp"), manifest("a", "2"));
  renameSync(join(dir, "a", "nexo-plugin.toml.tmp"), join(dir, "a", "nexo-plugin.toml"));
  await until(async () => (await genOf("/a")) === "2", 10_000, "a's new generation");

  // A manifest that becomes invalid: the old process keeps serving; the log says what is wrong.
  writeFileSync(join(dir, "b", "nexo-plugin.toml"), manifest("b", "2").replace('mount_prefix = "/b"', 'mount_prefix = "b"'));
  await until(() => s.lines.some((l) => l.plugin === "b" && String(l.msg).includes("keeps serving")), 10_000, "b's problem logged");
  const problem = s.lines.find((l) => l.plugin === "b" && String(l.msg).includes("keeps serving")) as LogLine;
  assert.match(String(problem.msg), /nexo-plugin\.toml: plugin\.http\.mount_prefix: .* — fix: /);

  // A change whose new process does not start: the old one keeps serving.
  writeFileSync(join(dir, "a", "nexo-plugin.toml"), manifest("a", "3", { FIXTURE_INIT: "exit" }));
  await until(() => s.lines.some((l) => l.plugin === "a" && String(l.msg).includes("did not start")), 10_000, "a's failed swap logged");
  assert.equal(await genOf("/a"), "2");
  assert.equal(await genOf("/b"), "1");

  // A removed folder: its route goes.
  rmSync(join(dir, "b"), { recursive: true });
  await until(async () => (await get(`${s.url}/b/x`)).status === 404, 10_000, "/b to be unmounted");
  // That reload also tries a's change again (a change not applied is retried at every reload).
  await until(() => summaries(s).length === 5, 10_000, "the fifth reload summary");
  const results = await load.stop();

  allServed(results, ["/a", "/c"]);
  assert.deepEqual(
    results.filter((r) => r.prefix === "/b" && r.status !== 200 && r.status !== 404),
    [],
  );
  assert.ok(results.some((r) => r.prefix === "/a" && r.gen === "1") && results.some((r) => r.prefix === "/a" && r.gen === "2"));
  assert.ok(!results.some((r) => r.gen === "3"), "the failed generation never answered");
  // Every reload logged its summary, the watcher's trigger named.
  const all = summaries(s);
  assert.ok(all.every((l) => l.trigger === "watch"));
  assert.deepEqual(
    all.map((l) => [l.added, l.changed, l.removed, l.kept]),
    [
      [["c"], [], [], []],
      [[], ["a"], [], []],
      [[], [], [], ["b"]],
      [[], [], [], ["b", "a"]],
      [[], [], ["b"], ["a"]],
    ],
  );
});

test("library reload(): two plugins trade prefixes, a taken prefix is refused, a touched manifest swaps the process", async () => {
  const p = await startPortico([
    { id: "x", prefix: "/one", command: process.execPath, args: [FIXTURE] },
    { id: "y", prefix: "/two", command: process.execPath, args: [FIXTURE] },
  ]);
  try {
    const dir = p.portico.config.pluginsDir as string;
    const owner = async (prefix: string) => (await get(`${p.url}${prefix}/x`)).answer?.id;
    writeFileSync(
      join(dir, "x", "nexo-plugin.toml"),
      manifestText({ id: "x", prefix: "/two", command: process.execPath, args: [FIXTURE] }),
    );
    writeFileSync(
      join(dir, "y", "nexo-plugin.toml"),
      manifestText({ id: "y", prefix: "/one", command: process.execPath, args: [FIXTURE] }),
    );
    mkdirSync(join(dir, "z"));
    writeFileSync(
      join(dir, "z", "nexo-plugin.toml"),
      manifestText({ id: "z", prefix: "/one", command: process.execPath, args: [FIXTURE] }),
    );
    const traded = await p.portico.reload("test");
    assert.deepEqual([traded.changed, traded.added, traded.refused.map((r) => r.plugin)], [["x", "y"], [], ["z"]]);
    assert.match(traded.refused[0]?.reason ?? "", /"\/one" is already held by plugin "y"/);
    assert.deepEqual([await owner("/one"), await owner("/two")], ["y", "x"]);

    // Same bytes, a new modification time: a fresh process.
    const before = (await get(`${p.url}/one/x`)).answer?.pid;
    const later = new Date(Date.now() + 5000);
    utimesSync(join(dir, "y", "nexo-plugin.toml"), later, later);
    const touched = await p.portico.reload("test");
    assert.deepEqual(touched.changed, ["y"]);
    const after = (await get(`${p.url}/one/x`)).answer?.pid;
    assert.ok(after && after !== before, "another process answers");
    // Nothing changed: nothing happens.
    const again = await p.portico.reload("test");
    assert.deepEqual([again.changed, again.unchanged.sort()], [[], ["x", "y"]]);
  } finally {
    await p.close();
  }
});
