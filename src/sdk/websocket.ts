/**
 * WebSockets for fetch-handler plugins, in the style of Deno's and Bun's `upgradeWebSocket`:
 *
 *   if (request.headers.get("upgrade") === "websocket") {
 *     const { socket, response } = upgradeWebSocket(request);
 *     socket.onmessage = (e) => socket.send(e.data);
 *     return response;
 *   }
 *
 * portico owns the client's TCP connection and the WebSocket handshake; the plugin sees messages.
 */
import { MAX_PAYLOAD, type Stream, WsOpcode } from "../protocol/v2.js";

/** Sockets open right now, so that shutdown can close them. */
const open = new Set<PluginWebSocket>();

/** On shutdown: every open socket is closed with 1001 (going away); resolves when all are closed or after `ms`. */
export function closeAllWebSockets(ms: number): Promise<void> {
  if (open.size === 0) return Promise.resolve();
  const closed = [...open].map(
    (s) =>
      new Promise<void>((resolve) => {
        s.addEventListener("close", () => resolve(), { once: true });
        s._goingAway();
      }),
  );
  return Promise.race([Promise.all(closed).then(() => {}), new Promise<void>((resolve) => setTimeout(resolve, ms).unref())]);
}

/** Request → its stream, set by the v2 dispatcher for requests that asked to upgrade. */
export const upgradable = new WeakMap<Request, Stream>();
/** Responses returned by upgradeWebSocket: the dispatcher answers 101 for them. */
export const upgrades = new WeakMap<Response, PluginWebSocket>();

export type WebSocketData = string | ArrayBuffer | ArrayBufferView;

export class PluginWebSocket extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;

  readyState = 0;
  /** The subprotocol accepted, if any (set through upgradeWebSocket's options). */
  readonly protocol: string;
  onopen: ((e: Event) => void) | null = null;
  onmessage: ((e: MessageEvent) => void) | null = null;
  onclose: ((e: WebSocketCloseEvent) => void) | null = null;
  onerror: ((e: Event) => void) | null = null;
  readonly #stream: Stream;
  /** The last send; the stream keeps their order while they wait for credit. */
  #sending: Promise<void> = Promise.resolve();
  #closeSent = false;

  constructor(stream: Stream, protocol: string) {
    super();
    this.#stream = stream;
    this.protocol = protocol;
  }

  send(data: WebSocketData): void {
    if (this.readyState !== PluginWebSocket.OPEN) throw new Error("WebSocket is not open");
    const text = typeof data === "string";
    const bytes = text
      ? Buffer.from(data)
      : ArrayBuffer.isView(data)
        ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
        : Buffer.from(data);
    // A message is one WS frame, and portico ends a plugin that sends a frame over 16 MiB.
    if (bytes.length > MAX_PAYLOAD) throw new RangeError(`WebSocket message of ${bytes.length} bytes exceeds ${MAX_PAYLOAD}`);
    this.#queue(text ? WsOpcode.TEXT : WsOpcode.BINARY, bytes);
  }

  /** Asks the client to close; the close event fires when the client has answered. */
  close(code?: number, reason = ""): void {
    if (this.readyState >= PluginWebSocket.CLOSING) return;
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new RangeError(`close code must be 1000 or in 3000..4999, got ${code}`);
    }
    this.readyState = PluginWebSocket.CLOSING;
    this.#sendClose(code, reason);
  }

  /** Pings the client; a `pong` event follows when it answers. */
  ping(data: WebSocketData = ""): void {
    const bytes =
      typeof data === "string"
        ? Buffer.from(data)
        : ArrayBuffer.isView(data)
          ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
          : Buffer.from(data);
    this.#queue(WsOpcode.PING, bytes);
  }

  /** @internal The plugin is shutting down. */
  _goingAway(): void {
    if (this.readyState >= PluginWebSocket.CLOSING) return;
    this.readyState = PluginWebSocket.CLOSING;
    this.#sendClose(1001, "going away");
  }

  /** @internal The dispatcher accepted the upgrade. */
  _open(): void {
    this.readyState = PluginWebSocket.OPEN;
    open.add(this);
    this.#stream.handlers = {
      onWs: (opcode, payload) => this.#onWs(opcode, payload),
      onReset: () => this.#closed(1006, "", false),
    };
    this.#fire("open", new Event("open"));
  }

  #onWs(opcode: number, payload: Buffer): void {
    this.#stream.consumed(payload.length);
    switch (opcode) {
      case WsOpcode.TEXT:
        this.#fire("message", new MessageEvent("message", { data: payload.toString("utf8") }));
        return;
      case WsOpcode.BINARY: {
        const data = payload.buffer.slice(payload.byteOffset, payload.byteOffset + payload.length);
        this.#fire("message", new MessageEvent("message", { data }));
        return;
      }
      case WsOpcode.PONG:
        this.#fire("pong", new MessageEvent("pong", { data: payload.toString("utf8") }));
        return;
      case WsOpcode.CLOSE: {
        const code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
        const reason = payload.length > 2 ? payload.subarray(2).toString("utf8") : "";
        // The client started closing: echo it, as the WebSocket closing handshake does.
        if (!this.#closeSent) this.#sendClose(payload.length >= 2 ? code : undefined, reason);
        void this.#sending.then(() => {
          this.#stream.finish();
          this.#closed(code, reason, true);
        });
        return;
      }
    }
  }

  #sendClose(code: number | undefined, reason: string): void {
    this.#closeSent = true;
    let payload = Buffer.alloc(0);
    if (code !== undefined) {
      const r = Buffer.from(reason);
      payload = Buffer.allocUnsafe(2 + r.length);
      payload.writeUInt16BE(code, 0);
      r.copy(payload, 2);
    }
    this.#queue(WsOpcode.CLOSE, payload);
  }

  // The stream keeps sends in call order; the last one is kept to know when a close has gone out.
  #queue(opcode: number, bytes: Buffer): void {
    this.#sending = this.#stream.sendWs(opcode, bytes);
  }

  #closed(code: number, reason: string, wasClean: boolean): void {
    if (this.readyState === PluginWebSocket.CLOSED) return;
    this.readyState = PluginWebSocket.CLOSED;
    open.delete(this);
    const e = new Event("close") as WebSocketCloseEvent;
    Object.assign(e, { code, reason, wasClean });
    this.#fire("close", e);
  }

  #fire(type: string, e: Event): void {
    const handler = (this as unknown as Record<string, unknown>)[`on${type}`];
    if (typeof handler === "function") handler.call(this, e);
    this.dispatchEvent(e);
  }
}

export interface WebSocketCloseEvent extends Event {
  readonly code: number;
  readonly reason: string;
  readonly wasClean: boolean;
}

export interface UpgradeOptions {
  /** The subprotocol to accept (one of those the client offered in Sec-WebSocket-Protocol). */
  protocol?: string;
}

/**
 * Accepts a WebSocket upgrade. Return `response` from the fetch handler; `socket` opens right after.
 * Throws if the request is not an upgrade request served over protocol v2.
 */
export function upgradeWebSocket(request: Request, options: UpgradeOptions = {}): { socket: PluginWebSocket; response: Response } {
  const stream = upgradable.get(request);
  if (!stream) throw new TypeError("not a WebSocket upgrade request (or the host speaks protocol v1)");
  upgradable.delete(request);
  const socket = new PluginWebSocket(stream, options.protocol ?? "");
  const response = new Response(null, { status: 200 });
  upgrades.set(response, socket);
  return { socket, response };
}
