/** portico as a library: its handler and upgrade listener mounted in a Node server of the app's own. */
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { pino } from "pino";
import WebSocket from "ws";
import { createPortico, type Portico } from "../src/index.js";
import { pluginsDir } from "./support/portico.js";
import { LAB } from "./support/v2.js";

let portico: Portico;
let server: Server;
let url: string;
let cleanup: () => void;

before(async () => {
  const dir = pluginsDir([{ id: "alpha" }, { id: "lab", command: process.execPath, args: [LAB] }]);
  cleanup = dir.cleanup;
  portico = createPortico({ pluginsDir: dir.dir, logger: pino({ level: "silent" }) });
  await portico.start();
  // The app's own server: its routes first, portico for the rest.
  server = createServer((req, res) => {
    if (req.url === "/app") {
      res.end("the app itself");
      return;
    }
    portico.handler(req, res);
  });
  server.on("upgrade", portico.upgrade);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  server?.closeAllConnections();
  server?.close();
  await portico?.close();
  cleanup?.();
});

test("the app's routes and portico's share one server", async () => {
  assert.equal(await (await fetch(`${url}/app`)).text(), "the app itself");
  const echoed = (await (await fetch(`${url}/alpha/echo?x=1`)).json()) as { path: string; query: string };
  assert.deepEqual([echoed.path, echoed.query], ["/alpha/echo", "x=1"]);
  assert.equal((await fetch(`${url}/health`)).status, 200);
  assert.equal((await fetch(`${url}/nowhere`)).status, 404);
});

test("WebSockets reach a v2 plugin through the app's server", async () => {
  const ws = new WebSocket(`${url.replace("http", "ws")}/lab/ws`);
  await once(ws, "open");
  ws.send("hi");
  const [data] = (await once(ws, "message")) as [Buffer];
  assert.equal(data.toString(), "hi");
  ws.close(1000);
  await once(ws, "close");
});
