/**
 * HTTP/1.1 over a bare TCP socket, for tests where a real client would get in the way: fetch and
 * node:http normalize request-targets (`/a/../b`), refuse control characters, hide duplicate or
 * hop-by-hop response headers and the reason phrase. This sends bytes exactly as given and parses
 * the responses strictly enough to notice a body where none belongs (the next response would not
 * parse).
 */
import { type Agent, type IncomingHttpHeaders, request } from "node:http";
import { connect } from "node:net";

export interface RawResponse {
  /** e.g. "HTTP/1.1 504 Gateway Timeout" */
  statusLine: string;
  status: number;
  reason: string;
  /** In order, with case and duplicates, as on the wire. */
  headers: [string, string][];
  body: Buffer;
}

export interface RawResult {
  responses: RawResponse[];
  /** True when the server closed the connection. */
  closed: boolean;
  /** Bytes after the last complete response (should be empty). */
  rest: Buffer;
}

export interface RawOptions {
  /** Stop once this many responses are parsed (default 1); the socket is then closed by us. */
  count?: number;
  /** Per response, in order: true when it answers a HEAD (no body whatever its headers say). */
  head?: boolean[];
  /** Give up (resolve with what was parsed) after this long. */
  timeoutMs?: number;
  /** Keep reading until the server closes, even after `count` responses (to check it does close). */
  waitClose?: boolean;
  /** Writes after the first, each after `gapMs` (e.g. a body sent after the head). */
  more?: (string | Buffer)[];
  gapMs?: number;
}

/** The one response of a single exchange (throws when there is none or more than one). */
export function only(result: RawResult): RawResponse {
  if (result.responses.length !== 1) throw new Error(`expected one response, got ${result.responses.length} (closed: ${result.closed})`);
  return result.responses[0] as RawResponse;
}

/** All values of a header (case-insensitive name), in order. */
export function headerAll(res: RawResponse, name: string): string[] {
  const lower = name.toLowerCase();
  return res.headers.filter(([k]) => k.toLowerCase() === lower).map(([, v]) => v);
}

/** The only value of a header, or undefined; throws if it appears more than once. */
export function header(res: RawResponse, name: string): string | undefined {
  const all = headerAll(res, name);
  if (all.length > 1) throw new Error(`header ${name} appears ${all.length} times: ${JSON.stringify(all)}`);
  return all[0];
}

/** Sends `data` on a fresh connection to 127.0.0.1:port and parses the responses. */
export function rawRequest(port: number, data: string | Buffer, options: RawOptions = {}): Promise<RawResult> {
  const count = options.count ?? 1;
  const timeoutMs = options.timeoutMs ?? 5000;
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let buf = Buffer.alloc(0);
    const responses: RawResponse[] = [];
    let done = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      for (const t of timers) clearTimeout(t);
      socket.destroy();
      resolve({ responses, closed, rest: buf });
    };
    const parse = (atEnd: boolean) => {
      for (;;) {
        const r = parseOne(buf, options.head?.[responses.length] ?? false, atEnd);
        if (r === "incomplete") return;
        if (r instanceof Error) {
          done = true;
          socket.destroy();
          reject(r);
          return;
        }
        responses.push(r.response);
        buf = buf.subarray(r.used);
        if (responses.length >= count && !options.waitClose) return finish(false);
      }
    };
    socket.on("data", (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      parse(false);
    });
    socket.on("end", () => {
      parse(true);
      finish(true);
    });
    socket.on("close", () => finish(true));
    // A server that answers and closes before reading all we send may reset the connection.
    socket.on("error", () => finish(true));
    socket.write(typeof data === "string" ? Buffer.from(data, "latin1") : data);
    (options.more ?? []).forEach((chunk, i) => {
      timers.push(
        setTimeout(
          () => {
            if (!done && socket.writable) socket.write(typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk);
          },
          (i + 1) * (options.gapMs ?? 50),
        ),
      );
    });
    timers.push(setTimeout(() => finish(false), timeoutMs));
  });
}

function parseOne(buf: Buffer, isHead: boolean, atEnd: boolean): { response: RawResponse; used: number } | "incomplete" | Error {
  const end = buf.indexOf("\r\n\r\n");
  if (end === -1) return "incomplete";
  const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
  const statusLine = lines[0] as string;
  const m = /^HTTP\/1\.[01] (\d{3}) (.*)$/.exec(statusLine);
  if (!m) return new Error(`not a status line: ${JSON.stringify(statusLine)}`);
  const status = Number(m[1]);
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon <= 0) return new Error(`bad header line: ${JSON.stringify(line)}`);
    headers.push([line.slice(0, colon), line.slice(colon + 1).trim()]);
  }
  const response: RawResponse = { statusLine, status, reason: m[2] as string, headers, body: Buffer.alloc(0) };
  let at = end + 4;
  const get = (name: string) => headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
  if (isHead || status === 204 || status === 304 || status < 200) return { response, used: at };
  if (get("transfer-encoding").some((v) => /chunked/i.test(v))) {
    const parts: Buffer[] = [];
    for (;;) {
      const eol = buf.indexOf("\r\n", at);
      if (eol === -1) return "incomplete";
      const size = parseInt(buf.subarray(at, eol).toString("latin1"), 16);
      if (!Number.isFinite(size)) return new Error("bad chunk size");
      if (buf.length < eol + 2 + size + 2) return "incomplete";
      parts.push(buf.subarray(eol + 2, eol + 2 + size));
      at = eol + 2 + size + 2;
      if (size === 0) break;
    }
    response.body = Buffer.concat(parts);
    return { response, used: at };
  }
  const lengths = get("content-length");
  if (lengths.length > 1) return new Error(`several Content-Length headers: ${lengths.join(", ")}`);
  if (lengths.length === 1) {
    const n = Number(lengths[0]);
    if (buf.length < at + n) return "incomplete";
    response.body = buf.subarray(at, at + n);
    return { response, used: at + n };
  }
  // No framing: the body runs to the end of the connection.
  if (!atEnd) return "incomplete";
  response.body = buf.subarray(at);
  return { response, used: buf.length };
}

/** One GET (or other method without body) as raw bytes. `target` is sent exactly as given. */
export function rawGet(target: string, headers: string[] = [], method = "GET"): string {
  return [`${method} ${target} HTTP/1.1`, "Host: 127.0.0.1", ...headers, "", ""].join("\r\n");
}

export interface NodeResponse {
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  /** The client side of the connection: the same port means the same (kept-alive) socket. */
  localPort: number | undefined;
  reusedSocket: boolean;
}

/** One request with node:http (which, unlike fetch, shows the reason phrase and the socket used). */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | string; agent?: Agent; timeoutMs?: number } = {},
): Promise<NodeResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "GET", headers: options.headers, agent: options.agent }, (res) => {
      const parts: Buffer[] = [];
      const localPort = res.socket?.localPort;
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? "",
          headers: res.headers,
          rawHeaders: res.rawHeaders,
          body: Buffer.concat(parts),
          localPort,
          reusedSocket: req.reusedSocket,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(options.timeoutMs ?? 10_000, () => req.destroy(new Error(`no response from ${url} in time`)));
    req.end(options.body);
  });
}
