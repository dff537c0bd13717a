import assert from "node:assert/strict";
import { test } from "node:test";
import { type ManifestProblem, parseManifest } from "./index.js";

const FILE = "/plugins/web/nexo-plugin.toml";
const BASE = `[plugin]
id = "web"
version = "1.0.0"

[plugin.entrypoint]
command = "node"
args = ["server.mjs"]

[plugin.http]
mount_prefix = "/web"
`;

function problemsOf(section: string): ManifestProblem[] {
  const r = parseManifest(`${BASE}\n[capabilities.http_server]\n${section}\n`, FILE);
  assert.equal(r.manifest, undefined, "expected the manifest to be refused");
  return r.problems;
}

function onlyAt(section: string, key: string): ManifestProblem {
  const problems = problemsOf(section);
  assert.equal(problems.length, 1, JSON.stringify(problems, null, 2));
  const [p] = problems;
  assert.equal(p?.key, key);
  assert.ok(p && p.message.length > 0 && p.fix.length > 0);
  return p as ManifestProblem;
}

test("[capabilities.http_server]: port alone, every other key at its default", () => {
  const r = parseManifest(`${BASE}\n[capabilities.http_server]\nport = 8181\n`, FILE);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.manifest?.httpServer, {
    port: 8181,
    bind: "127.0.0.1",
    healthPath: "/healthz",
    tokenEnv: undefined,
    healthIntervalSeconds: 5,
    healthTimeoutSeconds: 2,
    healthFailures: 3,
    startupTimeoutSeconds: 30,
  });
});

test("[capabilities.http_server]: every key set; unknown keys ignored", () => {
  const r = parseManifest(
    `${BASE}
[capabilities]
broker = { publish = ["x"] }

[capabilities.http_server]
port = 9000
bind = "::1"
health_path = "/status?full=1"
token_env = "APP_TOKEN"
health_interval_seconds = 0.5
health_timeout_seconds = 1
health_failures = 5
startup_timeout_seconds = 120
workers = 4
`,
    FILE,
  );
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.manifest?.httpServer, {
    port: 9000,
    bind: "::1",
    healthPath: "/status?full=1",
    tokenEnv: "APP_TOKEN",
    healthIntervalSeconds: 0.5,
    healthTimeoutSeconds: 1,
    healthFailures: 5,
    startupTimeoutSeconds: 120,
  });
});

test("nexo's [plugin.http_server] and [plugin.capabilities] mean nothing to portico", () => {
  const r = parseManifest(
    `${BASE}
[plugin.http_server]
bind = "0.0.0.0:9100"
port = 9100

[plugin.capabilities.http_server]
port = "not even a number"
`,
    FILE,
  );
  assert.deepEqual(r.problems, []);
  assert.equal(r.manifest?.httpServer, undefined);
  assert.equal(Object.hasOwn(r.manifest ?? {}, "httpServer"), false);
});

test("a top-level capabilities that is not a table is not portico's business", () => {
  const r = parseManifest(`capabilities = ["broker"]\n${BASE}`, FILE);
  assert.deepEqual(r.problems, []);
  assert.equal(r.manifest?.httpServer, undefined);
});

test("[capabilities.http_server] problems name the key and the fix", () => {
  assert.match(onlyAt('bind = "127.0.0.1"', "capabilities.http_server.port").message, /required/);
  assert.match(onlyAt("port = 0", "capabilities.http_server.port").message, /between 1 and 65535, found 0/);
  assert.match(onlyAt("port = 70000", "capabilities.http_server.port").message, /found 70000/);
  assert.match(onlyAt('port = "8181"', "capabilities.http_server.port").message, /must be an integer, found string/);
  assert.match(onlyAt('port = 8181\nbind = "0.0.0.0"', "capabilities.http_server.bind").message, /not a loopback address/);
  assert.match(onlyAt('port = 8181\nbind = "10.0.0.1"', "capabilities.http_server.bind").message, /not a loopback address/);
  assert.match(onlyAt('port = 8181\nhealth_path = "healthz"', "capabilities.http_server.health_path").message, /starting with '\/'/);
  assert.match(onlyAt('port = 8181\ntoken_env = "NEXO_TOKEN"', "capabilities.http_server.token_env").message, /reserved/);
  assert.match(onlyAt('port = 8181\ntoken_env = "APP-TOKEN"', "capabilities.http_server.token_env").message, /not a valid/);
  assert.match(onlyAt("port = 8181\nhealth_failures = 0", "capabilities.http_server.health_failures").message, /between 1 and 100/);
  assert.match(onlyAt("port = 8181\nhealth_failures = 2.5", "capabilities.http_server.health_failures").message, /integer, found float/);
  assert.match(
    onlyAt("port = 8181\nhealth_interval_seconds = 0", "capabilities.http_server.health_interval_seconds").message,
    /greater than 0/,
  );
  assert.match(
    onlyAt('port = 8181\nstartup_timeout_seconds = "30"', "capabilities.http_server.startup_timeout_seconds").message,
    /number, found string/,
  );
});

test("[capabilities.http_server] must be a table", () => {
  const r = parseManifest(`${BASE}\n[capabilities]\nhttp_server = 8181\n`, FILE);
  assert.equal(r.manifest, undefined);
  assert.equal(r.problems[0]?.key, "capabilities.http_server");
});
