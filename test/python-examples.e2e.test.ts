/**
 * The Python examples as shipped: examples/python (FastAPI, Flask, Django, run by Debian's
 * /usr/bin/python3 as their manifests say) and examples/plugins/hello-asgi (a plain ASGI app that
 * `npm start` serves), each through a real portico, finding the SDK through their manifests'
 * relative PYTHONPATH.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import WebSocket from "ws";
import { createPortico, type Portico } from "../src/index.js";
import { FAST_SUPERVISOR } from "./support/portico.js";
import { linesWithArrival, pythonWith } from "./support/python.js";
import { fetchRaw, getJson, within } from "./support/v2.js";

const EXAMPLES = fileURLToPath(new URL("../examples/", import.meta.url));
const running: Portico[] = [];
after(async () => {
  for (const p of running) await p.close();
});

async function serveFolder(dir: string): Promise<string> {
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const portico = createPortico({
    pluginsDir: dir,
    logger: pino({ level: "warn" }, sink),
    supervisor: { ...FAST_SUPERVISOR, initTimeoutMs: 15_000 },
  });
  running.push(portico);
  await portico.start();
  const { address } = await portico.listen({ host: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${address.port}`;
}

test("examples/python: FastAPI, Flask and Django answer under their prefixes, streams stream", async () => {
  assert.equal(pythonWith(["fastapi", "flask", "django"]), "/usr/bin/python3", "the examples' manifests run /usr/bin/python3");
  const url = await serveFolder(`${EXAMPLES}python`);
  assert.match(String((await getJson(`${url}/fastapi/`)).item_7), /\/fastapi\/items\/7$/);
  assert.deepEqual(await getJson(`${url}/fastapi/items/7?q=x`), { id: 7, q: "x" });
  const sse = await linesWithArrival(`${url}/fastapi/events?n=2`);
  assert.deepEqual(
    sse.lines.map((l) => l.text),
    ["data: 0", "data: 1"],
  );
  assert.deepEqual(await getJson(`${url}/flask/`), { hello: "flask", item_7: "/flask/items/7" });
  const count = await fetchRaw(`${url}/flask/count`, { method: "POST", body: Buffer.alloc(300_000) });
  assert.deepEqual(JSON.parse(count.body.toString()), { bytes: 300_000 });
  assert.deepEqual(await getJson(`${url}/django/`), { hello: "django", item_7: "/django/items/7" });
});

test("examples/plugins/hello-asgi: a plain ASGI app, JSON, SSE and a WebSocket echo", async () => {
  const url = await serveFolder(`${EXAMPLES}plugins`);
  assert.deepEqual(await getJson(`${url}/asgi/`), { plugin: "hello_asgi", method: "GET", path: "/", root_path: "/asgi" });
  const sse = await linesWithArrival(`${url}/asgi/events?n=2`);
  assert.deepEqual(
    sse.lines.map((l) => l.text),
    ["data: 0", "data: 1"],
  );
  const echoed = await within(
    new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace("http", "ws")}/asgi/ws`);
      ws.on("open", () => ws.send("ping?"));
      ws.on("message", (d: Buffer) => {
        resolve(d.toString());
        ws.close();
      });
      ws.on("error", reject);
    }),
    "the echo",
  );
  assert.equal(echoed, "ping?");
});
