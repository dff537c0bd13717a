/**
 * Plugins built on nexo's own child SDKs (Python `nexo_plugin_sdk`, TypeScript `nexo-plugin-sdk`)
 * served by portico unchanged. Neither SDK is installable here, so test/fixtures/nexo-sdk-python and
 * test/fixtures/nexo-sdk-ts carry stand-ins that reproduce their wire behaviour (see the header of
 * each emulation and docs/nexo-sdk-notes.md). The first group checks the stand-ins themselves
 * against what was read in nexo's sources, so the portico tests below rest on known behaviour.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { FAST_SUPERVISOR, type PluginSpec, type Running, startPortico, until } from "./support/portico.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const PY = "nexo-sdk-python";
const TS = "nexo-sdk-ts";
const MIB = 1024 * 1024;

type Fixture = typeof PY | typeof TS;
const BASE: Record<Fixture, { id: string; prefix: string }> = {
  [PY]: { id: "sdk_py_demo", prefix: "/sdkpy" },
  [TS]: { id: "sdk_ts_demo", prefix: "/sdkts" },
};

/** The fixture's files, as they are on disk (no __pycache__ and the like). */
function fixtureFiles(dir: Fixture): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(join(FIXTURES, dir))) {
    const path = join(FIXTURES, dir, name);
    if (name === "nexo-plugin.toml" || !statSync(path).isFile()) continue;
    files[name] = readFileSync(path, "utf8");
  }
  return files;
}

interface Variant {
  id?: string;
  prefix?: string;
  /** Further edits of the manifest text: [search, replacement]. */
  edits?: [string | RegExp, string][];
}

/**
 * A plugin folder holding the fixture with its own manifest. Only what a test asks for changes;
 * `command = "node"` becomes this Node's path so the test doesn't depend on PATH.
 */
function fixture(dir: Fixture, v: Variant = {}): PluginSpec {
  const base = BASE[dir];
  const id = v.id ?? base.id;
  const prefix = v.prefix ?? base.prefix;
  let manifest = readFileSync(join(FIXTURES, dir, "nexo-plugin.toml"), "utf8")
    .replaceAll(base.id, id)
    .replace(`mount_prefix = "${base.prefix}"`, `mount_prefix = "${prefix}"`)
    .replace('command = "node"', `command = ${JSON.stringify(process.execPath)}`);
  for (const [from, to] of v.edits ?? []) {
    const next = manifest.replace(from, to);
    assert.notEqual(next, manifest, `manifest edit ${String(from)} matched nothing`);
    manifest = next;
  }
  return { id, manifest, files: fixtureFiles(dir) };
}

const pluginLogs = (p: Running, id: string) => p.logs.filter((l) => l.plugin === id);
const stderrOf = (p: Running, id: string): string[] =>
  pluginLogs(p, id)
    .filter((l) => l.stream === "stderr")
    .map((l) => String(l.msg));

async function waitStderr(p: Running, id: string, re: RegExp, timeoutMs = 5000): Promise<void> {
  await until(() => stderrOf(p, id).some((l) => re.test(l)), timeoutMs, `${id} stderr ${re}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

// ── the stand-ins on their own ──────────────────────────────────────────────────────────────

interface Conversation {
  frames: Record<string, unknown>[];
  stdoutLines: string[];
  stderr: string;
  code: number | null;
}

/**
 * Runs a fixture as nexo would (cwd is irrelevant to it: it finds its manifest next to its code),
 * writes `input`, and waits for it to exit by itself. stdin stays open unless `endStdin`.
 */
function converse(
  dir: string,
  command: string,
  args: string[],
  input: string,
  endStdin = false,
  timeoutMs = 15_000,
): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: tmpdir(),
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    child.stdin.on("error", () => {});
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${dir}: did not exit within ${timeoutMs} ms; stderr: ${err.slice(-500)}`));
    }, timeoutMs);
    child.on("close", (code) => {
      clearTimeout(timer);
      const stdoutLines = out.split("\n").filter(Boolean);
      const frames: Record<string, unknown>[] = [];
      for (const l of stdoutLines) {
        try {
          const v = JSON.parse(l) as unknown;
          if (typeof v === "object" && v !== null && !Array.isArray(v) && (v as { jsonrpc?: unknown }).jsonrpc === "2.0")
            frames.push(v as Record<string, unknown>);
        } catch {}
      }
      resolve({ frames, stdoutLines, stderr: err, code });
    });
    child.stdin.write(input);
    if (endStdin) child.stdin.end();
  });
}

const line = (frame: unknown) => `${JSON.stringify(frame)}\n`;
const INIT = line({ jsonrpc: "2.0", id: 1, method: "initialize", params: { nexo_version: "0.1.5" } });
const SHUTDOWN = line({ jsonrpc: "2.0", id: 99, method: "shutdown", params: { reason: "host requested" } });

/** A broker.event as nexo's LocalBroker builds it for an HTTP request. */
function httpEvent(id: string, path: string, inbox: string): string {
  const topic = `plugin.${id}.http.request`;
  const req = { method: "GET", path, query: "", headers: [["Host", "127.0.0.1"]], body_base64: "" };
  const message = { id: "00000000-0000-4000-8000-000000000001", topic, reply_to: inbox, payload: req };
  const event = {
    id: "00000000-0000-4000-8000-000000000002",
    timestamp: "2026-01-01T00:00:00Z",
    topic,
    source: "local",
    session_id: null,
    payload: message,
  };
  return line({ jsonrpc: "2.0", method: "broker.event", params: { topic, event } });
}

const pyRun = (input: string, endStdin = false) => converse(PY, "python3", [join(FIXTURES, PY, "main.py")], input, endStdin);
const tsRun = (input: string, endStdin = false, dir = join(FIXTURES, TS)) =>
  converse(TS, process.execPath, [join(dir, "plugin.mjs")], input, endStdin);

type Publish = { method: string; params: { topic: string; event: Record<string, unknown> } };
const publishes = (c: Conversation) => c.frames.filter((f) => f.method === "broker.publish") as unknown as Publish[];
const replyTo = (c: Conversation, id: number) => c.frames.find((f) => f.id === id);

describe("the SDK stand-ins behave as nexo's SDKs do", () => {
  test("Python: thin Event replies in completion order; shutdown drains, answers, exits 0 by itself", async () => {
    const input =
      INIT +
      httpEvent("sdk_py_demo", "/sdkpy/sleep/400", "_inbox.slow") +
      httpEvent("sdk_py_demo", "/sdkpy/sleep/20", "_inbox.fast") +
      // A raw CR between tokens is JSON whitespace, and Python's readline splits on LF only: one frame.
      `{"jsonrpc":"2.0","id":5,\r"method":"nope"}\n` +
      SHUTDOWN;
    const c = await pyRun(input);
    assert.equal(c.code, 0, c.stderr);
    const init = replyTo(c, 1) as {
      result: { manifest: { plugin: { id: string; http: unknown; capabilities: unknown } }; server_version: string };
    };
    assert.equal(init.result.manifest.plugin.id, "sdk_py_demo");
    assert.deepEqual(
      init.result.manifest.plugin.http,
      { mount_prefix: "/sdkpy", timeout_seconds: 10 },
      "the whole manifest document comes back",
    );
    assert.ok(init.result.manifest.plugin.capabilities);
    const pubs = publishes(c);
    assert.deepEqual(
      pubs.map((p) => p.params.topic),
      ["_inbox.fast", "_inbox.slow"],
      "completion order, not request order",
    );
    for (const p of pubs) assert.deepEqual(Object.keys(p.params.event), ["topic", "source", "payload"], "thin Event");
    assert.deepEqual(replyTo(c, 5), { jsonrpc: "2.0", id: 5, error: { code: -32601, message: "method not found" } });
    const order = c.frames.map((f) => (f.id === 99 ? "ok" : f.method === "broker.publish" ? "publish" : f.id));
    assert.deepEqual(order.slice(-3), ["publish", "publish", "ok"], "in-flight handlers finish before {ok:true}");
    assert.deepEqual(replyTo(c, 99), { jsonrpc: "2.0", id: 99, result: { ok: true } });
    assert.match(c.stdoutLines[0] ?? "", /^\{"jsonrpc": "2\.0", "id": 1,/, "json.dumps default separators");
  });

  test("Python: a JSON frame that is not an object kills the process", async () => {
    const c = await pyRun(`${INIT}[1, 2, 3]\n`);
    assert.equal(c.code, 1);
    assert.match(c.stderr, /AttributeError/);
    assert.equal(c.frames.length, 1, "only the initialize reply");
  });

  test("Python: prints between frames reach stdout (no stdout guard)", async () => {
    const c = await pyRun(INIT + httpEvent("sdk_py_demo", "/sdkpy/stray", "_inbox.s") + SHUTDOWN);
    assert.equal(c.code, 0, c.stderr);
    assert.ok(c.stdoutLines.includes("a stray print() line"), c.stdoutLines.join("\n"));
    assert.ok(c.stdoutLines.includes("[1, 2, 3]"));
  });

  test("TypeScript: CR splits lines, frames over 1 MiB are dropped, thin Events, shutdown drains", async () => {
    const prefix = '{"jsonrpc":"2.0","id":ID,"method":"nope","params":{"pad":"';
    const suffix = '"}}';
    const sized = (id: number, bytes: number) => {
      const head = prefix.replace("ID", String(id));
      return `${head}${"x".repeat(bytes - head.length - suffix.length)}${suffix}\n`;
    };
    const input =
      INIT +
      `{"jsonrpc":"2.0","id":5,\r"method":"nope"}\n` + // a raw CR, legal JSON whitespace: readline cuts the frame in two
      `{"jsonrpc":"2.0","id":6, "method":"nope","params":{"s":"a\\rb"}}\n` + // a space there, and an escaped CR: fine
      sized(7, MIB + 1) + // dropped
      sized(8, MIB) + // exactly 1 MiB without its LF: accepted
      httpEvent("sdk_ts_demo", "/sdkts/sleep/400", "_inbox.slow") +
      httpEvent("sdk_ts_demo", "/sdkts/sleep/20", "_inbox.fast") +
      SHUTDOWN;
    const c = await tsRun(input);
    assert.equal(c.code, 0, c.stderr);
    const init = replyTo(c, 1) as { result: { manifest: { plugin: { id: string; http: unknown } }; server_version: string } };
    assert.deepEqual(init.result.manifest.plugin.http, { mount_prefix: "/sdkts", timeout_seconds: 10 });
    assert.equal(replyTo(c, 5), undefined, "a frame cut by a raw CR gets no answer");
    assert.equal((c.stderr.match(/malformed jsonrpc line/g) ?? []).length, 2);
    assert.ok(replyTo(c, 6));
    assert.equal(replyTo(c, 7), undefined, "over 1 MiB: dropped without a reply");
    assert.match(c.stderr, new RegExp(`inbound frame ${MIB + 1} bytes exceeds maxFrameBytes ${MIB}`));
    assert.ok(replyTo(c, 8), "1 MiB exactly is accepted");
    const pubs = publishes(c);
    assert.deepEqual(
      pubs.map((p) => p.params.topic),
      ["_inbox.fast", "_inbox.slow"],
    );
    for (const p of pubs) assert.deepEqual(Object.keys(p.params.event), ["topic", "source", "payload"], "thin Event");
    const order = c.frames.map((f) => (f.id === 99 ? "ok" : f.method === "broker.publish" ? "publish" : f.id));
    assert.deepEqual(order.slice(-3), ["publish", "publish", "ok"]);
  });

  test("TypeScript: an empty plugin.name or plugin.description throws before initialize", async () => {
    for (const field of ["name", "description"]) {
      const dir = mkdtempSync(join(tmpdir(), "nexo-sdk-ts-"));
      try {
        for (const [name, text] of Object.entries(fixtureFiles(TS))) writeFileSync(join(dir, name), text);
        const manifest = readFileSync(join(FIXTURES, TS, "nexo-plugin.toml"), "utf8").replace(
          new RegExp(`^${field} = .*$`, "m"),
          `${field} = ""`,
        );
        writeFileSync(join(dir, "nexo-plugin.toml"), manifest);
        const c = await tsRun(INIT, false, dir);
        assert.equal(c.code, 1);
        assert.equal(c.frames.length, 0, "initialize is never answered");
        assert.match(c.stderr, new RegExp(`ManifestError: plugin\\.${field} is missing or not a non-empty string`));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});

// ── under portico ───────────────────────────────────────────────────────────────────────────

async function json(res: Response): Promise<Record<string, unknown>> {
  return (await res.json()) as Record<string, unknown>;
}

describe("nexo SDK plugins under portico", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([fixture(PY), fixture(TS)]);
  });
  after(() => p?.close());

  test("both load with their full nexo manifests and answer", async () => {
    assert.deepEqual(
      p.portico.refused.filter((r) => !r.skipped),
      [],
    );
    const health = await json(await fetch(`${p.url}/health`));
    const plugins = health.plugins as { id: string; state: string }[];
    assert.deepEqual(plugins.map((x) => [x.id, x.state]).sort(), [
      ["sdk_py_demo", "ready"],
      ["sdk_ts_demo", "ready"],
    ]);
    const py = await fetch(`${p.url}/sdkpy/hello`);
    assert.equal(py.status, 200);
    assert.equal(await py.text(), "hello from a nexo Python SDK plugin\n");
    const ts = await fetch(`${p.url}/sdkts/hello`);
    assert.equal(ts.status, 200);
    assert.equal(await ts.text(), "hello from a nexo TypeScript SDK plugin\n");
  });

  for (const dir of [PY, TS] as const) {
    const { prefix } = BASE[dir];

    test(`${dir}: method, full path, raw query, headers and body round-trip`, async () => {
      const body = Buffer.from([0, 1, 2, 13, 10, 0xff, 0x80, 0x22, 0x5c]);
      const res = await fetch(`${p.url}${prefix}/echo?b=2&a=%20x&a=1`, {
        method: "POST",
        headers: [
          ["Content-Type", "application/octet-stream"],
          ["X-Dup", "one"],
          ["X-Dup", "two"],
        ],
        body,
      });
      assert.equal(res.status, 200);
      const echo = await json(res);
      assert.equal(echo.method, "POST");
      assert.equal(echo.path, `${prefix}/echo`);
      assert.equal(echo.query, "b=2&a=%20x&a=1");
      assert.deepEqual(Buffer.from(echo.body_base64 as string, "base64"), body);
      const headers = echo.headers as [string, string][];
      const lower = (n: string) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
      // fetch may join repeated headers; either way both values arrive in order.
      assert.deepEqual(lower("x-dup").join(", "), "one, two");
      assert.deepEqual(lower("x-forwarded-prefix"), [prefix]);
    });

    test(`${dir}: concurrent requests answered out of order are each correlated`, async () => {
      const started = Date.now();
      const order: string[] = [];
      const one = async (ms: number, tag: string) => {
        const res = await fetch(`${p.url}${prefix}/sleep/${ms}?tag=${tag}`);
        const body = await json(res);
        order.push(tag);
        return { status: res.status, body, at: Date.now() - started };
      };
      const [a, b, c] = await Promise.all([one(900, "a"), one(450, "b"), one(30, "c")]);
      assert.deepEqual(order, ["c", "b", "a"], "replies came back in completion order");
      for (const [r, ms, tag] of [
        [a, 900, "a"],
        [b, 450, "b"],
        [c, 30, "c"],
      ] as const) {
        assert.equal(r.status, 200);
        assert.deepEqual(r.body, { slept: ms, query: `tag=${tag}` });
      }
      assert.ok(c.at < 450, `the fast one was not held behind the slow ones (${c.at} ms)`);
    });

    test(`${dir}: the child runs in its own process group`, async (t) => {
      const pid = p.portico.plugins.get(BASE[dir].id)?.status().pid;
      assert.ok(pid);
      if (!existsSync(`/proc/${pid}/stat`)) return t.skip("no /proc");
      const pgrp = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
      const childGroup = pgrp(readFileSync(`/proc/${pid}/stat`, "utf8"));
      assert.equal(childGroup, pid, "group leader: a terminal's Ctrl-C is not delivered to it");
      assert.notEqual(childGroup, pgrp(readFileSync("/proc/self/stat", "utf8")));
    });
  }

  test("Python: stray stdout lines are skipped and logged; the reply still gets through", async () => {
    const res = await fetch(`${p.url}/sdkpy/stray`);
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), { stray: true });
    const warns = pluginLogs(p, "sdk_py_demo").filter((l) => l.level === 40);
    const find = (text: string) => warns.find((l) => l.line === text);
    assert.match(String(find("a stray print() line")?.msg), /non-JSON line/);
    assert.equal(find("[1, 2, 3]")?.why, "not a JSON object");
    assert.ok(find('{"hello": "world"}'), "a JSON object that is not a frame is skipped too");
    assert.equal(p.portico.plugins.get("sdk_py_demo")?.status().restarts, 0);
  });

  test("TypeScript: console.log in a handler goes to stderr through the SDK's stdout guard", async () => {
    const res = await fetch(`${p.url}/sdkts/console`);
    assert.equal(res.status, 200);
    await waitStderr(p, "sdk_ts_demo", /^\[stdout-guard\] console\.log from a handler$/);
    assert.equal(pluginLogs(p, "sdk_ts_demo").filter((l) => l.level === 40 && l.line !== undefined).length, 0);
  });
});

describe("TypeScript SDK: request frames over 1 MiB", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([fixture(TS, { edits: [["timeout_seconds = 10", "timeout_seconds = 1"]] })]);
  });
  after(() => p?.close());

  test("a body whose frame stays under 1 MiB gets through", async () => {
    const res = await fetch(`${p.url}/sdkts/size`, { method: "POST", body: Buffer.alloc(600_000, 1) });
    assert.equal(res.status, 200);
    assert.deepEqual(await json(res), { bytes: 600_000 });
    assert.equal(p.logs.filter((l) => /over 1 MiB/.test(String(l.msg))).length, 0, "no hint for a frame under the limit");
  });

  test("over 1 MiB: the SDK drops it, the client gets 504, portico's log says why", async () => {
    const pid = p.portico.plugins.get("sdk_ts_demo")?.status().pid;
    const res = await fetch(`${p.url}/sdkts/size`, { method: "POST", body: Buffer.alloc(900_000, 1) });
    assert.equal(res.status, 504);
    assert.deepEqual(await json(res), { error: "plugin gateway timeout" });
    const hint = pluginLogs(p, "sdk_ts_demo").find((l) => l.level === 40 && /over 1 MiB/.test(String(l.msg)));
    assert.ok(hint, "portico logs a hint naming the 1 MiB limit");
    assert.match(String(hint.msg), /nexo.s SDKs drop/);
    assert.ok(Number(hint.bytes) > MIB);
    await waitStderr(p, "sdk_ts_demo", /^plugin: inbound frame \d+ bytes exceeds maxFrameBytes 1048576$/);
    // The SDK carries on: same process, next request served.
    const next = await fetch(`${p.url}/sdkts/hello`);
    assert.equal(next.status, 200);
    assert.equal(p.portico.plugins.get("sdk_ts_demo")?.status().pid, pid);
  });
});

/** POST with a header node:http sends as Latin-1 bytes (fetch does too). */
function postLatin1(url: string, header: string, body: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: "POST", headers: { "X-Pad": header, "Content-Length": body.length } }, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

describe("TypeScript SDK: 1 MiB counted in bytes, as the SDK counts it", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([fixture(TS, { edits: [["timeout_seconds = 10", "timeout_seconds = 1"]] })]);
  });
  after(() => p?.close());

  // portico compares the frame's JavaScript string length (UTF-16 units) with 1 MiB; the SDK
  // compares its UTF-8 byte length. A Latin-1 header byte (é) is one unit but two bytes, so a frame
  // can be under 1 MiB for portico and over it for the SDK: dropped, 504, and no hint.
  test("a frame over 1 MiB only in UTF-8 bytes still gets the hint", async () => {
    const pad = "é".repeat(12_000); // 12 000 units, 24 000 bytes once JSON goes out as UTF-8
    const body = Buffer.alloc(771_807, 1); // base64: 1 029 076 chars
    const res = await postLatin1(`${p.url}/sdkts/size`, pad, body);
    assert.equal(res.status, 504);
    await waitStderr(p, "sdk_ts_demo", /exceeds maxFrameBytes/);
    const dropped = stderrOf(p, "sdk_ts_demo").find((l) => /exceeds maxFrameBytes/.test(l)) ?? "";
    const bytes = Number(/inbound frame (\d+) bytes/.exec(dropped)?.[1]);
    assert.ok(bytes > MIB, "the SDK saw more than 1 MiB");
    assert.ok(bytes - 12_000 + 1 <= MIB, "…while the same frame, LF included, is at most 1 MiB in UTF-16 units");
    const hint = p.logs.find((l) => /over 1 MiB/.test(String(l.msg)));
    assert.ok(hint, "portico should have logged the 1 MiB hint for this frame");
  });
});

describe("nexo SDK plugins whose manifest the TypeScript SDK refuses", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([
      fixture(TS, { id: "sdk_ts_noname", prefix: "/noname", edits: [[/^name = .*$/m, 'name = ""']] }),
      fixture(TS, { id: "sdk_ts_nodesc", prefix: "/nodesc", edits: [[/^description = .*$/m, 'description = ""']] }),
    ]);
  });
  after(() => p?.close());

  for (const [id, field, prefix] of [
    ["sdk_ts_noname", "name", "/noname"],
    ["sdk_ts_nodesc", "description", "/nodesc"],
  ] as const) {
    test(`empty plugin.${field}: reported as exited before initialize, with the stderr tail`, async () => {
      const failed = pluginLogs(p, id).find((l) => l.level === 50 && /plugin failed to start/.test(String(l.msg)));
      assert.ok(failed, "an error line for the failed start");
      assert.match(String(failed.msg), /exited before initialize \(exited with code 1\)/);
      assert.match(String(failed.stderr), new RegExp(`ManifestError: plugin\\.${field} is missing or not a non-empty string`));
      const res = await fetch(`${p.url}${prefix}/hello`);
      assert.equal(res.status, 503);
      assert.ok(res.headers.get("retry-after"));
      const health = await json(await fetch(`${p.url}/health`));
      const status = (health.plugins as { id: string; lastExit: string | null }[]).find((x) => x.id === id);
      assert.match(String(status?.lastExit), /exited before initialize/);
      await until(() => p.portico.plugins.get(id)?.state === "failed", 10_000, `${id} failed`);
    });
  }
});

describe("shutdown of nexo SDK plugins", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([
      fixture(PY),
      fixture(TS),
      fixture(PY, { id: "sdk_py_stuck", prefix: "/pystuck" }),
      fixture(TS, { id: "sdk_ts_stuck", prefix: "/tsstuck" }),
    ]);
  });
  after(() => p?.close());

  for (const dir of [PY, TS] as const) {
    const { id, prefix } = BASE[dir];
    test(`${dir}: shutdown waits for the in-flight handler, whose reply still reaches the client, then the child exits`, async () => {
      const plugin = p.portico.plugins.get(id);
      assert.ok(plugin);
      const pid = plugin.status().pid;
      assert.ok(pid);
      const sent = Date.now();
      const pending = fetch(`${p.url}${prefix}/sleep/900?tag=drain`);
      await waitStderr(p, id, new RegExp(`^handling GET ${prefix}/sleep/900$`));
      assert.ok(!stderrOf(p, id).some((l) => l.startsWith(`replied 200 ${prefix}/sleep/900`)), "still in flight");
      const t0 = Date.now();
      await plugin.stop();
      const stopped = Date.now();
      const res = await pending;
      assert.equal(res.status, 200);
      assert.deepEqual(await json(res), { slept: 900, query: "tag=drain" });
      // The handler started after `sent` and sleeps 900 ms; {ok:true} only follows its reply.
      assert.ok(stopped - sent >= 880, `stop() waited for the handler (${stopped - sent} ms after the request)`);
      assert.ok(stopped - t0 < FAST_SUPERVISOR.shutdownGraceMs, `the child exited by itself (${stopped - t0} ms)`);
      const err = stderrOf(p, id);
      assert.ok(
        err.indexOf(`${id}: shutdown requested`) > err.indexOf(`replied 200 ${prefix}/sleep/900`),
        "on_shutdown ran after the drain",
      );
      const stopLog = pluginLogs(p, id).find((l) => l.msg === "plugin stopped");
      assert.equal(stopLog?.exit, "exited with code 0");
      assert.equal(alive(pid), false);
      assert.equal(plugin.state, "stopped");
    });
  }

  test("a handler that outlives the grace period: the child is killed, the client gets 502", async () => {
    await Promise.all(
      (
        [
          ["sdk_py_stuck", "/pystuck"],
          ["sdk_ts_stuck", "/tsstuck"],
        ] as const
      ).map(async ([id, prefix]) => {
        const plugin = p.portico.plugins.get(id);
        assert.ok(plugin);
        const pid = plugin.status().pid;
        assert.ok(pid);
        const pending = fetch(`${p.url}${prefix}/sleep/20000`);
        await waitStderr(p, id, new RegExp(`^handling GET ${prefix}/sleep/20000$`));
        const t0 = Date.now();
        await plugin.stop();
        const took = Date.now() - t0;
        assert.ok(took >= FAST_SUPERVISOR.shutdownGraceMs - 100 && took < FAST_SUPERVISOR.shutdownGraceMs + 3000, `${id}: ${took} ms`);
        const res = await pending;
        assert.equal(res.status, 502);
        assert.deepEqual(await json(res), { error: "plugin exited before replying" });
        const stopped = pluginLogs(p, id).find((l) => l.msg === "plugin stopped");
        assert.equal(stopped?.exit, `did not exit within ${FAST_SUPERVISOR.shutdownGraceMs} ms of shutdown`);
        assert.equal(alive(pid), false);
      }),
    );
  });
});
