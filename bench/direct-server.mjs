#!/usr/bin/env node
// The benchmark's plugin logic (bench/plugins/logic.mjs) as a plain node:http server on its own
// loopback port: `npm run bench` hits one instance directly ("direct") and puts nginx in front of
// another ("nginx"), to compare with the same logic served as a portico plugin.
//
//   node bench/direct-server.mjs [--port N] [--host 127.0.0.1] [--prefix /app]
//
// Prints `listening <port>` on stdout once it accepts connections (port 0 = pick a free one).
// Routes (relative to the prefix) are listed in bench/plugins/logic.mjs; /ws is a WebSocket echo.
import { createServer } from "node:http";
import { parseArgs } from "node:util";
import { attachWebSockets, makeNodeHandler } from "./plugins/logic.mjs";

const { values } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    host: { type: "string", default: "127.0.0.1" },
    prefix: { type: "string", default: "/app" },
  },
});
const prefix = values.prefix.replace(/\/+$/, "");

// keepAliveTimeout as portico's and nginx's upstream keepalive expect: connections stay up between runs.
const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, makeNodeHandler({ prefix }));
await attachWebSockets(server, { prefix });

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
