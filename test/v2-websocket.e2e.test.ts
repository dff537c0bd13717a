/**
 * WebSockets tunneled through portico to an SDK plugin (protocol v2), with the `ws` package as the
 * client over real HTTP on 127.0.0.1: text and binary echo, close codes both ways, ping/pong,
 * subprotocol negotiation, refusal, and an upgrade to a v1 plugin (served as a plain request).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { request as httpRequest, type IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { after, before, test } from "node:test";
import WebSocket from "ws";
import { defined } from "./support/assert.js";
import { type Running, startPortico, until } from "./support/portico.js";
import { fetchRaw, getJson, labSpec, within } from "./support/v2.js";

let p: Running;
before(async () => {
  // The raw fixture speaks v1 (nexo's protocol): no tunnel for it.
  p = await startPortico([labSpec("lab"), { id: "v1" }]);
});
after(() => p?.close());

const wsUrl = (path: string) => `${p.url.replace("http:", "ws:")}${path}`;

/** Opens a client socket; resolves once open (or rejects with what the handshake got instead). */
function open(path: string, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(wsUrl(path), protocols);
  return within(
    new Promise<WebSocket>((resolve, reject) => {
      ws.once("open", () => resolve(ws));
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res: IncomingMessage) => reject(new Error(`unexpected response ${res.statusCode}`)));
    }),
    `WebSocket ${path} to open`,
  );
}

/** The next message on `ws`. */
function next(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return within(
    new Promise((resolve) => ws.once("message", (data: Buffer, isBinary: boolean) => resolve({ data, isBinary }))),
    "a WebSocket message",
  );
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return within(
    new Promise((resolve) => ws.once("close", (code: number, reason: Buffer) => resolve({ code, reason: reason.toString() }))),
    "close",
  );
}

/** The lab plugin's entry in /health's plugin list. */
const labIn = <T extends { id: string }>(plugins: T[]): T =>
  defined(
    plugins.find((x) => x.id === "lab"),
    "the lab plugin in /health",
  );
const stderrLines = () => p.logs.filter((l) => l.stream === "stderr").map((l) => String(l.msg));
const inFlight = async () => labIn((await getJson<{ plugins: { id: string; inFlight: number }[] }>(`${p.url}/health`)).plugins).inFlight;

test("echo: text and binary (every byte value, and a message bigger than the window)", async () => {
  const ws = await open("/lab/ws?tag=echo");
  ws.send("héllo, wörld ✓");
  const text = await next(ws);
  assert.equal(text.isBinary, false);
  assert.equal(text.data.toString("utf8"), "héllo, wörld ✓");

  const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  ws.send(all);
  const bin = await next(ws);
  assert.equal(bin.isBinary, true);
  assert.deepEqual(bin.data, all);

  // 3 MiB: more than the 1 MiB credit window each way, so it needs WINDOW frames to get through.
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4096) big.fill(i / 4096, i, i + 4096);
  ws.send(big);
  const back = await next(ws);
  assert.equal(back.isBinary, true);
  assert.ok(back.data.equals(big), "3 MiB binary echo differs");

  // Many small messages keep their order.
  const msgs = Array.from({ length: 50 }, (_, i) => `m${i}`);
  const got: string[] = [];
  const all50 = within(
    new Promise<void>((resolve) =>
      ws.on("message", (d: Buffer) => {
        got.push(d.toString());
        if (got.length === msgs.length) resolve();
      }),
    ),
    "50 echoes",
  );
  for (const m of msgs) ws.send(m);
  await all50;
  assert.deepEqual(got, msgs);
  ws.removeAllListeners("message");

  const c = closed(ws);
  ws.close(1000, "done");
  assert.equal((await c).code, 1000);
});

test("close code from the client (4001) reaches the plugin", async () => {
  const tag = `c4001-${Date.now()}`;
  const ws = await open(`/lab/ws?tag=${tag}`);
  ws.send("x");
  await next(ws);
  const c = closed(ws);
  ws.close(4001, "client says bye");
  const seen = await c;
  assert.equal(seen.code, 4001);
  await until(() => stderrLines().includes(`lab: ws ${tag} closed 4001 client says bye`), 5000, "the plugin's close event");
  const s = await getJson<{ wsClose: { code: number; reason: string; wasClean: boolean } }>(`${p.url}/lab/state?tag=${tag}`);
  assert.deepEqual(s.wsClose, { code: 4001, reason: "client says bye", wasClean: true });
  await until(async () => (await inFlight()) === 0, 5000, "the tunnel's stream to be over");
});

test("close code from the plugin (4002) reaches the client, and the plugin sees its close complete", async () => {
  const tag = `c4002-${Date.now()}`;
  const ws = await open(`/lab/ws?tag=${tag}`);
  const c = closed(ws);
  ws.send("close-me");
  const seen = await c;
  assert.equal(seen.code, 4002);
  assert.equal(seen.reason, "plugin says bye");
  // The closing handshake completes on the plugin's side too: its close event fires, and the
  // stream does not linger in either process.
  await until(() => stderrLines().includes(`lab: ws ${tag} closed 4002 plugin says bye`), 5000, "the plugin's close event");
  await until(async () => (await inFlight()) === 0, 5000, "the tunnel's stream to be over");
});

test("ping from the plugin: the client's pong comes back to it", async () => {
  const ws = await open("/lab/ws?tag=ping");
  const pinged = within(new Promise<Buffer>((resolve) => ws.once("ping", (d: Buffer) => resolve(d))), "a ping");
  ws.send("ping-me");
  assert.equal((await pinged).toString(), "lab-ping");
  // ws answers pings itself; portico relays the pong to the plugin, which reports it.
  assert.equal((await next(ws)).data.toString(), "pong:lab-ping");
  const c = closed(ws);
  ws.close();
  await c;
});

test("subprotocol: the plugin's choice is what the client gets", async () => {
  const ws = await open("/lab/ws?tag=proto", ["lab.v1", "lab.v2"]);
  assert.equal(ws.protocol, "lab.v2");
  ws.send("protocol?");
  assert.equal((await next(ws)).data.toString(), "protocol=lab.v2");
  const c = closed(ws);
  ws.close();
  await c;

  // Offered nothing the plugin takes: 101 without Sec-WebSocket-Protocol (the `ws` client would
  // give up on such an answer by itself, so this handshake is done by hand).
  const head = await within(
    new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${p.url}/lab/ws?tag=proto2`, {
        agent: false,
        headers: {
          Connection: "Upgrade",
          Upgrade: "websocket",
          "Sec-WebSocket-Version": "13",
          "Sec-WebSocket-Key": randomBytes(16).toString("base64"),
          "Sec-WebSocket-Protocol": "other",
        },
      });
      req.on("upgrade", (res: IncomingMessage, socket: Socket) => {
        socket.destroy();
        resolve(res);
      });
      req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on("error", reject);
      req.end();
    }),
    "the hand-made handshake",
  );
  assert.equal(head.statusCode, 101);
  assert.equal(head.headers["sec-websocket-protocol"], undefined);
});

/** The ordinary HTTP answer to an upgrade that was not accepted. */
function refusedUpgrade(ws: WebSocket, what: string): Promise<{ status: number; body: string }> {
  return within(
    new Promise((resolve, reject) => {
      ws.once("open", () => reject(new Error(`${what}: the upgrade was accepted`)));
      ws.once("unexpected-response", (_req, res: IncomingMessage) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once("error", () => {});
    }),
    what,
  );
}

test("refusal: the plugin answers 403, the client gets 403 and its body", async () => {
  const ws = new WebSocket(wsUrl("/lab/ws-refuse"));
  const res = await refusedUpgrade(ws, "the refusal");
  assert.equal(res.status, 403);
  assert.equal(res.body, "no sockets for you\n");
  ws.terminate();
});

test("WebSocket to a v1 plugin: served as a plain request, portico stays healthy", async () => {
  const ws = new WebSocket(wsUrl("/v1/echo"));
  const res = await refusedUpgrade(ws, "the v1 plugin's answer");
  // The raw fixture's /echo answers 200 with the request it saw: an ordinary GET, Upgrade stripped.
  assert.equal(res.status, 200);
  const seen = JSON.parse(res.body) as { method: string; headers: [string, string][] };
  assert.equal(seen.method, "GET");
  assert.ok(!seen.headers.some(([k]) => k.toLowerCase() === "upgrade"), "hop-by-hop Upgrade must not reach the plugin");
  ws.terminate();
  const health = await fetchRaw(`${p.url}/health`);
  assert.equal(health.status, 200);
  assert.equal(JSON.parse(health.body.toString()).status, "ok");
  assert.equal((await fetchRaw(`${p.url}/v1/echo`)).status, 200);
});

test("client vanishes without a close: the plugin's socket closes (1006)", async () => {
  const tag = `vanish-${Date.now()}`;
  const ws = await open(`/lab/ws?tag=${tag}`);
  ws.send("x");
  await next(ws);
  ws.terminate();
  await until(() => stderrLines().some((l) => l.startsWith(`lab: ws ${tag} closed 1006`)), 5000, "the plugin's abnormal close");
  const s = await getJson<{ wsClose: { code: number; wasClean: boolean } }>(`${p.url}/lab/state?tag=${tag}`);
  assert.deepEqual(s.wsClose, { code: 1006, reason: "", wasClean: false });
  await until(async () => (await inFlight()) === 0, 5000, "the tunnel's stream to be over");
});

test("a client message over the 16 MiB frame limit is refused (1009); the plugin is not hurt", async () => {
  const before = labIn((await getJson<{ plugins: { id: string; pid: number; restarts: number }[] }>(`${p.url}/health`)).plugins);
  const ws = await open("/lab/ws?tag=huge");
  const c = closed(ws);
  ws.on("error", () => {});
  ws.send(Buffer.alloc(17 * 1024 * 1024));
  assert.equal((await c).code, 1009);
  const after = labIn((await getJson<{ plugins: { id: string; pid: number; restarts: number }[] }>(`${p.url}/health`)).plugins);
  assert.equal(after.pid, before.pid);
  assert.equal(after.restarts, before.restarts);
  const ok = await open("/lab/ws?tag=after-huge");
  ok.send("still here");
  assert.equal((await next(ok)).data.toString(), "still here");
  ok.terminate();
});

// Last: it restarts the plugin.
test("the plugin dies with a tunnel open: the client sees an abnormal close, portico restarts it", async () => {
  const health = async () =>
    labIn((await getJson<{ plugins: { id: string; state: string; pid: number; restarts: number }[] }>(`${p.url}/health`)).plugins);
  const before = await health();
  const ws = await open("/lab/ws?tag=die");
  ws.on("error", () => {});
  const c = closed(ws);
  ws.send("die");
  assert.equal((await c).code, 1006);
  await until(
    async () => {
      const h = await health();
      return h.state === "ready" && h.restarts > before.restarts;
    },
    10_000,
    "lab to be restarted",
  );
  const again = await open("/lab/ws?tag=reborn");
  again.send("hi");
  assert.equal((await next(again)).data.toString(), "hi");
  again.terminate();
});
