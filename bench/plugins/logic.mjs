// The plugin logic every benchmark target serves, in one place: the portico plugins
// (bench/plugins/plugin.mjs, protocol v2 and v1) use `fetchHandler`, the plain node:http server
// (bench/direct-server.mjs: hit directly, and as nginx's upstream) uses `nodeHandler` and
// `attachWebSockets`. Both bindings answer the same routes with the same bytes, each in its
// platform's idiomatic streaming style, so the benchmark compares the paths, not the logic.
//
// Routes, relative to the mount prefix (portico says it in X-Forwarded-Prefix; the direct server
// is told with --prefix):
//   GET  /small                    → 200 SMALL_BODY (text/plain), 21 bytes
//   GET  /bytes?n=N                → 200 N bytes (application/octet-stream, Content-Length: N),
//                                    produced in 64 KiB chunks as the reader takes them
//   POST /echo                     → 200 the request body, streamed back as it arrives (with the
//                                    request's Content-Length when it had one)
//   POST /count                    → 200 "<bytes received>\n": reads the body and discards it
//   GET  /events?n=N&interval=MS   → 200 text/event-stream: N events `data: <i>\n\n`, the first at
//                                    once, then one every MS ms (on a fixed schedule, no drift)
//   GET  /ws (WebSocket upgrade)   → echoes every message back, text as text, binary as binary
//   else                           → 404 "not found\n"

export const SMALL_BODY = "hello from the bench\n";
const SMALL = Buffer.from(SMALL_BODY);
const CHUNK = Buffer.alloc(64 * 1024, 0x78); // "xxxx…": never written to, so every response may share it
const NOT_FOUND = Buffer.from("not found\n");
const MAX_BYTES = 2 ** 40;
const MAX_EVENTS = 100_000;

const TEXT = "text/plain; charset=utf-8";
const BINARY = "application/octet-stream";

/** The route a path (with the prefix already removed) and query select, with its parameters. */
export function route(_method, path, params) {
  switch (path) {
    case "/":
    case "/small":
      return { kind: "small" };
    case "/bytes": {
      const n = Number(params.get("n") ?? 1024);
      return Number.isSafeInteger(n) && n >= 0 && n <= MAX_BYTES ? { kind: "bytes", n } : { kind: "bad" };
    }
    case "/echo":
      return { kind: "echo" };
    case "/count":
      return { kind: "count" };
    case "/events": {
      const n = Number(params.get("n") ?? 10);
      const interval = Number(params.get("interval") ?? 10);
      return Number.isInteger(n) && n >= 0 && n <= MAX_EVENTS && interval >= 0 && interval <= 60_000
        ? { kind: "events", n, interval }
        : { kind: "bad" };
    }
    case "/ws":
      return { kind: "ws" };
    default:
      return { kind: "notFound" };
  }
}

const event = (i) => Buffer.from(`data: ${i}\n\n`);

/** Calls tick(i) for i = 0…n-1 at start + i·interval ms; returns a function that stops it. */
function schedule(n, interval, tick, done) {
  const start = performance.now();
  let i = 0;
  let timer;
  const next = () => {
    timer = undefined;
    if (i >= n) return done();
    tick(i++);
    if (i >= n) return done();
    timer = setTimeout(next, Math.max(0, start + i * interval - performance.now()));
  };
  next();
  return () => timer && clearTimeout(timer);
}

const stripPrefix = (pathname, prefix) =>
  (prefix && (pathname === prefix || pathname.startsWith(`${prefix}/`)) ? pathname.slice(prefix.length) : pathname) || "/";

// ───────────────────────────── WHATWG fetch binding (portico's SDK) ─────────────────────────────

/**
 * The logic as one fetch handler. `upgradeWebSocket` is the SDK's (passed in, so this module
 * does not depend on portico).
 */
export function makeFetchHandler({ upgradeWebSocket, prefix = "" } = {}) {
  return async function fetchHandler(request) {
    const url = new URL(request.url);
    // portico names the mount prefix; a host that doesn't (nexo's design) leaves the one we were given.
    const r = route(request.method, stripPrefix(url.pathname, request.headers.get("x-forwarded-prefix") ?? prefix), url.searchParams);
    switch (r.kind) {
      case "small":
        return new Response(SMALL, { headers: { "content-type": TEXT } });
      case "bytes": {
        let left = r.n;
        const body = new ReadableStream(
          {
            pull(controller) {
              const n = Math.min(left, CHUNK.length);
              left -= n;
              controller.enqueue(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
              if (left === 0) controller.close();
            },
          },
          { highWaterMark: 0 },
        );
        return new Response(r.n === 0 ? null : body, { headers: { "content-type": BINARY, "content-length": String(r.n) } });
      }
      case "echo": {
        const headers = { "content-type": request.headers.get("content-type") ?? BINARY };
        const length = request.headers.get("content-length");
        if (length !== null) headers["content-length"] = length;
        return new Response(request.body, { headers });
      }
      case "count": {
        let n = 0;
        if (request.body) for await (const chunk of request.body) n += chunk.byteLength;
        return new Response(`${n}\n`, { headers: { "content-type": TEXT } });
      }
      case "events": {
        let stop;
        const body = new ReadableStream({
          start(controller) {
            stop = schedule(
              r.n,
              r.interval,
              (i) => controller.enqueue(event(i)),
              () => controller.close(),
            );
            request.signal.addEventListener("abort", () => stop(), { once: true });
          },
          cancel: () => stop?.(),
        });
        return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache" } });
      }
      case "ws": {
        if (request.headers.get("upgrade")?.toLowerCase() !== "websocket" || !upgradeWebSocket) {
          return new Response("connect with a WebSocket client\n", { status: 426, headers: { "content-type": TEXT } });
        }
        const { socket, response } = upgradeWebSocket(request);
        socket.onmessage = (e) => socket.send(e.data);
        return response;
      }
      case "bad":
        return new Response("bad parameters\n", { status: 400, headers: { "content-type": TEXT } });
      default:
        return new Response(NOT_FOUND, { status: 404, headers: { "content-type": TEXT } });
    }
  };
}

// ───────────────────────────── node:http binding (direct server, nginx's upstream) ─────────────────────────────

function send(res, status, type, body) {
  res.writeHead(status, { "content-type": type, "content-length": body.length });
  res.end(body);
}

/** The logic as a node:http request listener. */
export function makeNodeHandler({ prefix = "" } = {}) {
  return function nodeHandler(req, res) {
    const q = req.url.indexOf("?");
    const pathname = q === -1 ? req.url : req.url.slice(0, q);
    const r = route(req.method, stripPrefix(pathname, prefix), new URLSearchParams(q === -1 ? "" : req.url.slice(q + 1)));
    switch (r.kind) {
      case "small":
        req.resume();
        return send(res, 200, TEXT, SMALL);
      case "bytes": {
        req.resume();
        res.writeHead(200, { "content-type": BINARY, "content-length": r.n });
        let left = r.n;
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, CHUNK.length);
            left -= n;
            if (!res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void res.once("drain", pump);
          }
          res.end();
        };
        res.on("close", () => (left = 0));
        return pump();
      }
      case "echo": {
        const headers = { "content-type": req.headers["content-type"] ?? BINARY };
        if (req.headers["content-length"] !== undefined) headers["content-length"] = req.headers["content-length"];
        res.writeHead(200, headers);
        req.on("error", () => res.destroy());
        return void req.pipe(res);
      }
      case "count": {
        let n = 0;
        req.on("data", (c) => (n += c.length));
        req.on("end", () => send(res, 200, TEXT, Buffer.from(`${n}\n`)));
        req.on("error", () => res.destroy());
        return;
      }
      case "events": {
        req.resume();
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        res.flushHeaders();
        const stop = schedule(
          r.n,
          r.interval,
          (i) => res.write(event(i)),
          () => res.end(),
        );
        res.on("close", stop);
        return;
      }
      case "ws":
        req.resume();
        return send(res, 426, TEXT, Buffer.from("connect with a WebSocket client\n"));
      case "bad":
        req.resume();
        return send(res, 400, TEXT, Buffer.from("bad parameters\n"));
      default:
        req.resume();
        return send(res, 404, TEXT, NOT_FOUND);
    }
  };
}

/** WebSocket echo on `${prefix}/ws` for a node:http server, with the `ws` package. */
export async function attachWebSockets(server, { prefix = "" } = {}) {
  const { WebSocketServer } = await import("ws");
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on("upgrade", (req, socket, head) => {
    const q = req.url.indexOf("?");
    const path = stripPrefix(q === -1 ? req.url : req.url.slice(0, q), prefix);
    if (path !== "/ws") return socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on("error", () => ws.terminate());
    });
  });
  return wss;
}
