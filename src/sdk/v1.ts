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

/** `decoded`: the request body, when the line's base64 was decoded already (see parseLine). */
export async function answerV1(
  handlers: Handlers,
  req: V1Request,
  decoded?: Buffer,
): Promise<{ status: number; headers: HeaderList; body_base64: string }> {
  const hasBody = req.method !== "GET" && req.method !== "HEAD" && (decoded !== undefined || !!req.body_base64);
  const given = decoded ?? (hasBody ? Buffer.from(req.body_base64 as string, "base64") : undefined);
  const { request } = lazyRequest(req, hasBody ? given : undefined);
  const response = await handlers.call(request);
  const whole = wholeBody(response);
  const body = whole === null ? EMPTY : (whole ?? (response.body ? Buffer.from(await response.arrayBuffer()) : EMPTY));
  return { status: response.status, headers: headerList(responseHeaders(response)), body_base64: body.toString("base64") };
}

const EMPTY = Buffer.alloc(0);

export function publishFrame(source: string, topic: string, payload: unknown): string {
  return `${JSON.stringify({
    jsonrpc: "2.0",
    method: "broker.publish",
    params: { topic, event: { topic, source, payload: { topic, reply_to: null, payload } } },
  })}\n`;
}

export { internalError };
