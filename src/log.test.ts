import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const LOG = fileURLToPath(new URL("./log.ts", import.meta.url));

/** A child that logs with createLogger as `serve` does; `script` runs with `log` in scope. */
function child(script: string) {
  const code = `import { createLogger } from ${JSON.stringify(LOG)}; const log = createLogger({ pretty: false }); ${script}`;
  return spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
}

test("a line logged while an earlier write is still going out is written without waiting for more", async () => {
  // A burst big enough to keep a write in flight, then one line, then silence: the line must come.
  const p = child(`for (let i = 0; i < 5000; i++) log.info({ i, pad: "x".repeat(200) }, "burst");
    setTimeout(() => log.info("the last line"), 5); setInterval(() => {}, 1000);`);
  let out = "";
  const seen = new Promise<void>((resolve) => {
    p.stdout.on("data", (c: Buffer) => {
      out += c.toString();
      if (out.includes('"msg":"the last line"')) resolve();
    });
  });
  const limit = new Promise<never>((_, reject) => setTimeout(() => reject(new Error("the last line never came")), 20_000).unref());
  try {
    await Promise.race([seen, limit]);
  } finally {
    p.kill();
  }
  assert.equal(out.split("\n").filter((l) => l.includes('"msg":"burst"')).length, 5000);
});

test("lines still held when the process exits are written: none lost", async () => {
  const p = child(`for (let i = 0; i < 3000; i++) log.info({ i }, "many"); process.exit(0);`);
  let out = "";
  p.stdout.on("data", (c: Buffer) => {
    out += c.toString();
  });
  await new Promise((resolve) => p.on("close", resolve));
  const lines = out.split("\n").filter(Boolean);
  assert.equal(lines.length, 3000);
  assert.equal(JSON.parse(lines[2999] as string).i, 2999);
});
