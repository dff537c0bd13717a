#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ with node's test runner (Node 20's --test does not
// expand globs). Extra arguments are passed through: `npm test -- --test-name-pattern=router`,
// or file paths to run only those.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === "node_modules" || name === "fixtures") continue;
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const files = args.filter((a) => !a.startsWith("-"));
const flags = args.filter((a) => a.startsWith("-"));
const targets = files.length ? files : [...find("src"), ...find("test")].sort();

// The plugins' TypeScript SDK is imported from dist/ (package self-reference): build it first.
const build = spawnSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
if (build.status !== 0) process.exit(build.status ?? 1);

const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=120000", ...flags, ...targets],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
