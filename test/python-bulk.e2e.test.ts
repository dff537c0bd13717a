/**
 * Python plugins at volume, with portico as its own process (`node bin/portico.js serve`) so each
 * plugin's memory can be read from /proc: for FastAPI (serve_asgi), Flask (serve_wsgi) and a plain
 * handler (serve), a download and an upload of SIZE through portico, checked by length and CRC-32,
 * with the plugin's peak RSS (VmHWM) reported and held well under the body size; and a FastAPI
 * view reading its upload slowly slows the client down instead of piling the body up.
 *
 * SIZE is 96 MiB in `npm test` (to keep the suite short); the 1 GiB runs with (longer than
 * npm test's 120 s per file allows)
 *   PORTICO_PY_BULK_MIB=1024 node --import tsx --test --test-timeout=900000 test/python-bulk.e2e.test.ts
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { get as httpGet, request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CHUNK, chunkOf, crc32 } from "./fixtures/v2/pattern.mjs";
import { collectLogLines, type LogLine } from "./support/log-lines.js";
import { pluginsDir, until } from "./support/portico.js";
import { patternCrc, pySpec, pythonWith } from "./support/python.js";
import { getJson, MiB, memoryOf, sleep, within } from "./support/v2.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SIZE = Number(process.env.PORTICO_PY_BULK_MIB ?? 96) * MiB;
/** Peak RSS allowed for a plugin while it moves SIZE: the body never sits in memory. */
const RSS_LIMIT = 64 * MiB;
const PLUGINS = [
  { name: "FastAPI (serve_asgi)", prefix: "/fa" },
  { name: "Flask (serve_wsgi)", prefix: "/fl" },
  { name: "plain handler (serve)", prefix: "/raw" },
];

let daemon: ChildProcess;
let url = "";
const lines: LogLine[] = [];
const cleanups: (() => void)[] = [];

before(async () => {
  assert.ok(existsSync(join(ROOT, "dist", "cli", "main.js")), "dist/ is missing: run npm run build");
  const python = pythonWith(["fastapi", "flask"]);
  const plugins = pluginsDir([
    pySpec("fa", "fastapi_lab.py", python, { prefix: "/fa" }),
    pySpec("fl", "flask_lab.py", python, { prefix: "/fl" }),
    pySpec("raw", "raw_lab.py", python, { prefix: "/raw" }),
  ]);
  cleanups.push(plugins.cleanup);
  const cwd = mkdtempSync(join(tmpdir(), "portico-pybulk-"));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  daemon = spawn(process.execPath, [join(ROOT, "bin", "portico.js"), "serve", "--plugins", plugins.dir, "--listen", "127.0.0.1:0"], {
    cwd,
    stdio: ["ignore", "pipe", "inherit"],
  });
  daemon.stdout?.on("data", collectLogLines(lines));
  // If the runner gives up on this file (a timeout), the daemon (and so its plugins) goes too.
  process.once("exit", () => daemon.kill("SIGKILL"));
  await until(
    () => lines.some((l) => String(l.msg).startsWith("portico listening on ")) || daemon.exitCode !== null,
    20_000,
    "portico to listen",
  );
  const listening = lines.find((l) => String(l.msg).startsWith("portico listening on "));
  assert.ok(listening, `portico did not start: ${JSON.stringify(lines)}`);
  url = String(listening.msg).slice("portico listening on ".length);
  for (const { prefix } of PLUGINS)
    await until(async () => (await getJson(`${url}${prefix}/pid`).catch(() => null)) !== null, 20_000, prefix);
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const closed = new Promise((r) => daemon.once("close", r));
    daemon.kill("SIGTERM");
    const timer = setTimeout(() => daemon.kill("SIGKILL"), 8000);
    await closed;
    clearTimeout(timer);
  }
  for (const c of cleanups) c();
});

async function pluginMemory(t: TestContext, prefix: string, what: string): Promise<number> {
  const { pid } = await getJson<{ pid: number }>(`${url}${prefix}/pid`);
  const m = memoryOf(pid);
  t.diagnostic(`${what}: plugin peak RSS ${(m.hwm / MiB).toFixed(1)} MiB (now ${(m.rss / MiB).toFixed(1)} MiB)`);
  return m.hwm;
}

function download(path: string): Promise<{ status: number; bytes: number; crc: number; complete: boolean; ms: number }> {
  const t0 = performance.now();
  return within(
    new Promise((resolve, reject) => {
      httpGet(`${url}${path}`, { agent: false }, (res) => {
        let bytes = 0;
        let crc = 0;
        res.on("data", (c: Buffer) => {
          bytes += c.length;
          crc = crc32(c, crc);
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes, crc, complete: res.complete, ms: performance.now() - t0 }));
        res.on("error", reject);
      }).on("error", reject);
    }),
    `GET ${path}`,
    300_000,
  );
}

/** Uploads `size` bytes as fast as the connection takes them; `progress` counts what was written. */
function upload(path: string, size: number, progress = { written: 0 }): Promise<{ status: number; body: string; crc: number; ms: number }> {
  const t0 = performance.now();
  let crc = 0;
  return within(
    new Promise((resolve, reject) => {
      const headers = { "content-type": "application/octet-stream", "content-length": String(size) };
      const req = httpRequest(`${url}${path}`, { method: "POST", agent: false, headers }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, crc, ms: performance.now() - t0 }));
        res.on("error", reject);
      });
      req.on("error", reject);
      void (async () => {
        for (let i = 0, at = 0; at < size; i++) {
          const c = chunkOf(i, Math.min(CHUNK, size - at));
          at += c.length;
          crc = crc32(c, crc);
          await new Promise<void>((r) => req.write(c, () => r()));
          progress.written += c.length;
        }
        req.end();
      })().catch(reject);
    }),
    `POST ${path}`,
    300_000,
  );
}

const mib = SIZE / MiB;
for (const { name, prefix } of PLUGINS) {
  test(`${name}: ${mib} MiB download and upload through portico, intact, the plugin's peak RSS well under the body`, async (t) => {
    const d = await download(`${prefix}/download?bytes=${SIZE}`);
    assert.equal(d.status, 200);
    assert.ok(d.complete);
    assert.deepEqual({ bytes: d.bytes, crc: d.crc }, patternCrc(SIZE));
    t.diagnostic(`download: ${d.ms.toFixed(0)} ms, ${(mib / (d.ms / 1000)).toFixed(0)} MiB/s`);
    const u = await upload(`${prefix}/upload`, SIZE);
    assert.equal(u.status, 200, u.body);
    assert.deepEqual(JSON.parse(u.body), { bytes: SIZE, crc: u.crc });
    t.diagnostic(`upload: ${u.ms.toFixed(0)} ms, ${(mib / (u.ms / 1000)).toFixed(0)} MiB/s`);
    const peak = await pluginMemory(t, prefix, `after ${mib} MiB each way`);
    assert.ok(peak < RSS_LIMIT, `plugin peak RSS ${(peak / MiB).toFixed(1)} MiB`);
  });
}

test("FastAPI: a view that reads its upload slowly slows the client down", async (t) => {
  const size = 64 * MiB;
  const progress = { written: 0 };
  const answer = upload("/fa/slow-upload?ms=20&tag=bp", size, progress);
  await sleep(1500);
  const { consumed } = await getJson<{ consumed: number }>(`${url}/fa/consumed?tag=bp`);
  const written = progress.written;
  t.diagnostic(`after 1.5 s: client wrote ${(written / MiB).toFixed(2)} MiB of 64, the app read ${(consumed / MiB).toFixed(2)} MiB`);
  assert.ok(consumed > 0, "the app read nothing");
  assert.ok(written < size / 2, `the client pushed ${written} bytes past a slow reader`);
  assert.ok(written - consumed < 24 * MiB, `${written - consumed} bytes buffered between client and app`);
  await getJson(`${url}/fa/hurry?tag=bp`);
  const r = await answer;
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { bytes: size, crc: r.crc });
});
