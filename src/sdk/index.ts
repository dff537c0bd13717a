/**
 * The plugin side, for TypeScript: serve one WHATWG fetch handler as a portico (or nexo) plugin.
 *
 *   import { serve } from "portico/sdk";
 *   serve({ fetch: (req) => new Response("hello") });
 *
 * stdout belongs to the protocol: console.log/info/debug are redirected to stderr, which portico
 * copies into its log tagged with the plugin id.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";

export type FetchHandler = (request: Request) => Response | Promise<Response>;

export interface ServeOptions {
  fetch: FetchHandler;
  /** The manifest to announce in `initialize`: a parsed object, or a path (default ./nexo-plugin.toml). */
  manifest?: Record<string, unknown> | string;
  /** Announced as `server_version`. */
  serverVersion?: string;
  /** Called when the handler throws; the client gets a 500 either way. */
  onError?: (error: unknown, request: Request) => void;
}

type Frame = { jsonrpc: "2.0"; id?: number | string | null; method?: string; params?: unknown; result?: unknown; error?: unknown };
type HeaderList = [string, string][];

export interface PluginServer {
  /** Resolves when the plugin was asked to shut down and every handler finished. */
  readonly finished: Promise<void>;
}

export function serve(options: ServeOptions): PluginServer {
  const manifest = loadManifest(options.manifest);
  const pluginId = String((manifest.plugin as Record<string, unknown> | undefined)?.id ?? "");
  const out = process.stdout;
  const write = (frame: Frame) => out.write(`${JSON.stringify(frame)}\n`);
  guardStdout();

  let inFlight = 0;
  let drained: (() => void) | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => {
    finish = resolve;
  });

  const onFrame = async (frame: Frame) => {
    if (frame.method === "initialize" && frame.id != null) {
      write({ jsonrpc: "2.0", id: frame.id, result: { manifest, server_version: options.serverVersion ?? "portico-sdk" } });
      return;
    }
    if (frame.method === "shutdown" && frame.id != null) {
      if (inFlight > 0) await new Promise<void>((resolve) => (drained = resolve));
      write({ jsonrpc: "2.0", id: frame.id, result: { ok: true } });
      finish();
      out.write("", () => process.exit(0));
      return;
    }
    if (frame.method === "broker.event") {
      const event = (frame.params as { event?: { payload?: Message } } | undefined)?.event;
      const message = event?.payload;
      if (message?.reply_to && message.payload) {
        inFlight++;
        try {
          const reply = await answer(options, message.payload);
          write(publish(pluginId, message.reply_to, reply));
        } finally {
          if (--inFlight === 0 && drained) drained();
        }
      }
      return;
    }
    if (frame.id != null && frame.method) {
      write({ jsonrpc: "2.0", id: frame.id, error: { code: -32601, message: `method not found: ${frame.method}` } });
    }
  };

  let buffered = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (chunk: string) => {
    buffered += chunk;
    let nl = buffered.indexOf("\n");
    while (nl !== -1) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf("\n");
      if (!line) continue;
      let frame: Frame;
      try {
        frame = JSON.parse(line) as Frame;
      } catch {
        process.stderr.write(`portico-sdk: ignored a line that is not JSON\n`);
        continue;
      }
      void onFrame(frame);
    }
  });
  // The host went away: nothing left to serve.
  process.stdin.on("end", () => process.exit(0));
  return { finished };
}

interface Message {
  id?: string;
  topic?: string;
  reply_to?: string;
  payload?: { method: string; path: string; query?: string; headers?: HeaderList; body_base64?: string };
}

async function answer(options: ServeOptions, req: NonNullable<Message["payload"]>): Promise<{ status: number; headers: HeaderList; body_base64: string }> {
  let request: Request | undefined;
  try {
    request = toRequest(req);
    const response = await options.fetch(request);
    return await fromResponse(response);
  } catch (err) {
    if (options.onError && request) options.onError(err, request);
    else process.stderr.write(`portico-sdk: handler failed: ${(err as Error)?.stack ?? String(err)}\n`);
    return { status: 500, headers: [["Content-Type", "text/plain; charset=utf-8"]], body_base64: Buffer.from("internal error").toString("base64") };
  }
}

function toRequest(req: NonNullable<Message["payload"]>): Request {
  const headers = new Headers();
  let host = "localhost";
  for (const [k, v] of req.headers ?? []) {
    if (k.toLowerCase() === "host") host = v;
    try {
      headers.append(k, v);
    } catch {
      // A header the WHATWG Headers class refuses cannot be shown to the handler.
    }
  }
  const url = `http://${host}${req.path}${req.query ? `?${req.query}` : ""}`;
  const hasBody = req.method !== "GET" && req.method !== "HEAD" && !!req.body_base64;
  return new Request(url, {
    method: req.method,
    headers,
    body: hasBody ? Buffer.from(req.body_base64 as string, "base64") : undefined,
  });
}

async function fromResponse(response: Response): Promise<{ status: number; headers: HeaderList; body_base64: string }> {
  const headers: HeaderList = [];
  for (const [k, v] of response.headers) if (k !== "set-cookie") headers.push([k, v]);
  for (const c of response.headers.getSetCookie()) headers.push(["set-cookie", c]);
  const body = response.body ? Buffer.from(await response.arrayBuffer()) : Buffer.alloc(0);
  return { status: response.status, headers, body_base64: body.toString("base64") };
}

function publish(source: string, topic: string, payload: unknown): Frame {
  return {
    jsonrpc: "2.0",
    method: "broker.publish",
    params: { topic, event: { topic, source, payload: { topic, reply_to: null, payload } } },
  };
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
