/**
 * Serve a Node `(req, res) => void` listener (Express, Koa's callback, Fastify's routing handler)
 * as a fetch handler. Each request goes through a real node:http server over an in-memory
 * connection, so the listener gets a genuine IncomingMessage/ServerResponse, and the response
 * streams back as it is written (SSE from Express works).
 */
import { createServer, request as httpRequest, type IncomingMessage, type RequestListener } from "node:http";
import { Duplex, Readable } from "node:stream";
import type { FetchHandler } from "./index.js";

/** Two connected in-memory sockets with backpressure. */
function socketPair(): [Duplex, Duplex] {
  const make = (): Duplex & { peer?: Duplex; waiting?: () => void } => {
    const d: Duplex & { peer?: Duplex & { waiting?: () => void }; waiting?: () => void } = new Duplex({
      read() {
        const w = d.waiting;
        d.waiting = undefined;
        w?.();
      },
      write(chunk, _enc, cb) {
        const peer = d.peer as Duplex & { waiting?: () => void };
        if (peer.push(chunk)) cb();
        else peer.waiting = cb;
      },
      final(cb) {
        d.peer?.push(null);
        cb();
      },
      destroy(err, cb) {
        d.peer?.destroy();
        cb(err);
      },
    });
    // node:http asks sockets for these.
    Object.assign(d, { remoteAddress: "127.0.0.1", remotePort: 0, setTimeout: () => d, setNoDelay: () => d, setKeepAlive: () => d });
    return d;
  };
  const a = make();
  const b = make();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"]);

export function fromNodeHandler(listener: RequestListener): FetchHandler {
  const server = createServer(listener);
  return (request) =>
    new Promise<Response>((resolve, reject) => {
      const [client, serverSide] = socketPair();
      server.emit("connection", serverSide);
      const url = new URL(request.url);
      const headers: [string, string][] = [];
      for (const [k, v] of request.headers) if (!HOP_BY_HOP.has(k)) headers.push([k, v]);
      headers.push(["connection", "close"]);
      const hasBody = request.body !== null;
      const out = httpRequest(
        {
          createConnection: () => client as never,
          method: request.method,
          path: `${url.pathname}${url.search}`,
          headers:
            hasBody && !request.headers.has("content-length") ? [...headers, ["transfer-encoding", "chunked"]].flat() : headers.flat(),
        },
        (res: IncomingMessage) => {
          const status = res.statusCode ?? 500;
          const h = new Headers();
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const k = res.rawHeaders[i] as string;
            if (!HOP_BY_HOP.has(k.toLowerCase())) h.append(k, res.rawHeaders[i + 1] as string);
          }
          const bodyless = request.method === "HEAD" || status === 204 || status === 304;
          if (bodyless) res.resume();
          resolve(new Response(bodyless ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), { status, headers: h }));
        },
      );
      out.on("error", reject);
      request.signal.addEventListener("abort", () => out.destroy(new Error("aborted")), { once: true });
      if (hasBody) Readable.fromWeb(request.body as import("node:stream/web").ReadableStream).pipe(out);
      else out.end();
    });
}
