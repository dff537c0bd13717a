#!/usr/bin/env node
// `npm test`: builds, typechecks everything (tests included), runs Biome's lint and format check,
// then every *.test.ts under src/ and test/ with node's test runner (Node 20's --test does not
// expand globs). Extra arguments are passed through: `npm test -- --test-name-pattern=router`, or
// file paths to run only those (then the typecheck and lint steps are skipped, for a quick loop).
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

/** Runs one step; exits with its status if it fails. */
function step(what, args) {
  const r = spawnSync(process.execPath, args, { stdio: "inherit" });
  if (r.status !== 0) {
    process.stderr.write(`npm test: ${what} failed\n`);
    process.exit(r.status ?? 1);
  }
}

// The plugins' TypeScript SDK is imported from dist/ (package self-reference): build it first.
step("build", ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"]);
if (!files.length) {
  step("typecheck (tsconfig.test.json)", ["node_modules/typescript/bin/tsc", "-p", "tsconfig.test.json"]);
  step("lint and format check (biome check; `npx biome check --write .` fixes what it can)", [
    "node_modules/@biomejs/biome/bin/biome",
    "check",
    "--error-on-warnings",
    ".",
  ]);
}

const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=2", "--test-timeout=120000", ...flags, ...targets],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
