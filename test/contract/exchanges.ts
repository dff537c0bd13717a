/**
 * The exchange contract: the same exchanges, checked the same way, over every transport that can
 * carry them to a plugin (as Hono runs one router test file against every router). A transport's
 * test file calls `exchangeContract(name, setup)`, where `setup` starts portico's public side with
 * the given plugins behind it however that transport needs (in one process for stdio; gateway,
 * host and a broker as separate processes for NATS) and returns its URL.
 *
 * Plugins: `lab` (portico's SDK, protocol v2: test/fixtures/v2/lab), `labt` (the same, with 0.5 s
 * to the response head and 0.5 s idle time), `nexo` (the raw fixture, nexo's v1, 0.5 s timeout).
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { get as httpGet, request as httpRequest, type IncomingMessage } from "node:http";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { expected } from "../fixtures/v2/pattern.mjs";
import type { PluginSpec } from "../support/portico.js";
import { fetchRaw, labSpec, MiB, streamGet, within } from "../support/v2.js";

export interface PluginHealth {
  id: string;
  state: string;
  pid: number | null;
  restarts: number;
  protocol: number | null;
  inFlight: number;
}

export interface ContractEnv {
  /** portico's public side, e.g. http://127.0.0.1:PORT */
  url: string;
  close(): Promise<void>;
}

export type ContractSetup = (plugins: PluginSpec[]) => Promise<ContractEnv>;

export const CONTRACT_PLUGINS: PluginSpec[] = [
  labSpec("lab"),
  labSpec("labt", "timeout_seconds = 0.5\nidle_timeout_seconds = 0.5"),
  { id: "nexo", http: "timeout_seconds = 0.5" },
];

export function exchangeContract(transport: string, setup: ContractSetup): void {
  describe(`exchange contract over ${transport}`, () => {
    let env: ContractEnv;
    let url = "";
    before(async () => {
      env = await setup(CONTRACT_PLUGINS);
      url = env.url;
    });
    after(() => env?.close());

    const health = async (id: string): Promise<PluginHealth> => {
      const r = await fetchRaw(`${url}/health`);
      const plugins = (JSON.parse(r.body.toString()) as { plugins: PluginHealth[] }).plugins;
      const p = plugins.find((x) => x.id === id);
      assert.ok(p, `${id} in /health`);
      return p;
    };
    const ready = async (id: string, minRestarts = 0) => {
      const deadline = Date.now() + 15_000;
      for (;;) {
        const h = await health(id);
        if (h.state === "ready" && h.restarts >= minRestarts) return h;
        if (Date.now() > deadline) throw new Error(`${id} not ready again: ${JSON.stringify(h)}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const state = async (tag: string) => JSON.parse((await fetchRaw(`${url}/lab/state?tag=${tag}`)).body.toString());

    test("small GET: the plugin's status and body, a Content-Length, a request id", async () => {
      const r = await fetchRaw(`${url}/lab/pid`);
      assert.equal(r.status, 200);
      assert.equal(typeof JSON.parse(r.body.toString()).pid, "number");
      assert.equal(r.headers["content-length"], String(r.body.length));
      assert.match(String(r.headers["x-request-id"]), /^[0-9a-f-]{36}$/);
    });

    test("HEAD: the head without a body", async () => {
      const r = await fetchRaw(`${url}/lab/pid`, { method: "HEAD" });
      assert.equal(r.status, 200);
      assert.equal(r.body.length, 0);
    });

    test("no route: 404 with portico's JSON error", async () => {
      const r = await fetchRaw(`${url}/nowhere/x`);
      assert.equal(r.status, 404);
      assert.deepEqual(JSON.parse(r.body.toString()), { error: "not found" });
    });

    test("a 4 MiB download streams through whole and in order", async () => {
      const total = 4 * MiB + 123;
      const out = await streamGet(`${url}/lab/download?bytes=${total}&tag=dl`);
      assert.equal(out.status, 200);
      assert.ok(out.complete);
      const { crc32 } = await import("node:zlib");
      assert.deepEqual({ bytes: out.body.length, crc: crc32(out.body) }, expected(total));
    });

    test("a 6 MiB upload streams through whole (more than the credit window)", async () => {
      const body = randomBytes(6 * MiB);
      const r = await fetchRaw(`${url}/lab/upload?tag=up`, { method: "POST", body }, 30_000);
      assert.equal(r.status, 200);
      const { crc32 } = await import("node:zlib");
      assert.deepEqual(JSON.parse(r.body.toString()), { bytes: body.length, crc: crc32(body) });
    });

    test("full duplex: a 3 MiB echo comes back byte for byte", async () => {
      const body = randomBytes(3 * MiB);
      const r = await fetchRaw(`${url}/lab/echo?tag=dup`, { method: "POST", body }, 30_000);
      assert.equal(r.status, 200);
      assert.equal(r.body.subarray(0, 4).toString(), "dup:");
      assert.equal(sha(r.body.subarray(4)), sha(body));
    });

    test("SSE: events arrive one by one, as the plugin makes them", async () => {
      const arrivals: number[] = [];
      const started = Date.now();
      await within(
        new Promise<void>((resolve, reject) => {
          httpGet(`${url}/lab/sse?n=5&ms=120`, { agent: false }, (res) => {
            assert.equal(res.headers["content-type"], "text/event-stream");
            res.on("data", (c: Buffer) => {
              for (const _ of c.toString().matchAll(/\n\n/g)) arrivals.push(Date.now() - started);
            });
            res.on("end", resolve);
            res.on("error", reject);
          }).on("error", reject);
        }),
        "the SSE stream",
      );
      assert.equal(arrivals.length, 5);
      // The first event arrives long before the last one was made (4 × 120 ms later).
      assert.ok((arrivals[4] ?? 0) - (arrivals[0] ?? 0) >= 300, `arrivals ${arrivals.join(", ")}`);
    });

    test("many exchanges at once, each answered with its own body", async () => {
      const answers = await Promise.all(
        Array.from({ length: 40 }, (_, i) => fetchRaw(`${url}/lab/echo?tag=m${i}`, { method: "POST", body: `body-${i}` })),
      );
      answers.forEach((r, i) => {
        assert.equal(r.status, 200);
        assert.equal(r.body.toString(), `m${i}:body-${i}`);
      });
    });

    test("WebSocket: text and binary echo, and close codes both ways", async () => {
      const ws = await openWs(`${url}/lab/ws?tag=wsc`);
      ws.send("héllo");
      assert.equal((await nextMessage(ws)).toString(), "héllo");
      const bin = randomBytes(200_000);
      ws.send(bin);
      assert.equal(sha(await nextMessage(ws)), sha(bin));
      ws.send("close-me");
      const byPlugin = await closed(ws);
      assert.deepEqual(byPlugin, { code: 4002, reason: "plugin says bye" });

      const ws2 = await openWs(`${url}/lab/ws?tag=wsd`);
      ws2.close(4005, "client says bye");
      await closed(ws2);
      await until(async () => (await state("wsd")).wsClose !== null, "the plugin to hear the client's close");
      assert.deepEqual((await state("wsd")).wsClose, { code: 4005, reason: "client says bye", wasClean: true });
    });

    test("cancel: a client that goes away mid-response aborts the plugin's handler", async () => {
      await within(
        new Promise<void>((resolve, reject) => {
          const req = httpGet(`${url}/lab/hold?tag=gone`, { agent: false }, (res) => {
            res.once("data", () => {
              req.destroy();
              resolve();
            });
          });
          req.on("error", (e) => ((e as NodeJS.ErrnoException).code === "ECONNRESET" ? undefined : reject(e)));
        }),
        "the first tick",
      );
      await until(async () => (await state("gone")).aborted === "AbortError", "the plugin's abort signal");
    });

    test("reset by the plugin mid-body: the client's response is cut short", async () => {
      const out = await streamGet(`${url}/lab/reset`);
      assert.equal(out.status, 200);
      assert.equal(out.complete, false);
      assert.match(out.body.toString(), /^chunk 0\n/);
    });

    test("time to the response head: 504 after timeout_seconds, and the plugin is told", async () => {
      const r = await fetchRaw(`${url}/labt/never?tag=late`);
      assert.equal(r.status, 504);
      assert.deepEqual(JSON.parse(r.body.toString()), { error: "plugin gateway timeout" });
      // The plugin's signal says why (a RESET `timeout`); its state lives on the labt instance.
      await until(async () => JSON.parse((await fetchRaw(`${url}/labt/state?tag=late`)).body.toString()).aborted === "TimeoutError");
    });

    test("idle time: a response that stops moving is cut", async () => {
      const out = await streamGet(`${url}/labt/stall`);
      assert.equal(out.status, 200);
      assert.equal(out.complete, false);
      assert.equal(out.body.toString(), "first\n");
    });

    test("an early answer (413 before the body is read) reaches the client", async () => {
      const r = await fetchRaw(`${url}/lab/early`, { method: "POST", body: randomBytes(64 * 1024) });
      assert.equal(r.status, 413);
    });

    test("plugin death mid-body: the response is cut, the plugin comes back", async () => {
      const before = await health("lab");
      const out = await streamGet(`${url}/lab/die`);
      assert.equal(out.status, 200);
      assert.equal(out.complete, false);
      const after = await ready("lab", before.restarts + 1);
      assert.notEqual(after.pid, before.pid);
    });

    test("nexo's v1: a buffered exchange with a body both ways", async () => {
      const h = await health("nexo");
      assert.equal(h.protocol, 1);
      const r = await fetchRaw(`${url}/nexo/echo?x=1`, { method: "POST", body: "hello v1", headers: { "content-type": "text/plain" } });
      assert.equal(r.status, 200);
      const echo = JSON.parse(r.body.toString()) as { method: string; path: string; query: string; body_base64: string };
      assert.deepEqual(
        { method: echo.method, path: echo.path, query: echo.query, body: Buffer.from(echo.body_base64, "base64").toString() },
        { method: "POST", path: "/nexo/echo", query: "x=1", body: "hello v1" },
      );
      assert.equal(r.headers["content-length"], String(r.body.length));
    });

    test("nexo's v1: no reply in time is a 504; a malformed one a 502", async () => {
      assert.equal((await fetchRaw(`${url}/nexo/never`)).status, 504);
      const bad = await fetchRaw(`${url}/nexo/bad/status`);
      assert.equal(bad.status, 502);
      assert.deepEqual(JSON.parse(bad.body.toString()), { error: "plugin reply malformed" });
    });

    test("nexo's v1: a plugin dying with the request in flight is a 502, then it comes back", async () => {
      const before = await health("nexo");
      const r = await fetchRaw(`${url}/nexo/crash`);
      assert.equal(r.status, 502);
      assert.deepEqual(JSON.parse(r.body.toString()), { error: "plugin exited before replying" });
      await ready("nexo", before.restarts + 1);
      assert.equal((await fetchRaw(`${url}/nexo/echo`)).status, 200);
    });

    test("a WebSocket upgrade to a v1 plugin is answered as a plain request", async () => {
      const status = await upgradeStatus(`${url}/nexo/status/426`);
      assert.equal(status, 426);
    });
  });
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

async function until(check: () => Promise<boolean>, what = "condition", ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 30));
  }
}

function openWs(httpUrl: string): Promise<WebSocket> {
  const ws = new WebSocket(httpUrl.replace("http:", "ws:"));
  return within(
    new Promise<WebSocket>((resolve, reject) => {
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res: IncomingMessage) => reject(new Error(`unexpected response ${res.statusCode}`)));
    }),
    "a WebSocket to open",
  );
}

function nextMessage(ws: WebSocket): Promise<Buffer> {
  return within(new Promise((resolve) => ws.once("message", (data: Buffer) => resolve(data))), "a WebSocket message");
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(
    new Promise((resolve) => ws.once("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))),
    "the WebSocket to close",
  );
}

/** The status a WebSocket upgrade request is answered with (when it is not accepted). */
function upgradeStatus(httpUrl: string): Promise<number> {
  return within(
    new Promise<number>((resolve, reject) => {
      const req = httpRequest(httpUrl, {
        agent: false,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
        },
      });
      req.on("response", (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("upgrade", () => reject(new Error("upgraded")));
      req.on("error", reject);
      req.end();
    }),
    "the upgrade's answer",
  );
}
