/**
 * The plugin host end to end: real plugin processes (the raw fixture), real HTTP on 127.0.0.1.
 * Handshake failures, stderr logging, crash/restart with backoff, giving up, graceful and forced
 * shutdown (process groups included), and refusals of bad plugins at load time.
 *
 * Timing is asserted only loosely (orderings and lower bounds): the machine is shared and noisy.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { PluginState } from "../src/index.js";
import { defined } from "./support/assert.js";
import { alive, FAST_SUPERVISOR, FIXTURE, type PluginSpec, type Running, startPortico, until } from "./support/portico.js";

type Log = Record<string, unknown>;
type Health = {
  status: string;
  plugins: { id: string; state: PluginState; pid: number | null; restarts: number; lastExit: string | null; prefix: string | null }[];
};

const scratch = mkdtempSync(join(tmpdir(), "portico-host-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Starts portico, runs `body`, and always closes it (so a failing test leaves no plugin behind). */
async function withPortico(
  specs: PluginSpec[],
  supervisor: Partial<typeof FAST_SUPERVISOR>,
  body: (p: Running) => Promise<void>,
): Promise<void> {
  const p = await startPortico(specs, { supervisor: { ...FAST_SUPERVISOR, ...supervisor } });
  try {
    await body(p);
  } finally {
    await p.close();
  }
}

function pidsIn(file: string): number[] {
  return readFileSync(file, "utf8").split("\n").filter(Boolean).map(Number);
}

async function health(p: Running): Promise<Health> {
  const res = await fetch(`${p.url}/health`);
  return (await res.json()) as Health;
}

function pluginOf(h: Health, id: string) {
  const found = h.plugins.find((x) => x.id === id);
  assert.ok(found, `plugin ${id} in /health: ${JSON.stringify(h)}`);
  return found;
}

async function metric(p: Running, line: RegExp): Promise<number | undefined> {
  const text = await (await fetch(`${p.url}/metrics`)).text();
  for (const l of text.split("\n")) {
    const m = line.exec(l);
    if (m) return Number(l.slice(l.lastIndexOf(" ") + 1));
  }
  return undefined;
}

/** The supervised plugin `id` (a failed assertion when portico has none by that id). */
const pluginIn = (p: Running, id: string) => defined(p.portico.plugins.get(id), `plugin ${id}`);
const logsOf = (p: Running, plugin: string) => p.logs.filter((l) => l.plugin === plugin);
const msg = (l: Log) => String(l.msg ?? "");

/** Every state a plugin goes through from now on, with when (Date.now(), the log's clock). */
function recordStates(p: Running, id: string): { state: PluginState; at: number }[] {
  const seen: { state: PluginState; at: number }[] = [];
  pluginIn(p, id).on("state", (state) => seen.push({ state, at: Date.now() }));
  return seen;
}

test("initialize answered with another plugin id: not ready, log names the plugin and why", async () => {
  await withPortico([{ id: "good" }, { id: "liar", env: { FIXTURE_INIT: "wrong-id" } }], { maxCrashes: 2 }, async (p) => {
    assert.equal((await fetch(`${p.url}/good/echo`)).status, 200);
    const res = await fetch(`${p.url}/liar/echo`);
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    const line = logsOf(p, "liar").find((l) => msg(l).includes("plugin failed to start"));
    assert.ok(line, "a log line for plugin liar");
    assert.match(msg(line), /initialize answered with plugin id "liar_other", expected "liar"/);
    await until(() => pluginIn(p, "liar").state === "failed", 5000, "liar failed");
    const h = pluginOf(await health(p), "liar");
    assert.equal(h.state, "failed");
    assert.match(h.lastExit ?? "", /liar_other/);
    assert.equal(pluginOf(await health(p), "good").state, "ready");
  });
});

test("no reply to initialize within initTimeoutMs: killed, not ready, log says why", async () => {
  const pidfile = join(scratch, "hang.pids");
  await withPortico(
    [{ id: "sleepy", env: { FIXTURE_INIT: "hang", FIXTURE_PIDFILE: pidfile } }],
    // Long enough for node to start and write its pid on a loaded CI machine (300 ms was not).
    { initTimeoutMs: 2000, maxCrashes: 1 },
    async (p) => {
      // start() resolved: the first handshake is settled, and with maxCrashes 1 that means failed.
      assert.equal(pluginIn(p, "sleepy").state, "failed");
      const line = logsOf(p, "sleepy").find((l) => msg(l).includes("plugin failed to start"));
      assert.ok(line);
      assert.match(msg(line), /no reply to initialize within 2000 ms/);
      const [pid] = pidsIn(pidfile);
      assert.ok(pid);
      await until(() => !alive(pid), 3000, "the hung plugin process to be killed");
      const res = await fetch(`${p.url}/sleepy/echo`);
      assert.equal(res.status, 503);
      assert.ok(res.headers.get("retry-after"));
    },
  );
});

test("exit before initialize: reported as such, with the tail of the plugin's stderr", async () => {
  await withPortico(
    [{ id: "quitter", env: { FIXTURE_INIT: "exit", FIXTURE_STDERR: "Error: plugin.name must not be empty" } }],
    { maxCrashes: 1 },
    async (p) => {
      const line = logsOf(p, "quitter").find((l) => msg(l).includes("plugin failed to start"));
      assert.ok(line, JSON.stringify(p.logs));
      assert.match(msg(line), /exited before initialize \(exited with code 7\)/);
      assert.match(String(line.stderr), /plugin\.name must not be empty/);
      assert.match(String(line.stderr), /exiting before initialize on purpose/);
      assert.match(pluginOf(await health(p), "quitter").lastExit ?? "", /exited before initialize/);
    },
  );
});

test("stderr lines reach the log tagged with the plugin id", async () => {
  await withPortico([{ id: "talker", env: { FIXTURE_STDERR: "hello from talker's stderr" } }, { id: "quiet" }], {}, async (p) => {
    await until(() => p.logs.some((l) => l.msg === "hello from talker's stderr"), 3000, "the stderr line");
    const line = p.logs.find((l) => l.msg === "hello from talker's stderr");
    assert.ok(line);
    assert.equal(line.plugin, "talker");
    assert.equal(line.stream, "stderr");
    // A line written on the way to a crash is logged too, tagged the same way.
    await fetch(`${p.url}/quiet/crash`);
    await until(() => p.logs.some((l) => l.msg === "fixture: crashing on purpose"), 3000, "the crash's stderr line");
    assert.equal(p.logs.find((l) => l.msg === "fixture: crashing on purpose")?.plugin, "quiet");
  });
});

test("a crash: restarting (503 + Retry-After), then ready again with a new pid; health and metrics show it", async () => {
  // A long first delay, so the restarting window can be observed from outside.
  await withPortico([{ id: "crasher" }], { restartDelayMs: 1200 }, async (p) => {
    const states = recordStates(p, "crasher");
    const before = pluginOf(await health(p), "crasher");
    assert.equal(before.state, "ready");
    assert.equal(before.restarts, 0);
    assert.ok(before.pid);
    assert.equal(await metric(p, /^portico_plugin_restarts_total\{plugin="crasher"\}/), 0);

    const crashed = await fetch(`${p.url}/crasher/crash`);
    assert.equal(crashed.status, 502);
    await crashed.arrayBuffer();

    // Delay is 600..1800 ms: plenty of time to see it restarting.
    const during = pluginOf(await health(p), "crasher");
    assert.equal(during.state, "restarting");
    assert.equal(during.pid, null);
    assert.match(during.lastExit ?? "", /exited with code 3/);
    const unavailable = await fetch(`${p.url}/crasher/echo`);
    assert.equal(unavailable.status, 503);
    assert.ok(Number(unavailable.headers.get("retry-after")) >= 1);
    assert.equal(await metric(p, /^portico_plugin_state\{plugin="crasher",state="restarting"\}/), 1);

    await until(() => pluginIn(p, "crasher").state === "ready", 8000, "ready again");
    const after = pluginOf(await health(p), "crasher");
    assert.equal(after.restarts, 1);
    assert.ok(after.pid && after.pid !== before.pid, `new pid (${before.pid} → ${after.pid})`);
    assert.ok(!alive(before.pid), "the crashed process is gone");
    assert.equal(await metric(p, /^portico_plugin_restarts_total\{plugin="crasher"\}/), 1);
    assert.equal(await metric(p, /^portico_plugin_state\{plugin="crasher",state="ready"\}/), 1);
    assert.deepEqual(
      states.map((s) => s.state),
      ["restarting", "starting", "ready"],
    );
    assert.equal((await fetch(`${p.url}/crasher/echo`)).status, 200);
  });
});

test("a crash of a plugin whose helper holds its pipes is still noticed, and the helper goes too", async () => {
  const pidfile = join(scratch, "helper-crash.pids");
  const spec: PluginSpec = {
    id: "helped",
    command: "sh",
    args: ["-c", `sleep 1000 & echo $! >> "${pidfile}"; exec "${process.execPath}" "${FIXTURE}"`],
  };
  await withPortico([spec], {}, async (p) => {
    const first = pluginIn(p, "helped").status().pid;
    const res = await fetch(`${p.url}/helped/crash`);
    assert.equal(res.status, 502);
    await until(() => pluginIn(p, "helped").state === "ready" && pluginIn(p, "helped").status().pid !== first, 5000, "restart");
    const [helper] = pidsIn(pidfile);
    assert.ok(helper, "the helper's pid recorded");
    await until(() => !alive(helper), 3000, "the crashed plugin's helper to be killed");
    assert.equal((await fetch(`${p.url}/helped/echo`)).status, 200);
  });
});

test("repeated crashes within the window: state failed, 503 + Retry-After, visible in /health and /metrics", async () => {
  await withPortico([{ id: "fragile" }, { id: "steady" }], { maxCrashes: 3 }, async (p) => {
    const plugin = pluginIn(p, "fragile");
    for (let i = 1; i <= 3; i++) {
      await until(() => plugin.state === "ready", 5000, `ready before crash ${i}`);
      const res = await fetch(`${p.url}/fragile/crash`);
      assert.equal(res.status, 502);
    }
    await until(() => plugin.state === "failed", 3000, "failed");
    const res = await fetch(`${p.url}/fragile/echo`);
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get("retry-after")) >= 1);
    const h = await health(p);
    assert.equal(h.status, "degraded");
    assert.equal(pluginOf(h, "fragile").state, "failed");
    assert.equal(pluginOf(h, "fragile").restarts, 2);
    assert.equal(pluginOf(h, "steady").state, "ready");
    assert.equal(await metric(p, /^portico_plugin_state\{plugin="fragile",state="failed"\}/), 1);
    assert.ok(p.logs.some((l) => l.plugin === "fragile" && msg(l).includes("giving up")));
    // Given up means given up: no further attempt.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(plugin.state, "failed");
    assert.equal(pluginOf(await health(p), "fragile").restarts, 2);
  });
});

test("restart delays grow (exponential backoff with jitter)", async () => {
  // Every attempt dies before initialize: 5 crashes, 4 restarts in between, then failed.
  // Bases 100, 200, 400, 800 ms; jitter keeps each within [0.5, 1.5] × base.
  const base = 100;
  await withPortico(
    [{ id: "flappy", env: { FIXTURE_INIT: "exit" } }],
    { restartDelayMs: base, restartMaxDelayMs: 60_000, maxCrashes: 5 },
    async (p) => {
      const states = recordStates(p, "flappy");
      await until(() => pluginIn(p, "flappy").state === "failed", 15_000, "failed after 5 crashes");
      // The first crash happened inside start(), before recording began: take each crash's time from
      // its log line (written in the same tick as the restart timer is set), each attempt's from the
      // state change.
      const crashes = logsOf(p, "flappy").filter((l) => l.msg === "plugin exited; restarting");
      const attempts = states.filter((s) => s.state === "starting");
      assert.equal(crashes.length, 4);
      assert.equal(attempts.length, 4);
      const delays = attempts.map((a, i) => a.at - (defined(crashes[i], `crash ${i + 1}`).time as number));
      const delay = (i: number) => defined(delays[i], `delay ${i + 1}`);
      // Timers never fire early: each wait is at least its jittered minimum (a few ms of clock slack).
      for (const [i, d] of delays.entries()) assert.ok(d >= base * 2 ** i * 0.5 - 5, `delay ${i + 1} was ${d} ms`);
      // Growth, robust to jitter and to a late timer or two: the later half waits longer than the earlier half.
      assert.ok(delay(3) > delay(0), `delays ${delays.map(Math.round)}`);
      assert.ok(delay(2) + delay(3) > delay(0) + delay(1), `delays ${delays.map(Math.round)}`);
      // What the supervisor announced matches its rule exactly.
      const announced = logsOf(p, "flappy")
        .filter((l) => typeof l.restartInMs === "number")
        .map((l) => l.restartInMs as number);
      assert.equal(announced.length, 4);
      announced.forEach((d, i) => {
        assert.ok(d >= base * 2 ** i * 0.5 && d <= base * 2 ** i * 1.5, `announced delay ${i + 1}: ${d}`);
      });
      assert.equal(pluginOf(await health(p), "flappy").restarts, 4);
    },
  );
});

test("graceful close: shutdown sent, plugins exit by themselves, no process left", async () => {
  const p = await startPortico(
    [
      { id: "one", env: { FIXTURE_ANNOUNCE: "1" } },
      { id: "two", env: { FIXTURE_ANNOUNCE: "1", FIXTURE_SHUTDOWN: "slow:200" } },
    ],
    { supervisor: { ...FAST_SUPERVISOR, shutdownGraceMs: 5000 } },
  );
  let closed = false;
  try {
    const pids = ["one", "two"].map((id) => defined(pluginIn(p, id).status().pid, `${id}'s pid`));
    assert.ok(pids.every((pid) => pid > 0 && alive(pid)));
    await p.close();
    closed = true;
    for (const pid of pids) assert.ok(!alive(pid), `plugin process ${pid} gone`);
    for (const id of ["one", "two"]) {
      const got = p.logs.filter((l) => l.plugin === id && l.stream === "stderr" && msg(l).startsWith("fixture: got ")).map(msg);
      assert.equal(got.length, 2, `${id}: ${got}`);
      assert.match(got[0] ?? "", /^fixture: got initialize \{"nexo_version":"/);
      assert.equal(got[1], 'fixture: got shutdown {"reason":"host requested"}', "shutdown sent, as nexo sends it");
    }
    const stopped = p.logs.filter((l) => l.msg === "plugin stopped");
    assert.deepEqual(stopped.map((l) => l.plugin).sort(), ["one", "two"]);
    // Exit code 0 is the fixture answering `shutdown` and leaving on its own: not killed.
    for (const l of stopped) assert.equal(l.exit, "exited with code 0");
    for (const id of ["one", "two"]) assert.equal(pluginIn(p, id).state, "stopped");
  } finally {
    if (!closed) await p.close();
  }
});

test("a plugin ignoring shutdown is killed after the grace period, with its whole process group", async () => {
  const pidfile = join(scratch, "stubborn.pids");
  const spec: PluginSpec = {
    id: "stubborn",
    command: "sh",
    // A grandchild (sleep) in the plugin's process group, then the fixture replaces the shell.
    args: ["-c", `sleep 1000 & echo $! >> "${pidfile}"; exec "${process.execPath}" "${FIXTURE}"`],
    env: { FIXTURE_SHUTDOWN: "ignore", FIXTURE_PIDFILE: pidfile },
  };
  const p = await startPortico([spec, { id: "polite" }], { supervisor: { ...FAST_SUPERVISOR, shutdownGraceMs: 500 } });
  let closed = false;
  try {
    const [grandchild, plugin] = pidsIn(pidfile);
    assert.ok(grandchild && plugin, "both pids recorded");
    assert.equal(pluginIn(p, "stubborn").status().pid, plugin);
    assert.ok(alive(grandchild) && alive(plugin));
    const polite = defined(pluginIn(p, "polite").status().pid, "polite's pid");
    await p.close();
    closed = true;
    assert.ok(!alive(plugin), "plugin killed");
    await until(() => !alive(grandchild), 3000, "the grandchild to be killed with the group");
    assert.ok(!alive(polite));
    const stopped = p.logs.find((l) => l.msg === "plugin stopped" && l.plugin === "stubborn");
    assert.match(String(stopped?.exit), /did not exit within 500 ms of shutdown/);
    assert.equal(p.logs.find((l) => l.msg === "plugin stopped" && l.plugin === "polite")?.exit, "exited with code 0");
  } finally {
    if (!closed) await p.close();
  }
});

test("one bad manifest among good ones: refused with a log line naming it, the rest served", async () => {
  const broken = `[plugin]
id = "Not A Valid Id"
version = "0.1.0"

[plugin.entrypoint]
command = "node"

[plugin.http]
mount_prefix = "/broken"
`;
  await withPortico([{ id: "aaa" }, { id: "broken", manifest: broken }, { id: "zzz" }], {}, async (p) => {
    const refusal = p.logs.find(
      (l) => msg(l).startsWith("plugin refused") && String(l.plugin).endsWith(join("broken", "nexo-plugin.toml")),
    );
    assert.ok(refusal, JSON.stringify(p.logs.filter((l) => msg(l).startsWith("plugin refused"))));
    assert.match(msg(refusal), /plugin\.id/);
    assert.match(msg(refusal), /fix:/);
    for (const id of ["aaa", "zzz"]) {
      const res = await fetch(`${p.url}/${id}/echo`);
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { id: string }).id, id);
    }
    assert.equal((await fetch(`${p.url}/broken/echo`)).status, 404);
    assert.deepEqual(
      (await health(p)).plugins.map((x) => x.id),
      ["aaa", "zzz"],
    );
  });
});

test("two plugins wanting one prefix: the second by id order is refused, naming both", async () => {
  // Listed in reverse: the order of the specs (and of the folders) must not matter, only the ids.
  await withPortico(
    [
      { id: "beta", prefix: "/shared" },
      { id: "alpha", prefix: "/shared" },
    ],
    {},
    async (p) => {
      const refusal = p.logs.find((l) => msg(l).startsWith("plugin refused"));
      assert.ok(refusal);
      assert.equal(refusal.plugin, "beta");
      assert.match(msg(refusal), /"beta"/);
      assert.match(msg(refusal), /"alpha"/);
      assert.match(msg(refusal), /\/shared/);
      const res = await fetch(`${p.url}/shared/echo`);
      assert.equal(((await res.json()) as { id: string }).id, "alpha");
      assert.deepEqual(
        (await health(p)).plugins.map((x) => x.id),
        ["alpha"],
      );
      assert.equal(p.portico.plugins.has("beta"), false, "the refused plugin is not even spawned");
    },
  );
});

test("a plugin claiming /health, /Health/x or / is refused; portico's own endpoints stay portico's", async () => {
  const specs: PluginSpec[] = [
    { id: "grabber", prefix: "/health" },
    { id: "sneaky", prefix: "/Health/x" },
    { id: "rooter", prefix: "/" },
    { id: "fine" },
  ];
  await withPortico(specs, {}, async (p) => {
    const refusals = p.logs.filter((l) => msg(l).startsWith("plugin refused"));
    const named = (re: RegExp) =>
      defined(
        refusals.find((l) => re.test(String(l.plugin))),
        `a refusal naming ${re}`,
      );
    assert.match(msg(named(/^grabber$/)), /reserved prefix "\/health"/);
    assert.match(msg(named(/^sneaky$/)), /reserved prefix "\/health"/);
    // "/" is already a manifest problem (mount_prefix), reported against the file.
    assert.match(msg(named(/rooter/)), /mount_prefix/);
    assert.equal(refusals.length, 3);

    const h = await health(p);
    assert.deepEqual(
      h.plugins.map((x) => x.id),
      ["fine"],
    );
    const res = await fetch(`${p.url}/Health/x`);
    assert.equal(res.status, 404);
    assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
    const body = await res.text();
    assert.ok(!body.includes("sneaky"));
    assert.equal((await fetch(`${p.url}/fine/echo`)).status, 200);
    assert.equal((await fetch(`${p.url}/`)).status, 404);
  });
});
