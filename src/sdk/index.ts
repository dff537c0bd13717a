/**
 * The plugin side, for TypeScript: serve one WHATWG fetch handler as a portico (or nexo) plugin.
 *
 *   import { serve } from "portico/sdk";
 *   serve({ fetch: (request) => new Response("hello") });
 *
 * Under portico the SDK takes protocol v2 (streamed bodies both ways, WebSockets, cancellation
 * through `request.signal`); under a host that offers nothing else (nexo) it speaks v1.
 * stdout belongs to the protocol: console.log/info/debug are redirected to stderr, which the host
 * copies into its log tagged with the plugin id.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import { Wire } from "../connection/wire.js";
import { decodeBase64Bytes, endLine, parseLine, takeSpliced } from "../protocol/v1.js";
import { DEFAULT_WINDOW, ProtocolError, type Session } from "../protocol/v2.js";
import { streamTransport } from "../transport/index.js";
import { internalError, type RequestHead } from "./http.js";
import { useLightResponses } from "./response.js";
import { answerV1, publishPieces, type V1Message } from "./v1.js";
import { handleStream } from "./v2.js";

export { fromNodeHandler } from "./node.js";
export { PluginWebSocket, type UpgradeOptions, upgradeWebSocket, type WebSocketCloseEvent } from "./websocket.js";

import { closeAllWebSockets } from "./websocket.js";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface ServeOptions {
  fetch: FetchHandler;
  /** The manifest to announce in `initialize`: a parsed object, or a path (default ./nexo-plugin.toml). */
  manifest?: Record<string, unknown> | string;
  /** Announced as `server_version`. */
  serverVersion?: string;
  /** Called when the handler throws; the client gets a 500 either way. */
  onError?: (error: unknown, request: Request) => void;
  /** Refuse protocol v2 even when offered (for testing v1 behaviour). */
  protocol?: 1 | 2;
  /**
   * Make the global `Response` the SDK's light one while serving (default true): a Response of a
   * string, bytes or nothing then skips undici's body stream. `false` keeps undici's own.
   */
  lightResponses?: boolean;
}

export interface PluginServer {
  /** Resolves when the plugin was asked to shut down and every exchange finished. */
  readonly finished: Promise<void>;
}

/** @internal What the protocol dispatchers need from the options. */
export interface Handlers {
  /** Runs the fetch handler; a throw becomes a 500. */
  call(request: Request): Promise<Response>;
  report(error: unknown, request: Request): void;
}

type Msg = { jsonrpc?: string; id?: number | string | null; method?: string; params?: unknown };

export function serve(options: ServeOptions): PluginServer {
  const manifest = loadManifest(options.manifest);
  if (options.lightResponses !== false) useLightResponses();
  const pluginId = String((manifest.plugin as Record<string, unknown> | undefined)?.id ?? "");
  guardStdout();
  const out = process.stdout;
  const stdin = process.stdin;

  const handlers: Handlers = {
    async call(request) {
      try {
        const response = await options.fetch(request);
        if (response instanceof Response) return response;
        throw new TypeError(`the fetch handler returned ${response === null ? "null" : typeof response}, not a Response`);
      } catch (err) {
        // A handler giving up because its client went away is not a failure worth a stack trace.
        const cancelled = (err as Error)?.name === "AbortError" && request.signal.aborted;
        if (!cancelled) handlers.report(err, request);
        return internalError();
      }
    },
    report(err, request) {
      if (options.onError) options.onError(err, request);
      else process.stderr.write(`portico-sdk: handler failed: ${(err as Error)?.stack ?? String(err)}\n`);
    },
  };

  let inFlight = 0;
  let idle: (() => void) | undefined;
  const track = async (work: Promise<void>) => {
    inFlight++;
    try {
      await work;
    } finally {
      if (--inFlight === 0) idle?.();
    }
  };
  const drained = () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => (idle = resolve)));

  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const exitAfter = () => {
    finish();
    out.write("", () => process.exit(0));
  };

  // The same wire as portico's side: JSON lines until the handshake takes v2, frames after.
  const wire: Wire = new Wire(streamTransport(stdin, out), {
    maxLineBytes: 64 * 1024 * 1024,
    onLine: (line) => onLine(line),
    onOverflow: () => process.stderr.write("portico-sdk: dropped an oversized line\n"),
    onEnd: () => process.exit(0), // the host went away: nothing left to serve
    onBroken: (err) => {
      const what = err instanceof ProtocolError ? "protocol error from host" : "failed handling the host's frames";
      process.stderr.write(`portico-sdk: ${what}: ${err.stack ?? err.message}\n`);
      process.exit(1);
    },
  });

  const onLine = (line: Buffer) => {
    let msg: Msg;
    try {
      // A request's long body_base64 is taken out as it is, not decoded and parsed with the line.
      msg = parseLine(line) as Msg;
    } catch {
      process.stderr.write("portico-sdk: ignored a line that is not JSON\n");
      return;
    }
    try {
      onMessage(msg);
    } finally {
      endLine();
    }
  };

  const onMessage = (msg: Msg) => {
    if (msg.method === "initialize" && msg.id != null) {
      const offer = (msg.params as { portico?: { protocols?: unknown; window?: unknown } } | undefined)?.portico;
      const v2 = options.protocol !== 1 && Array.isArray(offer?.protocols) && offer.protocols.includes(2);
      const result: Record<string, unknown> = { manifest, server_version: options.serverVersion ?? "portico-sdk" };
      if (v2) result.portico = { protocol: 2, window: DEFAULT_WINDOW };
      wire.sendLine({ jsonrpc: "2.0", id: msg.id, result });
      if (v2) {
        const window = typeof offer?.window === "number" && offer.window > 0 ? offer.window : DEFAULT_WINDOW;
        startV2(window);
      }
      return;
    }
    onV1Message(msg);
  };

  const onV1Message = (msg: Msg) => {
    if (msg.method === "shutdown" && msg.id != null) {
      const id = msg.id;
      void drained().then(() => {
        wire.sendLine({ jsonrpc: "2.0", id, result: { ok: true } });
        exitAfter();
      });
      return;
    }
    if (msg.method === "broker.event") {
      const message = (msg.params as { event?: { payload?: V1Message } } | undefined)?.event?.payload;
      if (message?.reply_to && message.payload) {
        const replyTo = message.reply_to;
        const req = message.payload;
        // A long body parseLine took out of the line: decoded from its bytes, leniently as before.
        const spliced = takeSpliced(req.body_base64);
        const body = spliced ? decodeBase64Bytes(spliced, false) : undefined;
        void track(answerV1(handlers, req, body).then((reply) => void wire.writeAll(publishPieces(pluginId, replyTo, reply)))).catch(
          (err) => process.stderr.write(`portico-sdk: exchange failed: ${(err as Error)?.stack ?? String(err)}\n`),
        );
      }
      return;
    }
    if (msg.id != null && msg.method) {
      wire.sendLine({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: `method not found: ${msg.method}` } });
    }
  };

  const startV2 = (sendWindow: number): Session => {
    const s: Session = wire.switchToFrames({
      sendWindow,
      recvWindow: DEFAULT_WINDOW,
      onStream(stream, head, end) {
        // A failure here is the SDK's, not the handler's: the exchange is cut, the plugin goes on.
        void track(handleStream(handlers, stream, head as RequestHead, end)).catch((err) => {
          process.stderr.write(`portico-sdk: exchange failed: ${(err as Error)?.stack ?? String(err)}\n`);
          stream.reset("error", "plugin failed");
        });
      },
      onRpc(value) {
        const msg = value as Msg;
        if (msg.method === "shutdown" && msg.id != null) {
          const id = msg.id;
          // WebSockets never end by themselves: close them (1001) before waiting for the rest.
          void closeAllWebSockets(2000)
            .then(drained)
            .then(() => {
              s.sendRpc({ jsonrpc: "2.0", id, result: { ok: true } });
              exitAfter();
            });
        } else if (msg.id != null && msg.method) {
          s.sendRpc({ jsonrpc: "2.0", id: msg.id, error: { code: -32601, message: `method not found: ${msg.method}` } });
        }
      },
    });
    return s;
  };

  return { finished };
}

function loadManifest(given: ServeOptions["manifest"]): Record<string, unknown> {
  if (given && typeof given === "object") return given;
  const file = given ?? join(process.cwd(), "nexo-plugin.toml");
  return parseToml(readFileSync(file, "utf8")) as Record<string, unknown>;
}

/** Anything printed with console.log would corrupt the protocol stream: send it to stderr. */
function guardStdout(): void {
  const toStderr = (...args: unknown[]) => console.error(...args);
  console.log = toStderr;
  console.info = toStderr;
  console.debug = toStderr;
}
