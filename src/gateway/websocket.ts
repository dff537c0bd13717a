/**
 * WebSocket tunnel: once the plugin accepted an upgrade with 101, portico completes the client's
 * handshake (with `ws`) and relays messages both ways, with credit like body bytes.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { WebSocket, WebSocketServer } from "ws";
import { GatewayError } from "../errors.js";
import type { Exchange, HeaderList } from "../exchange/index.js";
import { MAX_PAYLOAD, WsOpcode } from "../protocol/v2.js";

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

const KEY = /^[+/0-9A-Za-z]{21}[AQgw]==$/;

/**
 * A WebSocket handshake portico would not complete (RFC 6455 §4.2.1), refused before the plugin
 * hears of it: GET only, one Sec-WebSocket-Key of 16 bytes, version 13 (426 naming it otherwise).
 */
export function refuseBadHandshake(req: IncomingMessage): void {
  if (req.method !== "GET") throw new GatewayError("bad_request", `WebSocket handshake with ${req.method}`);
  let keys = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if ((req.rawHeaders[i] as string).toLowerCase() === "sec-websocket-key") keys++;
  const key = req.headers["sec-websocket-key"];
  if (keys !== 1 || typeof key !== "string" || !KEY.test(key)) throw new GatewayError("bad_request", "bad Sec-WebSocket-Key");
  if (req.headers["sec-websocket-version"] !== "13")
    throw new GatewayError("websocket_version", `version ${req.headers["sec-websocket-version"]}`);
}

/** Close codes a peer may send on the wire (RFC 6455 §7.4). */
const sendable = (code: number) =>
  code === 1000 || (code >= 1001 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);

/**
 * Takes over after the plugin's 101: completes the client's handshake and relays until either side
 * closes. Messages the plugin sends before the handshake is complete wait for it, in order.
 */
export function tunnel(req: IncomingMessage, socket: Duplex, head: Buffer, headers: HeaderList, exchange: Exchange): void {
  const chosen = headers.find(([k]) => k.toLowerCase() === "sec-websocket-protocol")?.[1];
  if (chosen) chosenProtocol.set(req, chosen);
  const early: [number, Buffer][] = [];
  let client: WebSocket | undefined;
  exchange.events = {
    head() {},
    data: (chunk) => exchange.consumed(chunk.length),
    ws: (opcode, payload) => (client ? toClient(client, exchange, opcode, payload) : early.push([opcode, payload])),
    // The plugin died or gave up: an abnormal end for the client.
    error: () => (client ? client.terminate() : socket.destroy()),
  };
  socket.on("close", () => {
    if (!client && !exchange.closed) exchange.reset("cancel", "client went away");
  });
  void webSocketServer().then((server) => {
    if (exchange.closed || socket.destroyed) return void socket.destroy();
    server.handleUpgrade(req, socket, head, (ws) => {
      client = ws;
      const entry = { client: ws, exchange };
      open.add(entry);
      ws.once("close", () => open.delete(entry));
      fromClient(ws, socket, exchange);
      for (const [opcode, payload] of early.splice(0)) toClient(ws, exchange, opcode, payload);
    });
  });
}

/** Tunnels with a WebSocket open to a client right now. */
const open = new Set<{ client: WebSocket; exchange: Exchange }>();

/**
 * Closes every open WebSocket from the gateway's side (a gateway on NATS shutting down: the
 * plugins behind it keep running, so they won't): the client and the plugin each get a close
 * frame with `code`.
 */
export function closeTunnels(code: number, reason: string): void {
  for (const { client, exchange } of open) {
    client.close(code, reason);
    if (!exchange.closed) void exchange.sendWs(WsOpcode.CLOSE, closePayload(code, Buffer.from(reason))).then(() => exchange.finish());
  }
}

/** The client's messages and close to the plugin. */
function fromClient(client: WebSocket, socket: Duplex, exchange: Exchange): void {
  client.on("message", (data: Buffer, isBinary: boolean) => {
    // Backpressure: stop reading the client while the plugin has no credit for us.
    client.pause();
    void exchange.sendWs(isBinary ? WsOpcode.BINARY : WsOpcode.TEXT, data).then(() => client.resume());
  });
  client.on("pong", (data: Buffer) => void exchange.sendWs(WsOpcode.PONG, data));
  // The closing handshake is complete once our close frame is out after theirs (whoever began):
  // close TCP then (RFC 6455 §7.1.1: the server first) rather than wait for a client that keeps its
  // side open, so the plugin hears the close at once.
  socket.once("finish", () => socket.destroy());
  client.on("close", (code: number, reason: Buffer) => {
    if (exchange.closed) return;
    // 1006: the connection ended without a close frame (client vanished, or never answered ours).
    if (code === 1006) return exchange.reset("cancel", "client went away without a close");
    // Whoever closed first, the plugin hears the client's close frame: when the client started, the
    // plugin echoes it (not awaited); when the plugin started, this is the answer its close event waits for.
    const payload = code === 1005 ? Buffer.alloc(0) : closePayload(code, reason);
    void exchange.sendWs(WsOpcode.CLOSE, payload).then(() => exchange.finish());
  });
  client.on("error", () => exchange.reset("cancel", "client connection failed"));
}

/** One message from the plugin to the client; credit goes back once it is written. */
function toClient(client: WebSocket, exchange: Exchange, opcode: number, payload: Buffer): void {
  const ack = () => exchange.consumed(payload.length);
  switch (opcode) {
    case WsOpcode.TEXT:
      client.send(payload.toString("utf8"), ack);
      return;
    case WsOpcode.BINARY:
      client.send(payload, { binary: true }, ack);
      return;
    case WsOpcode.PING:
      ack();
      client.ping(payload);
      return;
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
}

function closePayload(code: number, reason: Buffer): Buffer {
  const out = Buffer.allocUnsafe(2 + reason.length);
  out.writeUInt16BE(code, 0);
  reason.copy(out, 2);
  return out;
}
