// An app with its own HTTP server, as portico fronts it ([capabilities.http_server] in
// nexo-plugin.toml, docs/own-server.md). Plain node:http; WebSockets with `ws` (portico's own
// dependency, found in the repository's node_modules).
//
// What portico gives it:
//   - PORT (set in the manifest's env) and APP_TOKEN (named by token_env): a fresh random token at
//     each start. Every request portico proxies carries `Authorization: Bearer <token>`; the
//     client's own Authorization header, if any, arrives as X-Forwarded-Authorization.
//   - Full paths, prefix included (/app/json), with the prefix in X-Forwarded-Prefix, and the
//     client in X-Forwarded-For, -Proto, -Host, plus X-Request-Id.
//
// Routes, under the prefix: /  /json  /events?n=5&interval_ms=1000 (SSE)  POST /upload (counts and
// hashes the body)  /download?bytes=N  /ws (WebSocket echo)  POST /sick (health fails from now on:
// watch portico restart the app)  /healthz (for portico).
//
// STARTUP_DELAY_MS delays listening, to show portico answering 503 until the app is healthy.
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer } from "node:http";
import { WebSocketServer } from "ws";

const port = Number(process.env.PORT ?? 8181);
const bind = process.env.BIND ?? "127.0.0.1";
const token = process.env.APP_TOKEN;
const startupDelay = Number(process.env.STARTUP_DELAY_MS ?? 0);
let sick = false;

/** Only portico, which knows this run's token, may talk to the app. */
function authorized(req) {
  if (!token) return true;
  const given = Buffer.from(req.headers.authorization ?? "");
  const wanted = Buffer.from(`Bearer ${token}`);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** The path without the prefix portico mounted the app at. */
function route(req) {
  const url = new URL(req.url, "http://app");
  const prefix = req.headers["x-forwarded-prefix"] ?? "";
  const path = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) || "/" : url.pathname;
  return { path, query: url.searchParams };
}

function json(res, status, value) {
  const body = Buffer.from(`${JSON.stringify(value)}\n`);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": body.length });
  res.end(body);
}

const server = createServer((req, res) => {
  if (!authorized(req)) return json(res, 401, { error: "missing or wrong bearer token" });
  const { path, query } = route(req);
  if (path === "/healthz") return sick ? json(res, 500, { ok: false }) : json(res, 200, { ok: true });
  if (path === "/") {
    res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" });
    return res.end(`hello from an app with its own HTTP server (pid ${process.pid})\n`);
  }
  if (path === "/json") {
    return json(res, 200, {
      app: "own_server_node",
      pid: process.pid,
      method: req.method,
      url: req.url,
      prefix: req.headers["x-forwarded-prefix"] ?? null,
      forwardedFor: req.headers["x-forwarded-for"] ?? null,
      requestId: req.headers["x-request-id"] ?? null,
      clientAuthorization: req.headers["x-forwarded-authorization"] ?? null,
    });
  }
  if (path === "/events") {
    const n = Math.min(Number(query.get("n") ?? 5), 1000);
    const interval = Math.min(Number(query.get("interval_ms") ?? 1000), 60_000);
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store" });
    let i = 0;
    const tick = () => {
      res.write(`id: ${i}\ndata: {"n":${i},"at":${Date.now()}}\n\n`);
      if (++i >= n) return res.end();
      timer = setTimeout(tick, interval);
    };
    let timer = setTimeout(tick, 0);
    req.on("close", () => clearTimeout(timer));
    return;
  }
  if (path === "/upload" && req.method === "POST") {
    // Counted and hashed as it streams in: never held whole.
    const hash = createHash("sha256");
    let bytes = 0;
    req.on("data", (chunk) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on("end", () => json(res, 200, { bytes, sha256: hash.digest("hex") }));
    return;
  }
  if (path === "/download") {
    const total = Math.max(0, Math.min(Number(query.get("bytes") ?? 1024), 2 ** 40));
    const chunk = Buffer.alloc(64 * 1024, "abcdefghijklmnopqrstuvwxyz0123456789\n");
    res.writeHead(200, { "Content-Type": "application/octet-stream", "Content-Length": total });
    let sent = 0;
    const pump = () => {
      while (sent < total) {
        const piece = chunk.subarray(0, Math.min(chunk.length, total - sent));
        sent += piece.length;
        if (!res.write(piece)) return void res.once("drain", pump);
      }
      res.end();
    };
    return pump();
  }
  if (path === "/sick" && req.method === "POST") {
    sick = true;
    console.log("health checks will fail from now on");
    return json(res, 200, { sick: true });
  }
  if (path === "/pid") return json(res, 200, { pid: process.pid });
  json(res, 404, { error: "no such route", path });
});

// WebSocket echo at /ws: text stays text, binary stays binary.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
server.on("upgrade", (req, socket, head) => {
  if (!authorized(req) || route(req).path !== "/ws") {
    socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
  });
});

setTimeout(() => {
  server.listen(port, bind, () => console.log(`listening on ${bind}:${port}`));
}, startupDelay);

// portico stops an app with SIGTERM (then SIGKILL after its grace period).
process.on("SIGTERM", () => {
  server.close();
  server.closeAllConnections();
  for (const ws of wss.clients) ws.close(1001, "app shutting down");
  setTimeout(() => process.exit(0), 200).unref();
});
