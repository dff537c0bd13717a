#!/usr/bin/env node
// The "direct" baseline of `npm run bench`: the hello-ts example plugin's logic
// (examples/plugins/hello-ts/plugin.ts) as a plain node:http server on its own loopback port, so
// the benchmark can compare going through portico with hitting the plugin logic without it.
//
//   node bench/direct-server.mjs [--port N] [--prefix /hello]
//
// Prints `listening <port>` on stdout once it accepts connections (port 0 = pick a free one).
// Routes, relative to the prefix (the plugin sees them the same way behind portico):
//   GET  /      → 200 "hello from TypeScript\n" (text/plain; charset=utf-8)
//   GET  /json  → 200 {"plugin":"hello_ts","query":{…}}
//   ANY  /echo  → 200 the request body, with the request's content-type
//   else        → 404 {"error":"not found","path":…}
import { createServer } from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    prefix: { type: "string", default: "/hello" },
  },
});
const prefix = values.prefix.replace(/\/+$/, "");

const HELLO = Buffer.from("hello from TypeScript\n");

function send(res, status, type, body) {
  res.writeHead(status, { "content-type": type, "content-length": body.length });
  res.end(body);
}

function sendJson(res, status, value) {
  send(res, status, "application/json", Buffer.from(JSON.stringify(value)));
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://localhost");
  const full = url.pathname;
  const path = (prefix && (full === prefix || full.startsWith(`${prefix}/`)) ? full.slice(prefix.length) : full) || "/";
  switch (path) {
    case "/":
      req.resume();
      return send(res, 200, "text/plain; charset=utf-8", HELLO);
    case "/json":
      req.resume();
      return sendJson(res, 200, { plugin: "hello_ts", query: Object.fromEntries(url.searchParams) });
    case "/echo": {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        send(res, 200, req.headers["content-type"] ?? "application/octet-stream", body);
      });
      req.on("error", () => res.destroy());
      return;
    }
    default:
      req.resume();
      return sendJson(res, 404, { error: "not found", path });
  }
});

server.listen(Number(values.port), values.host, () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
// The benchmark runner holds our stdin: when it goes away, so do we.
process.stdin.on("end", stop);
process.stdin.on("error", stop);
process.stdin.resume();
