/**
 * The hostile-plugin corpus: plugins that misbehave on purpose (test/fixtures/hostile/), each
 * against a real portico process, with a bystander plugin probed all along. Every case asserts what
 * the client gets, that the bystander kept answering within 100 ms, that the daemon's memory stayed
 * bounded while it happened, and that its RSS and open fds came back within 10 % afterwards.
 *
 * Items (issue 6): 6 a 200 MiB reply line; 7 a stdout flood; 8 a JSON-RPC flood from a plugin that
 * never reads; 9 requests piling up for a plugin that never reads; 10 WebSocket messages sent with
 * the 101; 11 a client's close frame on a connection it keeps open; 12 an upload longer than
 * timeout_seconds; 13 clients leaving as the last bytes go out.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import type { PluginSpec } from "../support/portico.js";
import { labSpec, within } from "../support/v2.js";
import { assertSettled, Bystander, type Daemon, footprint, get, pluginHealth, settledFootprint, startDaemon, waitFor } from "./harness.js";

const HOSTILE = fileURLToPath(new URL("../fixtures/hostile/plugin.mjs", import.meta.url));
const EAGER = fileURLToPath(new URL("../fixtures/hostile/v2-eager-ws.mjs", import.meta.url));
const MiB = 1024 * 1024;
const TRIGGER = join(mkdtempSync(join(tmpdir(), "portico-rpcflood-")), "flood");
const hostile = (id: string, env: Record<string, string>, http = "") => ({ id, args: [HOSTILE], env: { HOSTILE: "deaf", ...env }, http });

const LIMITS =
  "[limits]\nmax_line_bytes = 8388608\nmax_queued_bytes = 4194304\nmax_log_lines_per_second = 100\nmin_upload_rate = 1024\ninput_stall_seconds = 2\n";

/** Samples the daemon's RSS every 50 ms while `work` runs; resolves with the peak and the work's result. */
async function peakDuring<T>(d: Daemon, work: Promise<T>): Promise<{ peak: number; result: T }> {
  let peak = footprint(d.pid).rss;
  const timer = setInterval(() => {
    peak = Math.max(peak, footprint(d.pid).rss);
  }, 50);
  try {
    const result = await work;
    return { peak: Math.max(peak, footprint(d.pid).rss), result };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Runs one case on a daemon of its own (the bystander plugin and the case's plugins, so that no
 * case inherits another's aftermath), between a fresh baseline and the checks every case ends with.
 */
async function hostileCase(
  name: string,
  plugins: PluginSpec[],
  maxGrowth: number,
  body: (d: Daemon) => Promise<void>,
  warm?: (d: Daemon) => Promise<void>,
): Promise<Daemon> {
  const d = await startDaemon([labSpec("bystander"), ...plugins], LIMITS);
  const bystander = new Bystander(`${d.url}/bystander/pid`);
  bystander.start();
  try {
    // A fresh daemon's memory creeps up for its first seconds of traffic (code compiled, pools
    // filled): the baseline is taken once that has settled, not at birth. A case whose traffic
    // is big first sends the same traffic to a well-behaved plugin: the allocator's arenas then
    // already hold what serving it costs, and what is measured is what the hostile plugin adds.
    await warm?.(d);
    await new Promise((r) => setTimeout(r, 3000));
    const base = await settledFootprint(d);
    await bystander.probed();
    bystander.window();
    const { peak } = await peakDuring(d, body(d));
    bystander.assertServed(name);
    assert.ok(
      peak - base.rss < maxGrowth,
      `${name}: daemon RSS grew by ${((peak - base.rss) / MiB).toFixed(1)} MiB (bound ${maxGrowth / MiB} MiB)`,
    );
    await assertSettled(d, base, name);
    return d;
  } finally {
    await bystander.stop();
    await d.close();
  }
}

test("6: a 200 MiB reply line gets the plugin killed at max_line_bytes and restarted; the client gets 502", async () => {
  const huge = hostile("huge", { HOSTILE: "huge-line", HUGE_BYTES: String(200 * MiB) });
  // The same fixture under max_line_bytes (8 MiB here): a 6 MiB reply line, taken whole. Serving
  // it first grows the allocator's arenas as far as a line near the limit does, so the baseline
  // already holds that and what is measured is what the oversized line adds (without it, the
  // arenas glibc keeps after the 8 MiB line once read 8.6 MiB over a 54 MiB baseline).
  const big = hostile("big", { HOSTILE: "huge-line", HUGE_BYTES: String(6 * MiB) });
  const warm = async (d: Daemon) => {
    const r = await get(`${d.url}/big/x`, undefined, 20_000);
    assert.equal(r.status, 200);
    assert.ok(r.body.length > 4 * MiB, `the 6 MiB line's body: ${r.body.length} bytes`);
  };
  await hostileCase(
    "huge line",
    [huge, big],
    48 * MiB,
    async (d) => {
      const before = await pluginHealth(d, "huge");
      const r = await get(`${d.url}/huge/x`, undefined, 20_000);
      assert.equal(r.status, 502);
      assert.deepEqual(JSON.parse(r.body), { error: "plugin exited before replying" });
      const after = await waitFor(
        async () => {
          const h = await pluginHealth(d, "huge");
          return h.restarts > before.restarts && h.state === "ready" ? h : undefined;
        },
        15_000,
        "huge to be restarted",
      );
      assert.match(String(after.lastExit), /max_line_bytes/);
      assert.ok(d.logs.some((l) => l.plugin === "huge" && /over max_line_bytes/.test(String(l.msg))));
    },
    warm,
  );
});

test("7: a plugin flooding stdout and stderr costs a counter: /health and others answer at once", async () => {
  let healthWorst = 0;
  await hostileCase("stdout flood", [hostile("flood", { HOSTILE: "flood" })], 40 * MiB, async (d) => {
    const flood = get(`${d.url}/flood/flood?seconds=4`, undefined, 20_000);
    const deadline = Date.now() + 3500;
    while (Date.now() < deadline) {
      healthWorst = Math.max(healthWorst, (await get(`${d.url}/health`)).ms);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await flood).status, 200);
    await waitFor(
      () => (d.logs.some((l) => l.plugin === "flood" && /lines dropped/.test(String(l.msg))) ? true : undefined),
      3000,
      "the dropped-lines summary",
    );
  });
  assert.ok(healthWorst < 100, `/health took ${healthWorst.toFixed(1)} ms during the flood`);
});

test("8: a plugin flooding JSON-RPC requests while never reading: memory stays bounded, the flood is slowed at its source", async () => {
  // rpcflood floods for 4 s from its start once the trigger exists: restart it to set it off.
  // Before the fix, the answers it never read grew the daemon by 44–66 MiB a second without end.
  const rpcflood = hostile("rpcflood", { HOSTILE: "rpc-flood", FLOOD_SECONDS: "4", FLOOD_TRIGGER: TRIGGER });
  await hostileCase("rpc flood", [rpcflood], 64 * MiB, async (d) => {
    const before = await pluginHealth(d, "rpcflood");
    assert.ok(before.pid);
    writeFileSync(TRIGGER, "");
    process.kill(before.pid, "SIGKILL");
    await waitFor(
      async () => {
        const h = await pluginHealth(d, "rpcflood");
        return h.restarts > before.restarts && h.state === "ready" ? h : undefined;
      },
      15_000,
      "rpcflood to come back",
    );
    await new Promise((r) => setTimeout(r, 4500));
    // Its unanswered requests were not read as fast as it wrote them: its output was left unread
    // for moments (50 ms each), so its writes blocked and the flood slowed down at its source.
    const waits = d.logs.flatMap((l) => {
      const m = l.plugin === "rpcflood" ? /^rpc flood: waited (\d+) ms/.exec(String(l.msg)) : null;
      return m ? [Number(m[1])] : [];
    });
    assert.ok(Math.max(0, ...waits) >= 40, `the flooder never waited long to write: ${waits.join(", ")} ms`);
  });
});

test("8b: a plugin flooding frames portico has no use for: its output is left unread for moments, others answer at once", async () => {
  const nflood = hostile("nflood", { HOSTILE: "notify-flood", FLOOD_SECONDS: "4" });
  await hostileCase("notification flood", [nflood], 32 * MiB, async (d) => {
    assert.equal((await get(`${d.url}/nflood/flood`)).status, 200);
    await new Promise((r) => setTimeout(r, 4500));
    // Past 10,000 unused frames a second its output waited (50 ms at a time): the flood slowed
    // down in the plugin instead of costing the daemon a core.
    const waits = d.logs.flatMap((l) => {
      const m = l.plugin === "nflood" ? /^notify flood: waited (\d+) ms/.exec(String(l.msg)) : null;
      return m ? [Number(m[1])] : [];
    });
    assert.ok(Math.max(0, ...waits) >= 40, `the flooder never waited long to write: ${waits.join(", ")} ms`);
    // It is still served: nothing of it was refused or killed.
    assert.equal((await get(`${d.url}/nflood/after`)).status, 200);
    assert.equal((await pluginHealth(d, "nflood")).restarts, 0);
  });
});

test("9: requests for a plugin that never reads: 504s, then 503 once over max_queued_bytes, then it is restarted", async () => {
  const body = randomBytes(4 * MiB);
  // Expect: 100-continue, so a refusal comes before the body (node's client can't read an answer
  // once its body write failed on a closed connection).
  const post = (d: Daemon, to = "deaf") =>
    new Promise<number>((resolve, reject) => {
      const req = request(
        `${d.url}/${to}/upload`,
        { method: "POST", agent: false, headers: { "content-length": String(body.length), expect: "100-continue" } },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("continue", () => req.end(body));
      req.on("error", reject);
    });
  /** Two at a time: batches of timed-out uploads, not a bandwidth test. */
  const batch = async (d: Daemon, to?: string) => [
    ...(await Promise.all([post(d, to), post(d, to)])),
    ...(await Promise.all([post(d, to), post(d, to)])),
  ];
  const plugins = [hostile("deaf", { HOSTILE: "deaf" }, "timeout_seconds = 0.5"), hostile("hearing", { HOSTILE: "flood" })];
  const warm = async (d: Daemon) => assert.deepEqual(await batch(d, "hearing"), [200, 200, 200, 200]);
  await hostileCase(
    "deaf plugin",
    plugins,
    64 * MiB,
    async (d) => {
      const first = await batch(d);
      assert.ok(
        first.every((s) => s === 504 || s === 503),
        `first batch: ${first.join(", ")}`,
      );
      assert.ok(first.includes(504), `first batch: ${first.join(", ")}`);
      // What the plugin hasn't taken is over max_queued_bytes now: refused at once, not timed out.
      const started = Date.now();
      const second = await batch(d);
      assert.deepEqual(second, [503, 503, 503, 503]);
      assert.ok(Date.now() - started < 2000, `the 503s took ${Date.now() - started} ms`);
      // It took none of its input for input_stall_seconds: killed and restarted, which frees what waited.
      const restarted = await waitFor(
        async () => {
          const h = await pluginHealth(d, "deaf");
          return h.restarts > 0 && h.state === "ready" ? h : undefined;
        },
        10_000,
        "deaf to be restarted",
      );
      assert.match(String(restarted.lastExit), /stopped reading its input/);
    },
    warm,
  );
});

test("10: WebSocket messages a plugin sends with its 101 reach the client, in order (20 connections)", async () => {
  await hostileCase("eager WebSocket", [{ id: "eager", args: [EAGER] }], 32 * MiB, async (d) => {
    const firsts = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const ws = new WebSocket(`${d.url.replace("http:", "ws:")}/eager/ws`);
        const got: string[] = [];
        await within(
          new Promise<void>((resolve, reject) => {
            ws.on("message", (m: Buffer) => {
              got.push(m.toString());
              if (got.length === 2) resolve();
            });
            ws.on("error", reject);
          }),
          "two messages",
        );
        ws.close();
        return got.join(",");
      }),
    );
    assert.deepEqual(firsts, Array(20).fill("first,second"));
  });
});

const LAB = labSpec("lab", "timeout_seconds = 1\nidle_timeout_seconds = 1");

test("11: a client's close frame reaches the plugin at once, though the client keeps TCP open", async () => {
  await hostileCase("WebSocket close, TCP kept", [LAB], 16 * MiB, async (d) => {
    const socket = await rawWebSocket(d, "/lab/ws?tag=keeptcp");
    const started = Date.now();
    // A masked close frame: code 4001, reason "bye".
    const payload = Buffer.concat([Buffer.from([0x0f, 0xa1]), Buffer.from("bye")]);
    const mask = randomBytes(4);
    const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
    socket.write(Buffer.concat([Buffer.from([0x88, 0x80 | payload.length]), mask, masked]));
    const heard = await waitFor(
      async () => {
        const s = JSON.parse((await get(`${d.url}/lab/state?tag=keeptcp`)).body) as { wsClose: { code: number } | null };
        return s.wsClose ?? undefined;
      },
      10_000,
      "the plugin to hear the close",
    );
    assert.equal(heard.code, 4001);
    assert.ok(Date.now() - started < 3000, `the close took ${Date.now() - started} ms to reach the plugin`);
    // portico answered the close and closed TCP itself.
    await within(new Promise((r) => (socket.destroyed ? r(null) : socket.once("close", r))), "portico to close TCP", 5000);
  });
});

test("12: an upload that takes longer than timeout_seconds passes while it moves; a stalled one is 408", async () => {
  await hostileCase("slow upload", [LAB], 16 * MiB, async (d) => {
    // lab: timeout_seconds 1, idle 1 s. 300 KiB over ~2.5 s (120 KiB/s, above min_upload_rate).
    const status = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${d.url}/lab/upload?tag=slowup`, { method: "POST", agent: false }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => {
          body += c.toString();
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      let sent = 0;
      const tick = setInterval(() => {
        req.write(Buffer.alloc(12 * 1024, 7));
        if (++sent === 25) {
          clearInterval(tick);
          req.end();
        }
      }, 100);
    });
    assert.equal(status.status, 200);
    assert.equal((JSON.parse(status.body) as { bytes: number }).bytes, 25 * 12 * 1024);

    const stalled = await new Promise<number>((resolve, reject) => {
      const req = request(
        `${d.url}/lab/upload?tag=stall`,
        { method: "POST", agent: false, headers: { "content-length": "100000" } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on("error", reject);
      req.write(Buffer.alloc(1000));
    });
    assert.equal(stalled, 408);
  });
});

test("13: clients leaving just as the last bytes go out leave nothing in flight", async () => {
  await hostileCase("leave at the end", [LAB], 32 * MiB, async (d) => {
    const total = 64 * 1024;
    for (let i = 0; i < 60; i++) {
      await new Promise<void>((resolve) => {
        const socket = connect(d.port, "127.0.0.1");
        let seen = 0;
        // Leave somewhere in the last few hundred bytes, or right after the last one.
        const leaveAt = total - (i % 6) * 64;
        socket.on("data", (c: Buffer) => {
          seen += c.length;
          if (seen >= leaveAt) socket.destroy();
        });
        socket.on("close", () => resolve());
        socket.setTimeout(5000, () => socket.destroy());
        socket.write(`GET /lab/download?bytes=${total}&cl=${i % 2} HTTP/1.1\r\nHost: x\r\n\r\n`);
      });
    }
    await waitFor(
      async () => {
        const lab = await pluginHealth(d, "lab");
        const metrics = (await get(`${d.url}/metrics`)).body;
        const gauge = /^portico_requests_in_flight\{plugin="lab"\} (\d+)/m.exec(metrics)?.[1];
        return lab.inFlight === 0 && gauge === "0" ? true : undefined;
      },
      5000,
      "nothing in flight for lab",
    );
  });
});

/** A WebSocket handshake on a raw socket (so the test decides when TCP closes). */
function rawWebSocket(d: Daemon, path: string): Promise<Socket> {
  return within(
    new Promise<Socket>((resolve, reject) => {
      const socket = connect(d.port, "127.0.0.1");
      let head = "";
      const onData = (c: Buffer) => {
        head += c.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        socket.off("data", onData);
        if (!head.startsWith("HTTP/1.1 101")) return reject(new Error(head.split("\r\n")[0]));
        resolve(socket);
      };
      socket.on("data", onData);
      socket.on("error", reject);
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n\r\n`,
      );
    }),
    "a raw WebSocket handshake",
  );
}
