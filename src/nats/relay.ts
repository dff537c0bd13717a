/**
 * The host's half of an exchange across NATS: one stream a gateway opened on a link, joined to one
 * exchange with a local plugin. Bytes move only as the other side takes them (credit is returned
 * when the local write, or the link write, is done), so a host holds at most a window per stream.
 */
import { GatewayError } from "../errors.js";
import type { Exchange, RequestHead, ResetCode, Upstream } from "../exchange/index.js";
import { type HeaderList, validateHeaders } from "../protocol/http.js";
import { type Stream, WsOpcode } from "../protocol/v2.js";

export interface RelayContext {
  plugin(id: string): Upstream | undefined;
  maxInFlight: number;
}

/** The request head a gateway sends: the plugin's, plus which plugin. */
function parseHead(value: unknown): { plugin: string; head: RequestHead } {
  const v = value as Record<string, unknown> | null;
  if (typeof v?.plugin !== "string" || typeof v.method !== "string" || typeof v.path !== "string" || typeof v.query !== "string") {
    throw new GatewayError("bad_request", "malformed request head on the link");
  }
  const headers: HeaderList = validateHeaders(v.headers);
  const head: RequestHead = { method: v.method, path: v.path, query: v.query, headers };
  if (v.upgrade === "websocket") head.upgrade = "websocket";
  return { plugin: v.plugin, head };
}

/** Tells the gateway why the exchange could not go on, with the status its error maps to. */
function refuse(stream: Stream, err: unknown): void {
  const e = err instanceof GatewayError ? err : new GatewayError("bad_reply", (err as Error)?.message);
  stream.reset("error", e.message, { error: e.code, ...(e.retryAfter ? { retryAfter: e.retryAfter } : {}) });
}

const RESET_CODES = new Set<string>(["cancel", "timeout", "error"]);

export function relay(stream: Stream, value: unknown, end: boolean, ctx: RelayContext): void {
  let local: Exchange;
  try {
    const { plugin: id, head } = parseHead(value);
    const plugin = ctx.plugin(id);
    if (!plugin) throw new GatewayError("plugin_unavailable", `plugin ${id} is not on this host`, { retryAfter: 1 });
    if (plugin.inFlight >= ctx.maxInFlight) {
      throw new GatewayError("overloaded", `${ctx.maxInFlight} requests in flight`, { retryAfter: 1 });
    }
    local = plugin.open(head, end);
  } catch (err) {
    refuse(stream, err);
    return;
  }
  /** A close frame went each way: the WebSocket is over on both sides without a RESET. */
  let closes = 0;
  const closed = () => {
    if (++closes < 2) return;
    stream.finish();
    local.finish();
  };

  local.events = {
    head: (head, end) => stream.sendHead(head, end),
    data: (chunk, end) => void stream.sendData(chunk, end).then(() => local.consumed(chunk.length)),
    ws: (opcode, payload) => {
      void stream.sendWs(opcode, payload).then(() => {
        local.consumed(payload.length);
        if (opcode === WsOpcode.CLOSE) closed();
      });
    },
    error: (err) => refuse(stream, err),
  };
  stream.handlers = {
    onData: (chunk, last) => {
      if (chunk.length > 0) void local.write(chunk).then(() => stream.consumed(chunk.length));
      if (last) local.end();
    },
    onWs: (opcode, payload) => {
      void local.sendWs(opcode, payload).then(() => {
        stream.consumed(payload.length);
        if (opcode === WsOpcode.CLOSE) closed();
      });
    },
    // The gateway gave up (client gone, timeout), or the link ended under it.
    onReset: (code, message) => {
      if (!local.closed) local.reset((RESET_CODES.has(code) ? code : "cancel") as ResetCode, message ?? "the gateway went away");
    },
  };
}
