#!/usr/bin/env node
// The benchmark's load client for what wrk does not measure: big bodies as MB/s, SSE timing and
// WebSocket echo. A separate process (bench/run.mjs spawns it), so its CPU is its own and is
// reported. Prints one JSON line on stdout: the measurement. Everything is bounded in time.
//
//   node bench/load-client.mjs bulk --url URL --method GET|POST --size BYTES [--connections C]
//        [--duration SEC] [--min-transfers N] [--max-transfers N] [--timeout SEC]
//     Back-to-back transfers on C keep-alive connections until DURATION is over (at least
//     MIN-TRANSFERS, at most MAX-TRANSFERS in all). GET reads (and checks the size of) a SIZE-byte
//     response; POST sends a SIZE-byte body and expects the endpoint to answer the count (/count)
//     or echo it (/echo). MB/s counts body bytes moved in one direction.
//   node bench/load-client.mjs sse --url URL --events N --interval MS [--timeout SEC]
//     One SSE request: time to the response head, to the first event, to the last, and when each
//     event arrived.
//   node bench/load-client.mjs ws --url ws://… [--clients N] [--size BYTES] [--duration SEC] [--timeout SEC]
//     N WebSockets, each sending one SIZE-byte text message and waiting for its echo, in a loop
//     (closed loop), for DURATION: messages/s and round-trip percentiles.
import http from "node:http";
import { parseArgs } from "node:util";

const { positionals, values: o } = parseArgs({
  allowPositionals: true,
  options: {
    url: { type: "string" },
    method: { type: "string", default: "GET" },
    size: { type: "string", default: "0" },
    connections: { type: "string", default: "1" },
    duration: { type: "string", default: "5" },
    "min-transfers": { type: "string", default: "1" },
    "max-transfers": { type: "string", default: "100000" },
    timeout: { type: "string", default: "60" },
    events: { type: "string", default: "100" },
    interval: { type: "string", default: "10" },
    clients: { type: "string", default: "16" },
  },
});
const mode = positionals[0];
const now = () => performance.now();
const TIMEOUT_MS = Number(o.timeout) * 1000;

function out(result) {
  const cpu = process.cpuUsage();
  result.clientCpuMs = (cpu.user + cpu.system) / 1000;
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

// Whatever happens, the client gives up in bounded time.
setTimeout(() => out({ fatal: `client gave up after ${o.timeout} s` }), TIMEOUT_MS + 5000).unref();

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

// ───────────────────────────── bulk ─────────────────────────────

async function bulk() {
  const url = new URL(o.url);
  const size = Number(o.size);
  const connections = Number(o.connections);
  const durationMs = Number(o.duration) * 1000;
  const minTransfers = Number(o["min-transfers"]);
  const maxTransfers = Number(o["max-transfers"]);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const body = Buffer.alloc(Math.min(size, 1024 * 1024), 0x78);
  const echo = url.pathname.endsWith("/echo");
  const errors = [];
  const latencies = [];
  let bytes = 0;
  let started = 0;

  const one = () =>
    new Promise((resolve) => {
      const t0 = now();
      let received = 0;
      let done = false;
      const finish = (err) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (err) {
          errors.push(String(err.message ?? err).slice(0, 200));
          req.destroy();
        }
        resolve(err ? undefined : now() - t0);
      };
      const timer = setTimeout(() => finish(new Error(`transfer timed out after ${o.timeout} s`)), TIMEOUT_MS);
      const headers = o.method === "POST" ? { "content-type": "application/octet-stream", "content-length": size } : {};
      const req = http.request(url, { method: o.method, agent, headers }, (res) => {
        const answer = [];
        res.on("data", (c) => {
          received += c.length;
          if (!echo && o.method === "POST" && answer.length < 4) answer.push(c);
        });
        res.on("end", () => {
          if (res.statusCode !== 200)
            return finish(new Error(`status ${res.statusCode}: ${Buffer.concat(answer).toString("utf8").slice(0, 120)}`));
          if (o.method === "GET" || echo) {
            if (received !== size) return finish(new Error(`got ${received} of ${size} bytes`));
          } else if (Number(Buffer.concat(answer).toString("utf8").trim()) !== size) {
            return finish(new Error(`the server counted ${Buffer.concat(answer).toString("utf8").trim().slice(0, 40)}, not ${size}`));
          }
          bytes += size;
          finish();
        });
        res.on("error", finish);
        res.on("aborted", () => finish(new Error("response aborted")));
      });
      req.on("error", finish);
      if (o.method !== "POST") return void req.end();
      let left = size;
      const pump = () => {
        while (left > 0) {
          const n = Math.min(left, body.length);
          left -= n;
          if (!req.write(n === body.length ? body : body.subarray(0, n))) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });

  const t0 = now();
  const worker = async () => {
    while (started < maxTransfers && (started < minTransfers || now() - t0 < durationMs)) {
      started++;
      const ms = await one();
      if (ms === undefined) return; // one failure ends this connection's loop: the run reports it
      latencies.push(ms);
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const seconds = (now() - t0) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  out({
    mode: "bulk",
    requests: latencies.length,
    seconds,
    bytes,
    rps: latencies.length / seconds,
    bytesPerSec: bytes / seconds,
    latency: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) },
    errors,
  });
}

// ───────────────────────────── SSE ─────────────────────────────

async function sse() {
  const expected = Number(o.events);
  // One short stream first, on the connection the measured one reuses: the timing is then of the
  // path (proxy, plugin), not of this process's first request or of the TCP handshake.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const warm = new URL(o.url);
  warm.searchParams.set("n", "1");
  await new Promise((resolve) => {
    const req = http.get(warm, { agent }, (res) => {
      res.resume();
      res.on("end", resolve);
      res.on("error", resolve);
    });
    req.on("error", resolve);
    req.setTimeout(TIMEOUT_MS, () => req.destroy());
  });
  const t0 = now();
  const arrivals = [];
  let head = NaN;
  let error;
  await new Promise((resolve) => {
    const timer = setTimeout(() => {
      error = `timed out after ${o.timeout} s with ${arrivals.length} of ${expected} events`;
      req.destroy();
      resolve();
    }, TIMEOUT_MS);
    const req = http.get(o.url, { agent, headers: { accept: "text/event-stream" } }, (res) => {
      head = now() - t0;
      if (res.statusCode !== 200) error = `status ${res.statusCode}`;
      let buf = "";
      res.setEncoding("utf8");
      res.on("data", (d) => {
        const at = now() - t0;
        buf += d;
        for (let i = buf.indexOf("\n\n"); i !== -1; i = buf.indexOf("\n\n")) {
          if (buf.slice(0, i).startsWith("data:")) arrivals.push(at);
          buf = buf.slice(i + 2);
        }
      });
      res.on("end", () => {
        clearTimeout(timer);
        resolve();
      });
      res.on("error", (e) => {
        error = e.message;
        clearTimeout(timer);
        resolve();
      });
    });
    req.on("error", (e) => {
      error = e.message;
      clearTimeout(timer);
      resolve();
    });
  });
  agent.destroy();
  if (!error && arrivals.length !== expected) error = `got ${arrivals.length} of ${expected} events`;
  out({ mode: "sse", requests: error ? 0 : 1, headMs: head, arrivals, errors: error ? [error] : [] });
}

// ───────────────────────────── WebSocket ─────────────────────────────

async function ws() {
  const { WebSocket } = await import("ws");
  const clients = Number(o.clients);
  const size = Number(o.size) || 64;
  const durationMs = Number(o.duration) * 1000;
  const message = "x".repeat(size);
  const errors = [];
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise((resolve) => {
          const s = new WebSocket(o.url, { perMessageDeflate: false, handshakeTimeout: 10_000 });
          s.once("open", () => resolve(s));
          s.once("unexpected-response", (_req, res) => {
            errors.push(`upgrade refused: status ${res.statusCode}`);
            res.resume();
            resolve(undefined);
          });
          s.once("error", (e) => {
            errors.push(e.message);
            resolve(undefined);
          });
        }),
    ),
  );
  const open = sockets.filter(Boolean);
  if (open.length < clients) {
    for (const s of open) s.terminate();
    return out({ mode: "ws", requests: 0, seconds: 0, errors: [...new Set(errors)] });
  }
  const rtts = [];
  let stop = false;
  const t0 = now();
  await Promise.all(
    open.map(
      (s) =>
        new Promise((resolve) => {
          let sent = 0;
          const send = () => {
            if (stop || now() - t0 >= durationMs) return resolve();
            sent = now();
            s.send(message);
          };
          s.on("message", (data) => {
            if (data.length !== size) errors.push(`echo of ${data.length} bytes, sent ${size}`);
            rtts.push(now() - sent);
            send();
          });
          s.on("close", () => resolve());
          s.on("error", (e) => {
            errors.push(e.message);
            resolve();
          });
          send();
        }),
    ),
  );
  stop = true;
  const seconds = (now() - t0) / 1000;
  await Promise.all(
    open.map(
      (s) =>
        new Promise((resolve) => {
          const t = setTimeout(() => {
            s.terminate();
            resolve();
          }, 2000);
          s.once("close", () => {
            clearTimeout(t);
            resolve();
          });
          s.close(1000);
        }),
    ),
  );
  rtts.sort((a, b) => a - b);
  out({
    mode: "ws",
    requests: rtts.length,
    seconds,
    rps: rtts.length / seconds,
    latency: { p50: percentile(rtts, 50), p99: percentile(rtts, 99), max: rtts.at(-1) },
    errors: [...new Set(errors)].slice(0, 5),
  });
}

const modes = { bulk, sse, ws };
if (!modes[mode] || !o.url) {
  process.stderr.write("usage: node bench/load-client.mjs bulk|sse|ws --url URL [options] (see the comment at the top)\n");
  process.exit(2);
}
modes[mode]().catch((err) => out({ fatal: String(err?.stack ?? err) }));
