/** nexo's v1 exchange on the plugin side: one buffered request, one buffered reply. */
import { type HeaderList, headerList, internalError, type RequestHead } from "./http.js";
import type { Handlers } from "./index.js";
import { lazyRequest, wholeBody } from "./request.js";
import { responseHeaders } from "./response.js";

interface V1Request extends RequestHead {
  body_base64?: string;
}

export interface V1Message {
  reply_to?: string;
  payload?: V1Request;
}

export interface V1Reply {
  status: number;
  headers: HeaderList;
  body_base64: string;
}

/** `decoded`: the request body, when the line's base64 was decoded already (see parseLine). */
export async function answerV1(handlers: Handlers, req: V1Request, decoded?: Buffer): Promise<V1Reply> {
  const hasBody = req.method !== "GET" && req.method !== "HEAD" && (decoded !== undefined || !!req.body_base64);
  const given = decoded ?? (hasBody ? Buffer.from(req.body_base64 as string, "base64") : undefined);
  const { request } = lazyRequest(req, hasBody ? given : undefined);
  const response = await handlers.call(request);
  const whole = wholeBody(response);
  const body = whole === null ? EMPTY : (whole ?? (response.body ? Buffer.from(await response.arrayBuffer()) : EMPTY));
  return { status: response.status, headers: headerList(responseHeaders(response)), body_base64: body.toString("base64") };
}

const EMPTY = Buffer.alloc(0);

/**
 * The `broker.publish` line answering `topic`, in pieces: the JSON up to the body's base64, the
 * base64, the rest. A body's base64 is then written as it is, not copied into one line-sized
 * string first (JSON.stringify would also scan it for characters to escape: base64 has none).
 */
export function publishPieces(source: string, topic: string, reply: V1Reply): string[] {
  const { body_base64, ...head } = reply;
  const json = JSON.stringify({
    jsonrpc: "2.0",
    method: "broker.publish",
    params: { topic, event: { topic, source, payload: { topic, reply_to: null, payload: { ...head, body_base64: "" } } } },
  });
  // The line ends `"body_base64":""}}}}}`: the base64 goes between those two quotes.
  const cut = json.length - CLOSE.length;
  return [json.slice(0, cut), body_base64, `${json.slice(cut)}\n`];
}

const CLOSE = '"}}}}}';

export { internalError };
