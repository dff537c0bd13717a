/**
 * Keeps docs/ honest where that is mechanical: every settings key documented is one the real
 * loader accepts (with its documented type, range and default) and the other way round; every CLI
 * command and flag matches the usage; every /metrics series and /health field matches a real
 * portico's; every error status matches src/errors.ts; the first plugins documented run and answer
 * as shown; every link between the docs resolves.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { PLUGIN_STATES } from "../src/host/plugin.js";
import {
  ConfigError,
  createPortico,
  errorResponse,
  GatewayError,
  type GatewayErrorCode,
  loadConfigFile,
  type Portico,
  resolveConfig,
  statusOf,
} from "../src/index.js";
import { blockAfter, codeBlocks, codeSpan, headingSlugs, links, tablesWith } from "./support/markdown.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const doc = (name: string) => readFileSync(join(ROOT, "docs", name), "utf8");
const scratch = mkdtempSync(join(tmpdir(), "portico-docs-test-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

const documentedCommands = (tablesWith(doc("configuration.md"), "command", "what it does")[0]?.rows ?? []).map(
  (r) => codeSpan(r[0] ?? "")?.split(" ")[0] as string,
);
/** `portico <command>` with no arguments, for each documented command, all at once (in an empty folder). */
const cliRuns = Promise.all(
  documentedCommands.map(
    (command) =>
      new Promise<{ command: string; status: number | null; stdout: string; stderr: string }>((done) => {
        const child = spawn(process.execPath, [join(ROOT, "bin/portico.js"), command], { cwd: scratch });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d) => (stdout += d));
        child.stderr.on("data", (d) => (stderr += d));
        const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
        child.on("close", (status) => {
          clearTimeout(timer);
          done({ command, status, stdout, stderr });
        });
      }),
  ),
);

describe("configuration.md", () => {
  const md = doc("configuration.md");
  /** Documented settings: dotted key → type and default cells. */
  const documented = new Map<string, { type: string; def: string | undefined }>();
  for (const t of tablesWith(md, "key", "type", "default")) {
    const table = /`\[(\w+)\]`/.exec(t.heading)?.[1];
    assert.ok(table || t.heading === "Top level", `a settings table under an unexpected heading: ${t.heading}`);
    for (const [key, type, def] of t.rows)
      documented.set(`${table ? `${table}.` : ""}${codeSpan(key ?? "")}`, { type: type ?? "", def: codeSpan(def ?? "") });
  }
  const tableNames = [...documented.keys()].filter((k) => k.includes(".")).map((k) => k.split(".")[0] as string);

  let n = 0;
  /** Loads a portico.toml holding `key = literal` (a [nats] table gets the url it needs). */
  const load = (key: string, literal?: string) => {
    const [table, name] = key.includes(".") ? key.split(".") : ["", key];
    const lines = table === "nats" && name !== "url" ? ['url = "nats://127.0.0.1:4222"'] : [];
    if (literal !== undefined) lines.push(`${name} = ${literal}`);
    const file = join(scratch, `settings-${n++}.toml`);
    writeFileSync(file, table ? `[${table}]\n${lines.join("\n")}\n` : `${lines.join("\n")}\n`);
    return loadConfigFile(file);
  };
  const refused = async (key: string, literal: string) =>
    assert.rejects(load(key, literal), ConfigError, `${key} = ${literal} should be refused, as its documented type says`);

  test("documents exactly the keys the loader knows, and the loader refuses any other", async () => {
    const file = join(scratch, "unknown.toml");
    writeFileSync(
      file,
      'zz_unknown = 1\n[limits]\nzz_unknown = 1\n[supervisor]\nzz_unknown = 1\n[nats]\nurl = "nats://x"\nzz_unknown = 1\n[admin]\nzz_unknown = 1\n',
    );
    const err = await loadConfigFile(file).then(
      () => assert.fail("an unknown key was accepted"),
      (e: unknown) => e as ConfigError,
    );
    assert.ok(err instanceof ConfigError);
    const known = new Set<string>();
    for (const p of err.problems) {
      const prefix = p.key.replace(/zz_unknown$/, "");
      const list = /use one of (.+)$/.exec(p.fix)?.[1];
      assert.ok(list, `no list of known keys in ${JSON.stringify(p)}`);
      for (const k of list.split(", ")) known.add(`${prefix}${k}`);
    }
    assert.equal(err.problems.length, 5, "an unknown key in each table is refused");
    const documentedKeys = new Set([...documented.keys(), ...tableNames]);
    assert.deepEqual([...documentedKeys].sort(), [...known].sort());
  });

  test("each documented default is the loader's default, and each key takes effect", async () => {
    for (const [key, { type, def }] of documented) {
      const base = resolveConfig(await load(key));
      if (def === undefined) continue;
      assert.deepEqual(resolveConfig(await load(key, def)), base, `${key} = ${def} is documented as the default`);
      let other: string | undefined;
      if (type === "boolean") other = String(def !== "true");
      else if (type.startsWith("integer")) other = String(Number(def) + 1);
      else if (type.startsWith("number")) other = String(Number(def) + 0.5);
      if (other !== undefined) assert.notDeepEqual(resolveConfig(await load(key, other)), base, `${key} = ${other} changed nothing`);
    }
  });

  test("each documented type and lower bound is what the loader enforces", async () => {
    for (const [key, { type }] of documented) {
      const range = /^(integer|number) ≥ ([\d.]+)$/.exec(type);
      if (range) {
        const [, kind, min] = range;
        await load(key, min);
        await refused(key, kind === "integer" ? String(Number(min) - 1) : String(Number(min) > 0 ? Number(min) / 2 : -1));
        if (kind === "integer") await refused(key, String(Number(min) + 0.5));
        await refused(key, '"1"');
      } else if (type === "boolean") {
        await refused(key, '"yes"');
      } else if (type === "string" || type === "array of strings") {
        await refused(key, "5");
      } else {
        assert.fail(`${key}: undocumented type form ${JSON.stringify(type)}`);
      }
    }
  });

  test("the complete file shown is every default", async () => {
    const block = blockAfter(md, "Every key at its default", "toml");
    const file = join(scratch, "complete.toml");
    writeFileSync(file, block.text);
    assert.deepEqual(resolveConfig(await loadConfigFile(file)), resolveConfig());
  });

  test("every command and flag of the usage is documented, and nothing else", async () => {
    const runs = await cliRuns;
    const usage = runs.find((r) => r.command === "help");
    assert.equal(usage?.status, 0, usage?.stderr);
    const [flags] = tablesWith(md, "flag", "value");
    assert.ok(flags);
    const documentedFlags = flags.rows.map((r) => codeSpan(r[0] ?? ""));
    assert.deepEqual(documentedFlags.sort(), [...new Set(usage?.stdout.match(/--[a-z-]+/g))].sort());
    const usageCommands = [...(usage?.stdout ?? "").matchAll(/^ {2}portico (\w+)/gm)].map((m) => m[1]);
    assert.deepEqual(
      documentedCommands.filter((c) => c !== "help"),
      usageCommands,
    );
    // Each documented command is one the CLI knows: without its arguments it is a usage error.
    for (const { command, status, stderr } of runs) {
      assert.doesNotMatch(stderr, /unknown command/, `${command}: ${stderr}`);
      assert.equal(status, command === "help" ? 0 : 2, `${command} without arguments: ${stderr}`);
    }
  });
});

describe("troubleshooting.md", () => {
  const md = doc("troubleshooting.md");
  const [table] = tablesWith(md, "status", "body", "error code");
  const errorsTs = readFileSync(join(ROOT, "src/errors.ts"), "utf8");
  const codes = [...(/export type GatewayErrorCode =([^;]+);/.exec(errorsTs)?.[1] ?? "").matchAll(/"([a-z_]+)"/g)].map(
    (m) => m[1] as GatewayErrorCode,
  );

  test("lists every error code of src/errors.ts once, with its status and body", () => {
    assert.ok(table && codes.length > 10);
    const rows = table.rows.map(([status, body, code]) => ({
      status: Number(status),
      body: codeSpan(body ?? ""),
      code: codeSpan(code ?? ""),
    }));
    assert.deepEqual(rows.map((r) => r.code).sort(), [...codes].sort());
    for (const r of rows) {
      const code = r.code as GatewayErrorCode;
      assert.equal(r.status, statusOf(code), `${code}'s status`);
      const sent = errorResponse(new GatewayError(code));
      // 499 is recorded, never sent: documented without a body.
      if (r.status === 499) assert.equal(r.body, undefined, `${code} is never sent`);
      else assert.equal(r.body, sent.body.toString(), `${code}'s body`);
      if (r.status === 503)
        assert.ok(
          sent.headers.some(([k]) => k === "Retry-After"),
          `${code}: every 503 carries Retry-After`,
        );
    }
    assert.deepEqual(
      rows.map((r) => r.status),
      [...rows.map((r) => r.status)].sort((a, b) => a - b),
      "rows in status order",
    );
  });
});

test("every log message troubleshooting.md explains is one portico writes", () => {
  const source = readdirSync(join(ROOT, "src"), { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => readFileSync(join(ROOT, "src", f), "utf8"))
    .join("\n");
  const [table] = tablesWith(doc("troubleshooting.md"), "log line (`msg`)", "level");
  assert.ok(table && table.rows.length > 5);
  for (const [cell] of table.rows) {
    const msg = codeSpan(cell ?? "") as string;
    // N stands for a number the code fills in.
    for (const part of msg.split(/\bN\b/)) assert.ok(source.includes(part.trim()), `"${part.trim()}" is in no source file`);
  }
});

/**
 * The plugins exactly as documented (the first TypeScript one, the raw v1 one in Python) under a
 * real portico, started at once so that their start-up overlaps the tests that need no server.
 */
async function startDocumentedPlugins(): Promise<{ portico: Portico; url: string }> {
  const dir = mkdtempSync(join(scratch, "plugins-"));
  const write = (folder: string, files: Record<string, string>) => {
    mkdirSync(join(dir, folder));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, folder, name), text);
  };
  const getting = doc("getting-started.md");
  const writing = doc("writing-plugins.md");
  write("greet", {
    "nexo-plugin.toml": blockAfter(getting, "my-plugins/greet/nexo-plugin.toml", "toml").text,
    "plugin.ts": blockAfter(getting, "my-plugins/greet/plugin.ts", "ts").text,
  });
  write("time_py", {
    "nexo-plugin.toml": blockAfter(writing, "plugins/time_py/nexo-plugin.toml", "toml").text,
    "plugin.py": blockAfter(writing, "plugins/time_py/plugin.py", "python").text,
  });
  // As after `npm install /path/to/portico tsx` next to the plugins (a folder outside the checkout).
  mkdirSync(join(dir, "node_modules"));
  symlinkSync(ROOT, join(dir, "node_modules", "portico"));
  symlinkSync(join(ROOT, "node_modules", "tsx"), join(dir, "node_modules", "tsx"));
  const py = spawnSync("python3", ["--version"]);
  assert.equal(py.status, 0, "python3 is missing: install the Debian package python3 (scripts/install-system-deps.sh)");

  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logs.push(String(chunk));
      cb();
    },
  });
  const supervisor = { ...resolveConfig().supervisor, initTimeoutMs: 20_000 };
  const portico = createPortico({ pluginsDir: dir, logger: pino({ level: "info" }, sink), supervisor });
  await portico.start();
  const { address } = await portico.listen({ host: "127.0.0.1", port: 0 });
  const states = [...portico.plugins.values()].map((p) => `${p.id}: ${p.state}`);
  assert.deepEqual(states, ["greet: ready", "time_py: ready"], logs.join(""));
  return { portico, url: `http://127.0.0.1:${address.port}` };
}
const live = startDocumentedPlugins();
live.catch(() => {}); // reported by the tests that await it
after(async () => (await live.catch(() => undefined))?.portico.close());

describe("a running portico against the docs", () => {
  let url: string;
  const getting = doc("getting-started.md");
  const writing = doc("writing-plugins.md");
  before(async () => {
    ({ url } = await live);
  });

  test("the first plugin answers the documented requests with the documented output", async () => {
    const blocks = codeBlocks(getting);
    const i = blocks.findIndex((b) => b.text.includes('curl "http://127.0.0.1:8080/greet?name=Ada"'));
    const commands = (blocks[i]?.text ?? "").trim().split("\n");
    const expected = (blocks[i + 1]?.text ?? "").trim().split("\n");
    assert.equal(commands.length, 3);
    const got: string[] = [];
    for (const command of commands) {
      // curl [-X METHOD] [--data 'BODY'] URL
      const method = /-X (\w+)/.exec(command)?.[1] ?? "GET";
      const body = /--data '([^']*)'/.exec(command)?.[1];
      const target = /"?http:\/\/127\.0\.0\.1:8080([^"\s]*)"?$/.exec(command)?.[1];
      const res = await fetch(`${url}${target}`, { method, body });
      got.push(await res.text());
    }
    assert.deepEqual(got, expected);
  });

  test("the raw v1 Python plugin answers as shown", async () => {
    const res = await fetch(`${url}/time/now?x=1`);
    const body = (await res.json()) as { now: unknown; path: unknown };
    assert.equal(typeof body.now, "number");
    assert.equal(body.path, "/time/now");
    assert.match(writing, /\{"now": [\d.]+, "path": "\/time\/now"\}/);
  });

  test("metrics.md lists every /metrics series, with its type and labels, and nothing else", async () => {
    await fetch(`${url}/greet`).then((r) => r.text());
    await fetch(`${url}/nowhere`).then((r) => r.text());
    const text = await (await fetch(`${url}/metrics`)).text();
    const types = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
    const labels = new Map<string, Set<string>>();
    for (const [name] of types) labels.set(name, new Set());
    for (const m of text.matchAll(/^(\w+)\{([^}]*)\}/gm)) {
      const sample = m[1] as string;
      const family = [...types.keys()].find((f) => [f, `${f}_bucket`, `${f}_sum`, `${f}_count`].includes(sample));
      assert.ok(family, `${sample} belongs to no # TYPE`);
      for (const l of (m[2] as string).matchAll(/(\w+)="/g)) if (l[1] !== "le") labels.get(family)?.add(l[1] as string);
    }
    const md = doc("metrics.md");
    const [table] = tablesWith(md, "name", "type", "labels");
    assert.ok(table);
    const documented = table.rows.map(([name, type, label]) => ({
      name: codeSpan(name ?? "") as string,
      type: type as string,
      labels: [...(label ?? "").matchAll(/`(\w+)`/g)].map((l) => l[1] as string).sort(),
    }));
    assert.deepEqual(documented.map((d) => d.name).sort(), [...types.keys()].sort());
    for (const d of documented) {
      assert.equal(d.type, types.get(d.name), `${d.name}'s type`);
      assert.deepEqual(d.labels, [...(labels.get(d.name) ?? [])].sort(), `${d.name}'s labels`);
    }
    const buckets = /buckets \(seconds\): ([\d., \n]+)\./.exec(md)?.[1]?.split(/,\s*/).map(Number);
    const le = [...text.matchAll(/portico_request_duration_seconds_bucket\{le="([\d.]+)",plugin="greet"/g)].map((m) => Number(m[1]));
    assert.deepEqual(buckets, le, "histogram buckets");
    assert.match(text, /portico_requests_total\{plugin="",route="",status="404"\} \d+$/m, 'unrouted requests count under plugin=""');
  });

  test("metrics.md lists every /health field and plugin state", async () => {
    const health = (await (await fetch(`${url}/health`)).json()) as { plugins: Record<string, unknown>[] };
    const md = doc("metrics.md");
    const fieldTables = tablesWith(md, "field", "type", "meaning");
    const fields = (heading: string) =>
      (fieldTables.find((t) => t.heading === heading)?.rows ?? []).map((r) => codeSpan(r[0] ?? "") as string).sort();
    const top = fields("`/health`");
    assert.deepEqual(
      Object.keys(health).sort(),
      top.filter((f) => f !== "hosts"),
      "top-level fields (hosts only on a NATS gateway)",
    );
    const entryTable = fieldTables.find((t) => t.rows.some((r) => r[0] === "`id`"));
    assert.ok(entryTable, "the table of a plugin entry's fields");
    for (const p of health.plugins) {
      assert.deepEqual(Object.keys(p).sort(), entryTable.rows.map((r) => codeSpan(r[0] ?? "")).sort());
    }
    const [states] = tablesWith(md, "state", "meaning", "requests");
    assert.deepEqual(
      states?.rows.map((r) => codeSpan(r[0] ?? "")),
      [...PLUGIN_STATES],
    );
  });

  test("portico's own answers are the bodies troubleshooting.md gives", async () => {
    const rows = tablesWith(doc("troubleshooting.md"), "status", "body", "error code")[0]?.rows ?? [];
    const bodyOf = (code: string) => codeSpan(rows.find((r) => r[2] === `\`${code}\``)?.[1] ?? "");
    const cases: [string, RequestInit, number, string][] = [
      ["/nowhere", {}, 404, "not_found"],
      ["/health", { method: "POST" }, 405, "method_not_allowed"],
      ["/greet/a%2Fb", {}, 400, "bad_target"],
    ];
    for (const [path, init, status, code] of cases) {
      const res = await fetch(`${url}${path}`, init);
      assert.equal(res.status, status, path);
      assert.equal(await res.text(), bodyOf(code), path);
      assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
      assert.ok(res.headers.get("x-request-id"));
    }
  });
});

test("every link in the docs resolves, anchors included", () => {
  // Pages other branches bring with their features; a link to them is expected before the merge.
  const arriving = new Set(["own-server.md", "python.md"]);
  const pages = [
    "getting-started.md",
    "writing-plugins.md",
    "configuration.md",
    "routing-and-security.md",
    "metrics.md",
    "troubleshooting.md",
  ];
  const files = [...pages.map((p) => join(ROOT, "docs", p)), join(ROOT, "README.md")];
  for (const file of files) {
    const md = readFileSync(file, "utf8");
    for (const link of links(md)) {
      if (/^[a-z]+:/.test(link)) continue;
      const [path, anchor] = link.split("#") as [string, string | undefined];
      const target = path ? resolve(dirname(file), path) : file;
      if (!existsSync(target)) {
        assert.ok(arriving.has(path), `${file}: ${link} does not exist`);
        continue;
      }
      if (anchor) assert.ok(headingSlugs(readFileSync(target, "utf8")).has(anchor), `${file}: ${link}: no such heading`);
    }
  }
});
