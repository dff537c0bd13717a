#!/usr/bin/env node
// How much CPU the daemon's side of a plugin's output costs per GiB, by how it is read: the
// measurements behind issue 7's closing note (bodies). A child writes 1 GiB in 1 MiB writes; this
// process reads it and, with --forward, sends it on to a TCP sink on 127.0.0.1 (its own process).
//
//   node bench/experiments/plugin-read.mjs MODE [--forward] [--buffer BYTES]
//
// MODE: pipe   the child's stdout as portico spawns it today (libuv allocates 64 KiB per read)
//       reuse  a Unix socket portico would create, read into one reused buffer (net onread);
//              with --forward each read is copied into a ring released on the sink's write
//              callbacks (what reusing the buffer safely would take)
//       copy   like reuse, but each read is copied into a fresh buffer
// Prints the parent's CPU (user + system) and its page faults. Not part of `npm run bench`.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { forward: { type: "boolean", default: false }, buffer: { type: "string", default: String(1 << 20) } },
});
const mode = positionals[0];
if (!["pipe", "reuse", "copy", "child", "sink"].includes(mode)) {
  process.stderr.write("usage: plugin-read.mjs pipe|reuse|copy [--forward] [--buffer BYTES]\n");
  process.exit(2);
}
const GiB_IN_MiB = 1024;

async function main() {
  const sink = values.forward ? await startSink() : undefined;
  const out = sink ? await connect(sink.port) : undefined;
  let bytes = 0;
  let reads = 0;
  // The daemon's batching (src/transport/stream.ts tickWriter: one write per event-loop turn),
  // written out again because the ring needs each write's callback, which tickWriter does not take.
  let corked = false;
  const send = (buf, done) => {
    if (!out) return true;
    if (!corked) {
      corked = true;
      out.cork();
      setImmediate(() => {
        corked = false;
        out.uncork();
      });
    }
    return out.write(buf, done);
  };
  const ring = mode === "reuse" && out ? new Ring(8 << 20) : undefined;
  const started = { cpu: process.cpuUsage(), faults: process.resourceUsage().minorPageFault, at: performance.now() };
  const finish = () => {
    const cpu = process.cpuUsage(started.cpu);
    const faults = process.resourceUsage().minorPageFault - started.faults;
    const ms = (v) => (v / 1000).toFixed(0);
    console.log(
      `${mode}${values.forward ? " --forward" : ""}: ${bytes >> 20} MiB in ${reads} reads, wall ${(performance.now() - started.at).toFixed(0)} ms, CPU ${ms(cpu.user + cpu.system)} ms (user ${ms(cpu.user)}, system ${ms(cpu.system)}), page faults ${faults}${ring?.fallbacks ? `, ring full ${ring.fallbacks}×` : ""}`,
    );
    out?.end();
    sink?.stop();
  };
  const self = new URL(import.meta.url).pathname;
  if (mode === "pipe") {
    const child = spawn(process.execPath, [self, "child"], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout.on("data", (d) => {
      bytes += d.length;
      reads++;
      if (!send(d)) {
        child.stdout.pause();
        out.once("drain", () => child.stdout.resume());
      }
    });
    child.stdout.on("end", finish);
    return;
  }
  // A socket pair made of a private Unix socket: the accepted end becomes the child's stdout.
  const dir = mkdtempSync(join(os.tmpdir(), "plugin-read-"));
  const path = join(dir, "s");
  const server = net.createServer((theirs) => {
    server.close();
    spawn(process.execPath, [self, "child"], { stdio: ["ignore", theirs, "inherit"] });
    theirs.destroy();
  });
  await new Promise((r) => server.listen(path, r));
  const ours = net.connect({
    path,
    onread: {
      buffer: Buffer.allocUnsafe(Number(values.buffer)),
      callback: (n, buf) => {
        bytes += n;
        reads++;
        const view = buf.subarray(0, n);
        let piece = view;
        let release;
        if (out && mode === "copy") piece = Buffer.from(view);
        else if (ring) [piece, release] = ring.take(view);
        if (!send(piece, release)) {
          ours.pause();
          out.once("drain", () => ours.resume());
        }
      },
    },
  });
  ours.on("end", () => {
    rmSync(dir, { recursive: true, force: true });
    finish();
  });
}

/**
 * Copies into one reused region; a piece is given back when the socket has written it. Space is
 * freed in the order it was handed out: true for this one sink, not for a daemon whose plugin
 * answers many clients (that would need slabs with reference counts).
 */
class Ring {
  constructor(size) {
    this.buf = Buffer.allocUnsafeSlow(size);
    this.head = 0;
    this.used = 0;
    this.fallbacks = 0;
  }
  take(src) {
    const n = src.length;
    let at = this.head;
    const wrap = at + n > this.buf.length ? this.buf.length - at : 0;
    if (wrap) at = 0;
    if (this.used + wrap + n > this.buf.length) {
      this.fallbacks++;
      return [Buffer.from(src), undefined];
    }
    src.copy(this.buf, at);
    this.head = at + n;
    this.used += wrap + n;
    return [this.buf.subarray(at, at + n), () => (this.used -= wrap + n)];
  }
}

/** The client's stand-in, in its own process (its reads must not count as ours): discards all. */
async function startSink() {
  const self = new URL(import.meta.url).pathname;
  const proc = spawn(process.execPath, [self, "sink"], { stdio: ["ignore", "pipe", "inherit"] });
  const [line] = await once(proc.stdout, "data");
  return { port: Number(String(line).trim()), stop: () => proc.kill() };
}

async function connect(port) {
  const s = net.connect(port, "127.0.0.1");
  await new Promise((r) => s.once("connect", r));
  return s;
}

// Last: the classes above are not hoisted.
if (mode === "sink") {
  const server = net.createServer((s) => s.resume());
  server.listen(0, "127.0.0.1", () => process.stdout.write(`${server.address().port}\n`));
} else if (mode === "child") {
  // The plugin's side: 1 GiB to stdout, honouring backpressure.
  const chunk = Buffer.alloc(1 << 20, 97);
  const out = new net.Socket({ fd: 1, readable: false, writable: true });
  let left = GiB_IN_MiB;
  const go = () => {
    while (left > 0) {
      left--;
      if (!out.write(chunk)) return void out.once("drain", go);
    }
    out.end();
  };
  go();
} else {
  await main();
}
