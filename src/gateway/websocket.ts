/**
 * WebSocket tunnel: portico completes the client's handshake (with `ws`) once the plugin accepted
 * the stream with 101, then relays messages both ways as WS frames, with credit like DATA.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocket, WebSocketServer } from "ws";
import { GatewayError } from "../errors.js";
import { MAX_PAYLOAD, type Stream, WsOpcode } from "../protocol/v2.js";
import type { Route } from "../router/index.js";
import { responseHead } from "./headers.js";
import { validateHeadV2 } from "./proxy-v2.js";
import { endWithResponse } from "./raw.js";

/** The subprotocol the plugin chose, carried from its 101 to ws's handshake. */
const chosenProtocol = new WeakMap<IncomingMessage, string>();
/**
 * Loaded on the first upgrade: `ws` pulls in https and tls, several MiB of memory a daemon that
 * never tunnels a WebSocket has no use for.
 */
let wss: Promise<WebSocketServer> | undefined;
const webSocketServer = (): Promise<WebSocketServer> =>
  (wss ??= import("ws").then(
    ({ WebSocketServer }) =>
      new WebSocketServer({
        noServer: true,
        perMessageDeflate: false,
        // One client message travels as one WS frame, and a frame over MAX_PAYLOAD is a protocol
        // error that ends the plugin (and every stream on it): ws refuses bigger ones with 1009.
        maxPayload: MAX_PAYLOAD,
        handleProtocols: (_offered, req) => chosenProtocol.get(req) ?? false,
      }),
  ));

/** Close codes a peer may send on the wire (RFC 6455 §7.4). */
const sendable = (code: number) =>
  code === 1000 || (code >= 1001 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);

export interface TunnelOptions {
  route: Route;
  requestId: string;
}

/**
 * Resolves with the status of the handshake's answer (101 when the tunnel opened; it then lives on
 * by itself). Rejects with a GatewayError when nothing was written to the client yet.
 */
export function tunnelWebSocket(req: IncomingMessage, socket: Duplex, head: Buffer, stream: Stream, opts: TunnelOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const firstByte = setTimeout(() => {
      stream.reset("timeout", "no response head in time");
      settle(new GatewayError("plugin_timeout", `no response head within ${opts.route.timeoutMs} ms`));
    }, opts.route.timeoutMs);
    const settle = (r: number | GatewayError) => {
      if (settled) return;
      settled = true;
      clearTimeout(firstByte);
      if (typeof r === "number") resolve(r);
      else reject(r);
    };
    socket.on("close", () => {
      if (!settled) {
        stream.reset("cancel", "client went away");
        settle(499);
      }
    });

    stream.handlers = {
      onHead(value, end) {
        clearTimeout(firstByte);
        let h: ReturnType<typeof validateHeadV2>;
        try {
          h = validateHeadV2(value, true);
        } catch (err) {
          stream.reset("error", (err as Error).message);
          return settle(err as GatewayError);
        }
        if (h.status !== 101) return refuse(socket, stream, h.status, h.headers, end, opts.requestId, settle);
        const chosen = h.headers.find(([k]) => k.toLowerCase() === "sec-websocket-protocol")?.[1];
        if (chosen) chosenProtocol.set(req, chosen);
        void webSocketServer().then((server) =>
          server.handleUpgrade(req, socket, head, (client) => {
            settle(101);
            relay(client, stream);
          }),
        );
      },
      onReset(code, message) {
        settle(new GatewayError(code === "gone" ? "plugin_crashed" : "plugin_reset", message ?? code));
      },
    };
  });
}

/** The plugin answered the upgrade with an ordinary response: send it and close the connection. */
function refuse(
  socket: Duplex,
  stream: Stream,
  status: number,
  headers: [string, string][],
  end: boolean,
  requestId: string,
  settle: (r: number) => void,
): void {
  const parts: Buffer[] = [];
  let size = 0;
  const write = () => {
    const h = responseHead(headers);
    const pairs: [string, string][] = [];
    for (let i = 0; i < h.flat.length; i += 2) pairs.push([h.flat[i] as string, h.flat[i + 1] as string]);
    if (!h.hasRequestId) pairs.push(["X-Request-Id", requestId]);
    endWithResponse(socket, status, pairs, Buffer.concat(parts, size));
    settle(status);
  };
  if (end) return write();
  stream.handlers.onData = (chunk, last) => {
    // A refusal's body is small by nature; past 1 MiB the rest is dropped.
    if (size < 1024 * 1024) {
      parts.push(chunk);
      size += chunk.length;
    }
    stream.consumed(chunk.length);
    if (last) write();
  };
}

function relay(client: WebSocket, stream: Stream): void {
  client.on("message", (data: Buffer, isBinary: boolean) => {
    // Backpressure: stop reading the client while the plugin has no credit for us.
    client.pause();
    void stream.sendWs(isBinary ? WsOpcode.BINARY : WsOpcode.TEXT, data).then(() => client.resume());
  });
  client.on("pong", (data: Buffer) => void stream.sendWs(WsOpcode.PONG, data));
  client.on("close", (code: number, reason: Buffer) => {
    if (stream.closed) return;
    // 1006: the connection ended without a close frame (client vanished, or never answered ours).
    if (code === 1006) return stream.reset("cancel", "client went away without a close");
    // Whoever closed first, the plugin hears the client's close frame: when the client started, the
    // plugin echoes it (not awaited); when the plugin started, this is the answer its close event waits for.
    const payload = code === 1005 ? Buffer.alloc(0) : closePayload(code, reason);
    void stream.sendWs(WsOpcode.CLOSE, payload).then(() => stream.finish());
  });
  client.on("error", () => stream.reset("cancel", "client connection failed"));
  stream.handlers = {
    onWs(opcode, payload) {
      const ack = () => stream.consumed(payload.length);
      switch (opcode) {
        case WsOpcode.TEXT:
          return client.send(payload.toString("utf8"), ack);
        case WsOpcode.BINARY:
          return client.send(payload, { binary: true }, ack);
        case WsOpcode.PING:
          ack();
          return client.ping(payload);
        case WsOpcode.CLOSE: {
          ack();
          const code = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
          const reason = payload.length > 2 ? payload.subarray(2) : undefined;
          if (code !== undefined && sendable(code)) client.close(code, reason);
          else client.close();
          return;
        }
        default:
          ack();
      }
    },
    onReset() {
      // The plugin died or gave up: an abnormal end for the client.
      client.terminate();
    },
  };
}

function closePayload(code: number, reason: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + reason.length);
  out.writeUInt16BE(code, 0);
  reason.copy(out, 2);
  return out;
}
