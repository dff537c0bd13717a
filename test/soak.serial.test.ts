/**
 * One minute of bench/soak.mjs: portico as its own process under mixed traffic (small requests,
 * 1–8 MiB bodies both ways, SSE, WebSockets, clients walking away), and its RSS, heap, open fds and
 * children back within 10 % of where they started, with no exchange failed. Serial: it measures
 * the daemon, so no other test file's load should share the machine with it.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
/** One minute of traffic, 10 s of warm-up, two settles, start and shutdown: about 90 s. */
const LIMIT_MS = 170_000;

test("a one-minute soak leaves the daemon as it found it", { timeout: LIMIT_MS + 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "portico-soak-test-"));
  const out = join(dir, "SOAK.md");
  try {
    const child = spawn(process.execPath, ["bench/soak.mjs", "--minutes", "1", "--warmup", "30", "--out", out], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (c: Buffer) => {
      output += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      output += c.toString();
    });
    // The soak has its own hard deadline; this one only makes sure the test never outlives it.
    // SIGINT lets it stop the daemon and plugins it started; SIGKILL if even that hangs.
    let timer: NodeJS.Timeout | undefined;
    let killer: NodeJS.Timeout | undefined;
    const code = await new Promise<number | null>((resolve) => {
      child.on("exit", (c) => resolve(c));
      timer = setTimeout(() => {
        child.kill("SIGINT");
        killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
      }, LIMIT_MS);
    }).finally(() => {
      clearTimeout(timer);
      clearTimeout(killer);
    });
    assert.equal(code, 0, `bench/soak.mjs exited ${code}:\n${output.slice(-6000)}`);
    const report = readFileSync(out, "utf8");
    assert.match(report, /\*\*PASS\*\*/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
