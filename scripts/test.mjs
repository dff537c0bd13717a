#!/usr/bin/env node
// `npm test`: builds, typechecks everything (tests included), runs Biome's lint and format check,
// then every *.test.ts under src/ and test/ with node's test runner (Node 20's --test does not
// expand globs). Extra arguments are passed through: `npm test -- --test-name-pattern=router`, or
// file paths to run only those (then the typecheck and lint steps are skipped, for a quick loop).
import { spawn, spawnSync } from "node:child_process";
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

// Files named *.serial.test.ts hold timing bounds (a bystander answering within 100 ms while a
// hostile client or plugin does its worst): they run after the rest, one at a time, so another test
// file's load doesn't decide them. The two runs' counts are added up in one closing summary.
const serial = targets.filter((f) => f.endsWith(".serial.test.ts"));
const parallel = targets.filter((f) => !f.endsWith(".serial.test.ts"));
const totals = new Map();
function run(concurrency, list) {
  if (list.length === 0) return Promise.resolve(0);
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--test", `--test-concurrency=${concurrency}`, "--test-timeout=120000", ...flags, ...list],
    { stdio: ["inherit", "pipe", "inherit"] },
  );
  let pending = "";
  child.stdout.on("data", (chunk) => {
    process.stdout.write(chunk);
    pending += chunk.toString();
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      const m = /^# (tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) ([\d.]+)$/.exec(pending.slice(0, nl));
      if (m) totals.set(m[1], (totals.get(m[1]) ?? 0) + Number(m[2]));
      pending = pending.slice(nl + 1);
    }
  });
  return new Promise((resolve) => child.on("exit", (code) => resolve(code ?? 1)));
}
const first = await run(2, parallel);
const second = await run(1, serial);
if (parallel.length && serial.length) {
  process.stdout.write("# all runs together\n");
  for (const [k, v] of totals) process.stdout.write(`# ${k} ${k === "duration_ms" ? v.toFixed(0) : v}\n`);
}
process.exit(first || second);
