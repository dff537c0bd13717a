import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import {
  discoverPlugins,
  formatProblem,
  loadManifest,
  type ManifestProblem,
  mountPrefixProblem,
  type PluginHttp,
  parseManifest,
  suggestMountPrefix,
} from "./index.js";

const FILE = "/plugins/demo/nexo-plugin.toml";

/** A manifest as nexo's own plugins ship them: many host-only sections portico must ignore. */
const REAL_NEXO_MANIFEST = `
# Reference plugin for the nexo daemon
[plugin]
id = "reference_demo"
version = "0.1.0"
name = "Reference demo"
description = "Shows every surface a nexo plugin can use"
min_nexo_version = ">=0.1.0"
authors = ["Nexo Team <team@example.org>"]
license = "MIT OR Apache-2.0"
homepage = "https://example.org/reference_demo"
tags = ["demo", "http"]

[plugin.entrypoint]
command = "python3"
args = ["plugin.py", "--verbose"]
env = { LOG = "info", PYTHONUNBUFFERED = "1" }

[plugin.capabilities]
broker = { publish = ["plugin.reference_demo.>"], subscribe = ["agent.>"] }
memory = ["recall", "store"]
network = true
max_memory_mb = 256

[[plugin.tools]]
name = "echo"
description = "Echo the input back"
input_schema = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }

[[plugin.tools]]
name = "time"
description = "Current time"
deprecated_since = 1979-05-27T07:32:00Z

[[plugin.channels]]
kind = "webhook"
topic = "plugin.reference_demo.events"

[plugin.supervisor]
restart = "on-failure"
max_restarts = 5
backoff_ms = [100, 200, 400, 9007199254740993]
health_interval = 15.5

[plugin.http_server]
bind = "127.0.0.1:0"
workers = 2

[plugin.http]
mount_prefix = "/reference_demo"
timeout_seconds = 12.5
some_future_option = "ignored"

[metadata.build]
rustc = "1.80"
`;

function only(problems: ManifestProblem[], key: string): ManifestProblem {
  const hits = problems.filter((p) => p.key === key);
  assert.equal(hits.length, 1, `expected exactly one problem at ${key}, got ${JSON.stringify(problems, null, 2)}`);
  const [p] = hits;
  assert.ok(p);
  assert.ok(p.message.length > 0, "message is empty");
  assert.ok(p.fix.length > 0, "fix is empty");
  assert.equal(p.file, FILE);
  return p;
}

/** Parse a manifest that should succeed, and return its [plugin.http] section. */
function httpOf(text: string): PluginHttp {
  const r = parseManifest(text, FILE);
  assert.ok(r.manifest?.http, "expected a manifest with [plugin.http]");
  return r.manifest.http;
}

/** Parse a manifest that should fail, and return the single problem at `key`. */
function failsAt(text: string, key: string): ManifestProblem {
  const r = parseManifest(text, FILE);
  assert.equal(r.manifest, undefined);
  return only(r.problems, key);
}

const BASE = `[plugin]\nid = "demo"\nversion = "1.0.0"\n`;
const WITH_EP = `${BASE}[plugin.entrypoint]\ncommand = "node"\n`;

test("a real nexo manifest with many extra sections parses", () => {
  const r = parseManifest(REAL_NEXO_MANIFEST, FILE);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.manifest, {
    file: FILE,
    dir: "/plugins/demo",
    id: "reference_demo",
    version: "0.1.0",
    name: "Reference demo",
    description: "Shows every surface a nexo plugin can use",
    entrypoint: { command: "python3", args: ["plugin.py", "--verbose"], env: { LOG: "info", PYTHONUNBUFFERED: "1" } },
    http: { mountPrefix: "/reference_demo", timeoutSeconds: 12.5, idleTimeoutSeconds: undefined, maxBodyBytes: undefined },
  });
});

test("minimal manifest: defaults for name, description, entrypoint, http", () => {
  const r = parseManifest(BASE, "relative/nexo-plugin.toml");
  assert.deepEqual(r.problems, []);
  const m = r.manifest;
  assert.ok(m);
  assert.equal(m.file, path.resolve("relative/nexo-plugin.toml"));
  assert.equal(m.dir, path.resolve("relative"));
  assert.equal(m.name, "demo");
  assert.equal(m.description, "");
  assert.equal(m.entrypoint, undefined);
  assert.equal(m.http, undefined);
});

test("entrypoint and http defaults; integer timeout; max_body_bytes", () => {
  const r = parseManifest(
    `${WITH_EP}[plugin.http]\nmount_prefix = "/a/b.c~d-e_f"\ntimeout_seconds = 86400\nmax_body_bytes = 1048576\n`,
    FILE,
  );
  assert.deepEqual(r.problems, []);
  assert.ok(r.manifest);
  assert.deepEqual(r.manifest.entrypoint, { command: "node", args: [], env: {} });
  assert.deepEqual(r.manifest.http, {
    mountPrefix: "/a/b.c~d-e_f",
    timeoutSeconds: 86400,
    idleTimeoutSeconds: undefined,
    maxBodyBytes: 1048576,
  });
  // Unset means "the daemon's default" (portico.toml [limits], else 30 s).
  assert.equal(httpOf(`${WITH_EP}[plugin.http]\nmount_prefix = "/x"\n`).timeoutSeconds, undefined);
  assert.equal(httpOf(`${WITH_EP}[plugin.http]\nmount_prefix = "/x"\nidle_timeout_seconds = 3600\n`).idleTimeoutSeconds, 3600);
  failsAt(`${WITH_EP}[plugin.http]\nmount_prefix = "/x"\nidle_timeout_seconds = 0\n`, "plugin.http.idle_timeout_seconds");
});

test("empty command means not a subprocess", () => {
  const r = parseManifest(`${BASE}[plugin.entrypoint]\ncommand = ""\nargs = ["x"]\n`, FILE);
  assert.deepEqual(r.problems, []);
  assert.ok(r.manifest);
  assert.equal(r.manifest.entrypoint, undefined);
});

test("accepted ids and versions", () => {
  for (const id of ["a", "reference_demo", "my-plugin-2", `a${"b".repeat(63)}`]) {
    assert.deepEqual(parseManifest(`[plugin]\nid = "${id}"\nversion = "1.0.0"\n`, FILE).problems, [], id);
  }
  for (const v of ["0.0.0", "1.2.3-beta.1", "1.2.3+build.5", "10.20.30-rc.1+sha.abc"]) {
    assert.deepEqual(parseManifest(`[plugin]\nid = "x"\nversion = "${v}"\n`, FILE).problems, [], v);
  }
});

test("TOML syntax error reports line and column", () => {
  const p = failsAt(`[plugin]\nid = "demo"\nversion = \n`, "(file)");
  assert.match(p.message, /line 3, column \d+/);
  assert.equal(p.fix, "correct the TOML syntax at line 3");
  assert.doesNotMatch(p.message, /\n/, "one line for humans");
});

test("[plugin] table is required and must be a table", () => {
  failsAt(`[other]\nx = 1\n`, "plugin");
  assert.match(failsAt(`plugin = "demo"\n`, "plugin").message, /must be a table, found string/);
});

test("plugin.id: required, string, pattern", () => {
  failsAt(`[plugin]\nversion = "1.0.0"\n`, "plugin.id");
  assert.match(failsAt(`[plugin]\nid = 7\nversion = "1.0.0"\n`, "plugin.id").message, /must be a string, found integer/);
  const p = failsAt(`[plugin]\nid = "My Plugin"\nversion = "1.0.0"\n`, "plugin.id");
  assert.match(p.fix, /set id = "my_plugin"/);
  failsAt(`[plugin]\nid = "1abc"\nversion = "1.0.0"\n`, "plugin.id");
  failsAt(`[plugin]\nid = "a${"b".repeat(64)}"\nversion = "1.0.0"\n`, "plugin.id");
});

test("plugin.version: required, a non-empty string (as nexo asks; semver is not enforced)", () => {
  failsAt(`[plugin]\nid = "demo"\n`, "plugin.version");
  failsAt(`[plugin]\nid = "demo"\nversion = ""\n`, "plugin.version");
  const p = failsAt(`[plugin]\nid = "demo"\nversion = 1.0\n`, "plugin.version");
  assert.match(p.message, /must be a string, found float/);
  assert.match(p.fix, /"1\.0\.0"/);
  for (const v of ["1.0", "v1.0.0", "dev"]) {
    assert.equal(parseManifest(`[plugin]\nid = "demo"\nversion = "${v}"\n`, FILE).manifest?.version, v);
  }
});

test("name, description, min_nexo_version must be strings", () => {
  assert.match(failsAt(`${BASE}name = 3\n`, "plugin.name").message, /found integer/);
  assert.match(failsAt(`${BASE}description = ["x"]\n`, "plugin.description").message, /found array/);
  assert.match(failsAt(`${BASE}min_nexo_version = true\n`, "plugin.min_nexo_version").message, /found boolean/);
});

test("entrypoint: table, command, args, env", () => {
  failsAt(`${BASE.replace("[plugin]\n", '[plugin]\nentrypoint = "node"\n')}`, "plugin.entrypoint");
  assert.match(failsAt(`${BASE}[plugin.entrypoint]\ncommand = ["node"]\n`, "plugin.entrypoint.command").message, /found array/);
  failsAt(`${BASE}[plugin.entrypoint]\ncommand = "   "\n`, "plugin.entrypoint.command");
  failsAt(`${BASE}[plugin.entrypoint]\ncommand = "no\\u0000de"\n`, "plugin.entrypoint.command");
  const args = failsAt(`${WITH_EP}args = "plugin.py"\n`, "plugin.entrypoint.args");
  assert.match(args.fix, /args = \["plugin\.py"\]/);
  assert.match(failsAt(`${WITH_EP}args = ["a", 2]\n`, "plugin.entrypoint.args[1]").message, /found integer/);
  failsAt(`${WITH_EP}env = "LOG=info"\n`, "plugin.entrypoint.env");
  assert.match(failsAt(`${WITH_EP}env = { LOG = 1 }\n`, "plugin.entrypoint.env.LOG").message, /must be a string, found integer/);
});

test("env keys: NEXO_ refused, names must be valid", () => {
  const p = failsAt(`${WITH_EP}env = { NEXO_X = "1" }\n`, "plugin.entrypoint.env.NEXO_X");
  assert.match(p.message, /NEXO_/);
  failsAt(`${WITH_EP}env = { 1ABC = "1" }\n`, "plugin.entrypoint.env.1ABC");
  const dash = failsAt(`${WITH_EP}env = { MY-VAR = "1" }\n`, "plugin.entrypoint.env.MY-VAR");
  assert.match(dash.fix, /MY_VAR/);
  failsAt(`${WITH_EP}env = { "A B" = "1" }\n`, 'plugin.entrypoint.env."A B"');
  // A key that looks like a prototype name stays an ordinary entry.
  const r = parseManifest(`${WITH_EP}env = { __proto__ = "x", constructor = "y" }\n`, FILE);
  assert.deepEqual(r.problems, []);
  const env = r.manifest?.entrypoint?.env;
  assert.ok(env);
  assert.equal(Object.getPrototypeOf(env), Object.prototype);
  assert.deepEqual(Object.keys(env), ["__proto__", "constructor"]);
});

test("http: must be a table; mount_prefix required and typed", () => {
  failsAt(`${WITH_EP.replace("[plugin]\n", '[plugin]\nhttp = "/x"\n')}`, "plugin.http");
  const missing = failsAt(`${WITH_EP}[plugin.http]\ntimeout_seconds = 5\n`, "plugin.http.mount_prefix");
  assert.match(missing.fix, /"\/demo"/, "suggests the id as prefix");
  assert.match(failsAt(`${WITH_EP}[plugin.http]\nmount_prefix = 5\n`, "plugin.http.mount_prefix").message, /found integer/);
});

test("http: every mount_prefix rule, with a suggested fix", () => {
  const cases: Array<[string, string]> = [
    ["", "/demo"],
    ["x", "/x"],
    ["/x?y=1", "/x"],
    ["/x#frag", "/x"],
    ["/", "/demo"],
    ["/x//", "/x"],
    ["/a//b", "/a/b"],
    ["/a/./b", "/a/b"],
    ["/a/../b", "/a/b"],
    ["/a b", "/a_b"],
    ["/a%20b", "/a_b"],
    ["/a\\\\b", "/a/b"], // TOML "\\\\" is one backslash
    ["/caf\u00e9", "/caf_"],
  ];
  for (const [prefix, suggestion] of cases) {
    const p = failsAt(`${WITH_EP}[plugin.http]\nmount_prefix = "${prefix}"\n`, "plugin.http.mount_prefix");
    assert.ok(p.fix.includes(`"${suggestion}"`), `${prefix}: ${p.fix}`);
  }
});

test("http: a trailing slash, which nexo accepts, is taken off", () => {
  assert.equal(parseManifest(`${WITH_EP}[plugin.http]\nmount_prefix = "/api/"\n`, FILE).manifest?.http?.mountPrefix, "/api");
  assert.equal(parseManifest(`${WITH_EP}[plugin.http]\nmount_prefix = "/a/b/"\n`, FILE).manifest?.http?.mountPrefix, "/a/b");
});

test("http: timeout_seconds range and type", () => {
  for (const t of ["0", "-1", "86401", "nan", "inf", "0.0"]) {
    failsAt(`${WITH_EP}[plugin.http]\nmount_prefix = "/x"\ntimeout_seconds = ${t}\n`, "plugin.http.timeout_seconds");
  }
  const s = failsAt(`${WITH_EP}[plugin.http]\nmount_prefix = "/x"\ntimeout_seconds = "30"\n`, "plugin.http.timeout_seconds");
  assert.match(s.message, /must be a number, found string/);
});

test("http: max_body_bytes positive integer", () => {
  for (const v of ["0", "-5", "1.5", "1e6", '"1MB"', "9007199254740993"]) {
    failsAt(`${WITH_EP}[plugin.http]\nmount_prefix = "/x"\nmax_body_bytes = ${v}\n`, "plugin.http.max_body_bytes");
  }
});

test("http without an entrypoint command is a problem on plugin.entrypoint.command", () => {
  const p = failsAt(`${BASE}[plugin.http]\nmount_prefix = "/x"\n`, "plugin.entrypoint.command");
  assert.match(p.message, /spawning/);
  failsAt(`${BASE}[plugin.entrypoint]\ncommand = ""\n[plugin.http]\nmount_prefix = "/x"\n`, "plugin.entrypoint.command");
});

test("every problem is reported together", () => {
  const r = parseManifest(
    `[plugin]\nid = "Bad Id"\nversion = "1"\nname = 1\n[plugin.entrypoint]\nargs = [1]\nenv = { NEXO_A = "x" }\n` +
      `[plugin.http]\nmount_prefix = "/x?y"\ntimeout_seconds = 0\nmax_body_bytes = -1\n`,
    FILE,
  );
  assert.equal(r.manifest, undefined);
  assert.deepEqual(r.problems.map((p) => p.key).sort(), [
    "plugin.entrypoint.args[0]",
    "plugin.entrypoint.command",
    "plugin.entrypoint.env.NEXO_A",
    "plugin.http.max_body_bytes",
    "plugin.http.mount_prefix",
    "plugin.http.timeout_seconds",
    "plugin.id",
    "plugin.name",
  ]);
  for (const p of r.problems) assert.ok(p.message && p.fix);
});

test("formatProblem is one line in the documented shape", () => {
  const line = formatProblem({ file: "/p/nexo-plugin.toml", key: "plugin.id", message: "is required", fix: "add it" });
  assert.equal(line, "/p/nexo-plugin.toml: plugin.id: is required — fix: add it");
});

test("mountPrefixProblem: accepts segments of unreserved characters (property)", () => {
  const unreserved = fc.constantFrom(..."ABCXYZabcxyz0189._~-".split(""));
  const segment = fc
    .array(unreserved, { minLength: 1, maxLength: 12 })
    .map((cs) => cs.join(""))
    .filter((s) => s !== "." && s !== "..");
  fc.assert(
    fc.property(fc.array(segment, { minLength: 1, maxLength: 5 }), (segs) => {
      assert.equal(mountPrefixProblem(`/${segs.join("/")}`), undefined);
    }),
  );
});

test("mountPrefixProblem: rejects any string containing '//' or ending in '/' (property)", () => {
  const withDoubleSlash = fc.tuple(fc.string(), fc.string()).map(([a, b]) => `${a}//${b}`);
  const trailing = fc.string().map((s) => `${s}/`);
  fc.assert(
    fc.property(fc.oneof(withDoubleSlash, trailing), (s) => {
      assert.notEqual(mountPrefixProblem(s), undefined);
    }),
  );
});

test("suggestMountPrefix always yields an acceptable prefix (property)", () => {
  fc.assert(
    fc.property(fc.string({ unit: "binary" }), (s) => {
      assert.equal(mountPrefixProblem(suggestMountPrefix(s)), undefined);
    }),
  );
});

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "portico-manifest-"));
}

function writePlugin(root: string, folder: string, id: string): string {
  fs.mkdirSync(path.join(root, folder), { recursive: true });
  const file = path.join(root, folder, "nexo-plugin.toml");
  fs.writeFileSync(file, `[plugin]\nid = "${id}"\nversion = "0.1.0"\n`);
  return file;
}

test("discoverPlugins: sorted by id, skips folders without a manifest", async () => {
  const root = tempDir();
  try {
    writePlugin(root, "a-folder", "zeta");
    writePlugin(root, "b-folder", "alpha");
    writePlugin(root, "c-folder", "mid");
    fs.mkdirSync(path.join(root, "empty-folder"));
    fs.writeFileSync(path.join(root, "README.md"), "not a plugin");
    const r = await discoverPlugins(root);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(
      r.manifests.map((m) => m.id),
      ["alpha", "mid", "zeta"],
    );
    assert.equal(r.manifests[0]?.dir, path.join(root, "b-folder"));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("discoverPlugins: duplicate ids refuse the second, naming both files", async () => {
  const root = tempDir();
  try {
    const first = writePlugin(root, "one", "same");
    const second = writePlugin(root, "two", "same");
    writePlugin(root, "three", "other");
    const r = await discoverPlugins(root);
    assert.deepEqual(
      r.manifests.map((m) => m.file),
      [path.join(root, "three", "nexo-plugin.toml"), first],
    );
    assert.equal(r.problems.length, 1);
    const [p] = r.problems;
    assert.ok(p);
    assert.equal(p.file, second);
    assert.equal(p.key, "plugin.id");
    assert.ok(formatProblem(p).includes(first) && formatProblem(p).includes(second));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("discoverPlugins: a bad manifest is reported, the others still load", async () => {
  const root = tempDir();
  try {
    writePlugin(root, "good", "good");
    fs.mkdirSync(path.join(root, "bad"));
    fs.writeFileSync(path.join(root, "bad", "nexo-plugin.toml"), "[plugin\n");
    const r = await discoverPlugins(root);
    assert.deepEqual(
      r.manifests.map((m) => m.id),
      ["good"],
    );
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]?.key, "(file)");
    assert.equal(r.problems[0]?.file, path.join(root, "bad", "nexo-plugin.toml"));
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test("discoverPlugins: a missing dir is a (dir) problem", async () => {
  const root = tempDir();
  fs.rmSync(root, { recursive: true, force: true });
  const r = await discoverPlugins(root);
  assert.deepEqual(r.manifests, []);
  assert.equal(r.problems.length, 1);
  const [p] = r.problems;
  assert.ok(p);
  assert.equal(p.key, "(dir)");
  assert.equal(p.file, root);
  assert.ok(p.message && p.fix);
});

test("loadManifest: unreadable or non-UTF-8 file is a (file) problem", async () => {
  const root = tempDir();
  try {
    const missing = await loadManifest(path.join(root, "nope.toml"));
    assert.equal(missing.problems[0]?.key, "(file)");
    const bad = path.join(root, "bad.toml");
    fs.writeFileSync(bad, Buffer.from([0x5b, 0x70, 0xff, 0x5d, 0x0a]));
    const r = await loadManifest(bad);
    const [p] = r.problems;
    assert.ok(p);
    assert.equal(p.key, "(file)");
    assert.match(p.message, /UTF-8/);
    const withBom = path.join(root, "bom.toml");
    fs.writeFileSync(withBom, `\uFEFF${BASE}`);
    assert.deepEqual((await loadManifest(withBom)).problems, []);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});
