/**
 * The manifest reference in docs/writing-plugins.md against the real manifest parser: the keys
 * documented are the keys it reads, each documented type is enforced, each "required" key is,
 * the timeout bound is the documented one, and the documented defaults are what a manifest
 * without the key gets.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { resolveConfig } from "../src/config.js";
import { routeFor } from "../src/host/index.js";
import { parseManifest } from "../src/manifest/index.js";
import { codeSpan, tablesWith } from "./support/markdown.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const md = readFileSync(join(ROOT, "docs", "writing-plugins.md"), "utf8");
const [table] = tablesWith(md, "key", "type", "default");
const rows = (table?.rows ?? []).map(([key, type, def, rules]) => ({
  key: codeSpan(key ?? "") as string,
  type: type ?? "",
  def: def ?? "",
  rules: rules ?? "",
}));

/** A valid manifest with `key` set to `literal` (or left out, for `undefined`). */
function manifest(key: string, literal: string | undefined): string {
  const values = new Map<string, string>([
    ["plugin.id", '"docs_probe"'],
    ["plugin.version", '"0.1.0"'],
    ["plugin.entrypoint.command", '"node"'],
    ["plugin.http.mount_prefix", '"/probe"'],
  ]);
  if (literal === undefined) values.delete(key);
  else values.set(key, literal);
  const sections = new Map<string, string[]>();
  for (const [k, v] of values) {
    const at = k.lastIndexOf(".");
    const section = k.slice(0, at);
    sections.set(section, [...(sections.get(section) ?? []), `${k.slice(at + 1)} = ${v}`]);
  }
  const order = ["plugin", "plugin.entrypoint", "plugin.http"];
  return order.map((s) => `[${s}]\n${(sections.get(s) ?? []).join("\n")}\n`).join("\n");
}

const problemsOf = (text: string) => parseManifest(text, "/tmp/docs-probe/nexo-plugin.toml").problems.map((p) => p.key);

test("the manifest reference documents exactly the keys the parser reads", () => {
  assert.ok(rows.length > 8);
  const source = readFileSync(join(ROOT, "src/manifest/validate.ts"), "utf8");
  const read = new Set([...source.matchAll(/(?:field|optionalString|seconds)\(\w+, "(\w+)"/g)].map((m) => m[1] as string));
  const documented = new Set(rows.flatMap((r) => r.key.split(".")));
  assert.deepEqual([...documented].sort(), [...read].sort());
});

test("each documented type and required key is enforced", () => {
  const wrong: Record<string, string> = {
    string: "5",
    "array of strings": '"plugin.py"',
    "table of strings": "5",
    number: '"30"',
    integer: "1.5",
  };
  for (const r of rows) {
    assert.deepEqual(problemsOf(manifest(r.key, defaultsOf(r.key))), [], `${r.key}: the probe is valid`);
    const literal = wrong[r.type];
    assert.ok(literal, `${r.key}: undocumented type ${r.type}`);
    assert.ok(
      problemsOf(manifest(r.key, literal)).some((k) => k === r.key || k.startsWith(`${r.key}.`) || k.startsWith(`${r.key}[`)),
      `${r.key} = ${literal} should be refused`,
    );
    if (r.def.startsWith("required"))
      assert.ok(problemsOf(manifest(r.key, undefined)).includes(r.key), `${r.key} is documented as required`);
  }
});

/** The probe's own value for the keys it sets, else nothing. */
function defaultsOf(key: string): string | undefined {
  return {
    "plugin.id": '"docs_probe"',
    "plugin.version": '"0.1.0"',
    "plugin.entrypoint.command": '"node"',
    "plugin.http.mount_prefix": '"/probe"',
  }[key];
}

test("the documented bounds of the timeouts and body limit hold", () => {
  for (const key of ["plugin.http.timeout_seconds", "plugin.http.idle_timeout_seconds"]) {
    const max = /at most (\d+)/.exec(rows.find((r) => r.key === key)?.rules ?? "")?.[1];
    assert.ok(max, `${key}: documented maximum`);
    assert.deepEqual(problemsOf(manifest(key, max)), []);
    assert.deepEqual(problemsOf(manifest(key, "0.5")), []);
    assert.deepEqual(problemsOf(manifest(key, String(Number(max) + 1))), [key]);
    assert.deepEqual(problemsOf(manifest(key, "0")), [key]);
  }
  assert.deepEqual(problemsOf(manifest("plugin.http.max_body_bytes", "1")), []);
  assert.deepEqual(problemsOf(manifest("plugin.http.max_body_bytes", "0")), ["plugin.http.max_body_bytes"]);
  assert.deepEqual(problemsOf(manifest("plugin.http.max_body_bytes", "1e6")), ["plugin.http.max_body_bytes"]);
  assert.deepEqual(problemsOf(manifest("plugin.entrypoint.env", '{ NEXO_X = "1" }')), ["plugin.entrypoint.env.NEXO_X"]);
  assert.deepEqual(problemsOf(manifest("plugin.http.mount_prefix", '"/api/"')), []);
  assert.deepEqual(problemsOf(manifest("plugin.id", '"Bad"')), ["plugin.id"]);
  // Sections portico does not use are accepted and ignored.
  assert.deepEqual(problemsOf(`${manifest("plugin.id", '"docs_probe"')}\n[capabilities]\nx = 1\n[plugin.tools]\ny = 2\n`), []);
});

test("a manifest without the optional keys gets the documented defaults", () => {
  const m = parseManifest(manifest("plugin.id", '"docs_probe"'), "/tmp/docs-probe/nexo-plugin.toml").manifest;
  assert.ok(m);
  const def = (key: string) => rows.find((r) => r.key === key)?.def ?? "";
  assert.equal(def("plugin.name"), "the id");
  assert.equal(m.name, "docs_probe");
  assert.equal(codeSpan(def("plugin.description")), JSON.stringify(m.description));
  assert.equal(codeSpan(def("plugin.entrypoint.args")), JSON.stringify(m.entrypoint?.args));
  assert.equal(codeSpan(def("plugin.entrypoint.env")), JSON.stringify(m.entrypoint?.env));
  assert.equal(m.http?.mountPrefix, "/probe");
  const route = routeFor(m, resolveConfig());
  assert.match(def("plugin.http.timeout_seconds"), new RegExp(`\\(${(route?.timeoutMs ?? 0) / 1000}\\)`));
  assert.match(def("plugin.http.idle_timeout_seconds"), new RegExp(`\\(${(route?.idleTimeoutMs ?? 0) / 1000}\\)`));
  assert.equal(route?.maxBodyBytes, undefined, "no body limit of its own: the daemon's v1 default, none for v2");
});
