/**
 * Protocol v2 at volume, with portico as its own process (`node bin/portico.js serve`) so the
 * daemon's memory can be read apart from this test runner's: a 1 GiB download and a 1 GiB upload
 * through portico, checked by length and CRC-32, with the peak RSS (VmHWM) of the daemon and of
 * the plugin both well under the body size; two concurrent downloads with one deliberately slow
 * reader; and a slow-reading plugin slowing the client's upload down.
 *
 * "Bounded memory" is also asserted directly, without relying on RSS: bodies are produced on
 * demand, so the plugin's count of bytes produced (or consumed) against the client's count of bytes
 * received (or written) is everything that is buffered in between, in both processes and the kernel.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { get as httpGet, request as httpRequest, type IncomingMessage } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, type TestContext, test } from "node:test";
import { fileURLToPath } from "node:url";
import { CHUNK, chunkOf, crc32, expected } from "./fixtures/v2/pattern.mjs";
import { defined } from "./support/assert.js";
import { pluginsDir, until } from "./support/portico.js";
import { getJson, labSpec, MiB, memoryOf, sleep, within } from "./support/v2.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const GiB = 1024 * MiB;
/** Peak RSS allowed for either process while moving a 1 GiB body: "well under the body size". */
const RSS_LIMIT = 200 * MiB;

let daemon: ChildProcess;
let url = "";
let daemonPid = 0;
let pluginPid = 0;
/** RSS of both once started, for the report. */
let atStart = { daemon: 0, plugin: 0 };
const lines: Record<string, unknown>[] = [];
const cleanups: (() => void)[] = [];

before(async () => {
  // The daemon and the plugin's SDK run from dist/ (`npm test` builds it first).
  assert.ok(existsSync(join(ROOT, "dist", "cli", "main.js")), "dist/ is missing: run npm run build");
  const plugins = pluginsDir([labSpec("lab")]);
  cleanups.push(plugins.cleanup);
  // An empty working folder: no ./portico.toml of the developer's is picked up.
  const cwd = mkdtempSync(join(tmpdir(), "portico-bulk-"));
  cleanups.push(() => rmSync(cwd, { recursive: true, force: true }));
  daemon = spawn(
    process.execPath,
    [join(ROOT, "bin", "portico.js"), "serve", "--plugins", plugins.dir, "--listen", "127.0.0.1:0", "--log-level", "info"],
    {
      cwd,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let rest = "";
  defined(daemon.stdout, "the daemon's stdout")
    .setEncoding("utf8")
    .on("data", (chunk: string) => {
      rest += chunk;
      const parts = rest.split("\n");
      rest = parts.pop() ?? "";
      for (const l of parts) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
    });
  await until(
    () => lines.some((l) => String(l.msg).startsWith("portico listening on ")) || daemon.exitCode !== null,
    15_000,
    "portico to listen",
  );
  const listening = lines.find((l) => String(l.msg).startsWith("portico listening on "));
  assert.ok(listening, `portico did not start: ${JSON.stringify(lines)}`);
  url = String(listening.msg).slice("portico listening on ".length);
  daemonPid = defined(daemon.pid, "the daemon's pid");
  pluginPid = (await getJson<{ pid: number }>(`${url}/lab/pid`)).pid;
  atStart = { daemon: memoryOf(daemonPid).rss, plugin: memoryOf(pluginPid).rss };
});

after(async () => {
  if (daemon && daemon.exitCode === null) {
    const closed = new Promise((r) => daemon.once("close", r));
    daemon.kill("SIGTERM");
    const timer = setTimeout(() => daemon.kill("SIGKILL"), 5000);
    await closed;
    clearTimeout(timer);
  }
  for (const c of cleanups) c();
});

function report(t: TestContext, what: string) {
  const d = memoryOf(daemonPid);
  const p = memoryOf(pluginPid);
  const mb = (n: number) => (n / MiB).toFixed(1);
  t.diagnostic(
    `${what}: peak RSS daemon ${mb(d.hwm)} MiB (at start ${mb(atStart.daemon)}, now ${mb(d.rss)}), plugin ${mb(p.hwm)} MiB (at start ${mb(atStart.plugin)}, now ${mb(p.rss)})`,
  );
  return { daemon: d, plugin: p };
}

interface Download {
  status: number;
  headers: IncomingMessage["headers"];
  bytes: number;
  crc: number;
  complete: boolean;
  ms: number;
}

/** Downloads `path`, checksumming as it goes (holds nothing). With `onResponse` the caller drives the reading (paused mode). */
function download(
  path: string,
  ms: number,
  opts: { onResponse?: (res: IncomingMessage, count: (c: Buffer) => void, counted: () => number) => void } = {},
): Promise<Download> {
  const t0 = performance.now();
  return within(
    new Promise<Download>((resolve, reject) => {
      const req = httpGet(`${url}${path}`, { agent: false }, (res) => {
        let bytes = 0;
        let crc = 0;
        const count = (c: Buffer) => {
          bytes += c.length;
          crc = crc32(c, crc);
        };
        const finish = () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, crc, complete: res.complete, ms: performance.now() - t0 });
        res.on("end", finish);
        res.on("error", reject);
        if (opts.onResponse) {
          // The caller reads (res.read() in paused mode) and hands us what it got.
          opts.onResponse(res, count, () => bytes);
        } else {
          res.on("data", count);
        }
      });
      req.on("error", reject);
    }),
    `GET ${path}`,
    ms,
  );
}

test("two concurrent 64 MiB downloads, one reader very slow: the fast one is not starved, nothing piles up", async (t) => {
  const size = 64 * MiB;
  const want = expected(size);
  let slowRes: IncomingMessage | undefined;
  let slowCount: (c: Buffer) => void = () => {};
  let slowCounted: () => number = () => 0;
  let trickle: NodeJS.Timeout | undefined;
  const slow = download(`/lab/download?bytes=${size}&tag=slow`, 60_000, {
    onResponse(res, count, counted) {
      slowRes = res;
      slowCount = count;
      slowCounted = counted;
      // A very slow reader: what is buffered, once every 100 ms (the socket is paused in between).
      trickle = setInterval(() => {
        const c = res.read() as Buffer | null;
        if (c) count(c);
      }, 100);
    },
  });
  await until(() => slowRes !== undefined, 10_000, "the slow download to start");
  const fast = await download(`/lab/download?bytes=${size}&tag=fast`, 30_000);
  assert.equal(fast.status, 200);
  assert.deepEqual({ bytes: fast.bytes, crc: fast.crc }, want);
  assert.ok(fast.complete);

  // The fast one finished while the slow one is far from done...
  const slowGot = slowCounted();
  const slowMade = (await getJson<{ produced: number }>(`${url}/lab/state?tag=slow`)).produced;
  t.diagnostic(
    `fast 64 MiB in ${fast.ms.toFixed(0)} ms; meanwhile the slow reader read ${(slowGot / MiB).toFixed(2)} MiB, the plugin made ${(slowMade / MiB).toFixed(2)} MiB for it`,
  );
  assert.ok(slowGot < size / 4, `slow reader already has ${slowGot} bytes`);
  // ...and what the plugin made for the slow reader but the reader has not read is all that sits
  // in between (plugin, pipe, daemon, sockets): about a window plus kernel buffers, never the body.
  assert.ok(slowMade - slowGot < 16 * MiB, `${slowMade - slowGot} bytes buffered between the plugin and the slow reader`);

  // Now let it read at full speed: it completes, intact.
  clearInterval(trickle);
  const slowBody = defined(slowRes, "the slow download's response");
  slowBody.on("data", slowCount);
  slowBody.resume();
  const s = await slow;
  assert.deepEqual({ bytes: s.bytes, crc: s.crc }, want);
  const mem = report(t, "after 2 × 64 MiB");
  assert.ok(mem.daemon.hwm < RSS_LIMIT && mem.plugin.hwm < RSS_LIMIT);
});

test("upload backpressure: a plugin that reads slowly slows the client down", async (t) => {
  const size = 64 * MiB;
  const tag = "bp";
  let written = 0;
  let crc = 0;
  let stop = false;
  const answer = within(
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${url}/lab/slow-upload?tag=${tag}&ms=20`,
        { method: "POST", agent: false, headers: { "content-type": "application/octet-stream", "content-length": String(size) } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      // As fast as the connection takes it: the next chunk only when the last one was accepted.
      void (async () => {
        for (let i = 0, at = 0; at < size && !stop; i++) {
          const c = chunkOf(i, Math.min(CHUNK, size - at));
          at += c.length;
          crc = crc32(c, crc);
          const flushed = new Promise<void>((r) => req.write(c, () => r()));
          // Whatever write() took was handed to the kernel when its callback runs.
          await flushed;
          written += c.length;
        }
        req.end();
      })().catch(reject);
    }),
    "the slow upload",
    60_000,
  );
  // Give the client every chance to push the whole body.
  await sleep(1500);
  const consumed = (await getJson<{ consumed: number }>(`${url}/lab/state?tag=${tag}`)).consumed;
  const sent = written;
  t.diagnostic(`after 1.5 s: client wrote ${(sent / MiB).toFixed(2)} MiB of 64, plugin consumed ${(consumed / MiB).toFixed(2)} MiB`);
  assert.ok(consumed > 0, "the plugin read nothing");
  assert.ok(sent < size / 2, `the client pushed ${sent} bytes past a slow reader`);
  assert.ok(sent - consumed < 24 * MiB, `${sent - consumed} bytes buffered between client and plugin`);

  // Let the plugin read at full speed: the upload completes, intact.
  await getJson(`${url}/lab/hurry?tag=${tag}`);
  const r = await answer;
  stop = true;
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { bytes: size, crc });
  const mem = report(t, "after the 64 MiB slow upload");
  assert.ok(mem.daemon.hwm < RSS_LIMIT && mem.plugin.hwm < RSS_LIMIT);
});

test("1 GiB download through portico: intact, both processes' peak RSS well under the body", async (t) => {
  const size = GiB;
  const d = await download(`/lab/download?bytes=${size}&tag=gib&cl=1`, 120_000);
  assert.equal(d.status, 200);
  assert.equal(d.headers["content-length"], String(size));
  assert.ok(d.complete);
  assert.deepEqual({ bytes: d.bytes, crc: d.crc }, expected(size));
  t.diagnostic(`1 GiB download: ${d.ms.toFixed(0)} ms, ${(size / MiB / (d.ms / 1000)).toFixed(0)} MiB/s`);
  const mem = report(t, "after the 1 GiB download");
  assert.ok(mem.daemon.hwm < RSS_LIMIT, `daemon peak RSS ${mem.daemon.hwm}`);
  assert.ok(mem.plugin.hwm < RSS_LIMIT, `plugin peak RSS ${mem.plugin.hwm}`);
});

test("1 GiB upload through portico: the plugin gets it intact, both processes' peak RSS well under the body", async (t) => {
  const size = GiB;
  const t0 = performance.now();
  let crc = 0;
  const r = await within(
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${url}/lab/upload?tag=gib-up`,
        { method: "POST", agent: false, headers: { "content-type": "application/octet-stream", "content-length": String(size) } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      void (async () => {
        for (let i = 0, at = 0; at < size; i++) {
          const c = chunkOf(i, Math.min(CHUNK, size - at));
          at += c.length;
          crc = crc32(c, crc);
          if (!req.write(c)) await new Promise((resolve) => req.once("drain", resolve));
        }
        req.end();
      })().catch(reject);
    }),
    "the 1 GiB upload",
    120_000,
  );
  const ms = performance.now() - t0;
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { bytes: size, crc });
  t.diagnostic(`1 GiB upload: ${ms.toFixed(0)} ms, ${(size / MiB / (ms / 1000)).toFixed(0)} MiB/s`);
  const mem = report(t, "after the 1 GiB upload");
  assert.ok(mem.daemon.hwm < RSS_LIMIT, `daemon peak RSS ${mem.daemon.hwm}`);
  assert.ok(mem.plugin.hwm < RSS_LIMIT, `plugin peak RSS ${mem.plugin.hwm}`);
});
