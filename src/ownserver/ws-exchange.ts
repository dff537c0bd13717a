/**
 * A WebSocket upgrade to an own-server app: portico opens its own WebSocket to the app (with `ws`,
 * carrying the client's headers and offered subprotocols) and, once the app accepted it, the
 * gateway's tunnel relays messages between the two sockets with the same credit as body bytes.
 * An app that answers the upgrade with anything but 101 has that answer passed to the client.
 */
import type { IncomingMessage } from "node:http";
import { WebSocket } from "ws";
import { GatewayError } from "../errors.js";
import { type Exchange, type ExchangeEvents, type HeaderList, IGNORE_EVENTS, type RequestHead, type ResetCode } from "../exchange/index.js";
import { validateResponseHead } from "../protocol/http.js";
import { MAX_PAYLOAD, WsOpcode } from "../protocol/v2.js";
import { RESPONSE_WINDOW } from "./http-exchange.js";
import { appFailure, headerPairs } from "./request.js";

/** Headers ws makes itself for its own handshake with the app. */
const HANDSHAKE = new Set(["sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"]);
/** Bytes queued toward the app past which a client message waits for the socket before the next is read. */
const SEND_HIGH_WATER = 1024 * 1024;

export class WsExchange implements Exchange {
  events: ExchangeEvents = IGNORE_EVENTS;
  readonly #ws: WebSocket;
  readonly #onClose: () => void;
  #closed = false;
  /** 101 headers the app sent, given to the gateway once the socket is open. */
  #accepted: HeaderList = [];
  #unacked = 0;
  /** What is paused while the client has not taken enough: the app's socket, or a refusal's body. */
  #source: { pause(): void; resume(): void } | undefined;
  #paused = false;

  /** `url`: ws://bind:port/path?query. Throws a GatewayError for a handshake ws can't make. */
  constructor(url: string, head: RequestHead, headers: HeaderList, onClose: () => void) {
    this.#onClose = onClose;
    // A null prototype: a header named like an Object method stays a plain entry.
    const own: Record<string, string[]> = Object.create(null);
    let offered: string[] = [];
    for (const [name, value] of headers) {
      const lower = name.toLowerCase();
      if (lower === "sec-websocket-protocol") offered = offered.concat(value.split(",").map((p) => p.trim()));
      if (HANDSHAKE.has(lower)) continue;
      const list = own[name] ?? [];
      list.push(value);
      own[name] = list;
    }
    try {
      this.#ws = new WebSocket(url, offered.filter(Boolean), {
        headers: own,
        perMessageDeflate: false,
        maxPayload: MAX_PAYLOAD,
        followRedirects: false,
      });
    } catch (err) {
      throw new GatewayError("bad_request", `WebSocket to ${head.path}: ${(err as Error).message}`);
    }
    this.#source = this.#ws;
    this.#listen(this.#ws);
  }

  get blocked(): boolean {
    return false;
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(): Promise<void> {
    return Promise.resolve(); // an upgrade request has no body
  }

  end(): void {}

  sendWs(opcode: number, payload: Buffer): Promise<void> {
    const ws = this.#ws;
    if (this.#closed || ws.readyState !== WebSocket.OPEN) return Promise.resolve();
    switch (opcode) {
      case WsOpcode.TEXT:
      case WsOpcode.BINARY:
        if (ws.bufferedAmount < SEND_HIGH_WATER) {
          ws.send(payload, { binary: opcode === WsOpcode.BINARY });
          return Promise.resolve();
        }
        // Backpressure: the client is read again once this one has left for the app.
        return new Promise((resolve) => ws.send(payload, { binary: opcode === WsOpcode.BINARY }, () => resolve()));
      case WsOpcode.PING:
        ws.ping(payload);
        return Promise.resolve();
      case WsOpcode.CLOSE: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : undefined;
        try {
          ws.close(code, payload.length > 2 ? payload.subarray(2) : undefined);
        } catch {
          ws.close(); // a code one may not send on the wire (1005, 1006, …): a close without one
        }
        return Promise.resolve();
      }
      default:
        // A pong answers portico's ping, not the app's: each side keeps its own connection alive.
        return Promise.resolve();
    }
  }

  consumed(n: number): void {
    this.#unacked -= n;
    if (this.#paused && this.#unacked <= RESPONSE_WINDOW / 2) {
      this.#paused = false;
      this.#source?.resume();
    }
  }

  reset(_code: ResetCode): void {
    if (this.#end()) this.#ws.terminate();
  }

  /** Both sides know it is over (a close handshake under way): the app's socket closes on its own. */
  finish(): void {
    this.#end();
  }

  fail(err: GatewayError): void {
    if (!this.#end()) return;
    this.#ws.terminate();
    this.events.error(err);
  }

  #listen(ws: WebSocket): void {
    ws.on("upgrade", (res: IncomingMessage) => {
      this.#accepted = headerPairs(res.rawHeaders);
    });
    ws.on("open", () => {
      if (!this.#closed) this.events.head({ status: 101, headers: this.#accepted }, false);
    });
    ws.on("unexpected-response", (_req, res: IncomingMessage) => this.#refused(res));
    ws.on("message", (data: Buffer, isBinary: boolean) => {
      if (this.#closed) return;
      this.#take(data.length);
      this.events.ws(isBinary ? WsOpcode.BINARY : WsOpcode.TEXT, data);
    });
    ws.on("close", (code: number, reason: Buffer) => {
      if (this.#closed) return;
      // 1006: the connection ended without a close frame: an abnormal end for the client too.
      if (code === 1006) return this.fail(new GatewayError("app_disconnected", "the app's WebSocket ended without a close frame"));
      const payload = code === 1005 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([code >> 8, code & 0xff]), reason]);
      this.events.ws(WsOpcode.CLOSE, payload);
      this.#end();
    });
    ws.on("error", (err) => this.fail(appFailure(err)));
  }

  /** The app answered the upgrade with a plain response: it goes to the client as any other. */
  #refused(res: IncomingMessage): void {
    if (this.#closed) return void res.destroy();
    let head: ReturnType<typeof validateResponseHead>;
    try {
      head = validateResponseHead({ status: res.statusCode, headers: headerPairs(res.rawHeaders) }, false);
    } catch (err) {
      res.destroy();
      this.fail(err as GatewayError);
      return;
    }
    this.#source = res;
    this.events.head(head, false);
    res.on("data", (chunk: Buffer) => {
      if (this.#closed) return;
      this.#take(chunk.length);
      this.events.data(chunk, false);
    });
    res.on("end", () => {
      if (!this.#end()) return;
      this.events.data(Buffer.alloc(0), true);
    });
    res.on("error", (err) => this.fail(appFailure(err)));
  }

  /** Counts bytes handed to the gateway; past the window, the source waits for the client. */
  #take(n: number): void {
    this.#unacked += n;
    if (!this.#paused && this.#unacked > RESPONSE_WINDOW) {
      this.#paused = true;
      this.#source?.pause();
    }
  }

  /** True the first time: the exchange is over now. */
  #end(): boolean {
    if (this.#closed) return false;
    this.#closed = true;
    this.#onClose();
    return true;
  }
}
