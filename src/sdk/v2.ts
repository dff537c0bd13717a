/** Protocol v2 on the plugin side: one fetch call per stream, bodies streamed both ways. */
import type { Stream } from "../protocol/v2.js";
import { type HeaderList, headerList, type RequestHead } from "./http.js";
import type { Handlers } from "./index.js";
import { knownLength, lazyRequest, wholeBody } from "./request.js";
import { responseHeaders } from "./response.js";
import { upgradable, upgrades } from "./websocket.js";

export async function handleStream(handlers: Handlers, stream: Stream, head: RequestHead, end: boolean): Promise<void> {
  const hasBody = !end && head.method !== "GET" && head.method !== "HEAD";
  const body = end ? undefined : requestBody(stream);
  const exchange = lazyRequest(head, hasBody ? body?.readable : undefined);
  const { request } = exchange;
  /** Stops reading the response body when portico cancels the exchange. */
  let stopResponse: (() => void) | undefined;
  stream.handlers.onReset = (code, message) => {
    exchange.abort(new DOMException(message ?? `stream ${code}`, code === "timeout" ? "TimeoutError" : "AbortError"));
    body?.fail(code);
    stopResponse?.();
  };
  if (!hasBody && body) body.discard();
  if (head.upgrade === "websocket") upgradable.set(request, stream);

  const response = await handlers.call(request);
  if (stream.closed) return; // reset while the handler ran

  const socket = upgrades.get(response);
  if (socket) {
    const protocol = socket.protocol ? [["Sec-WebSocket-Protocol", socket.protocol] as [string, string]] : [];
    stream.sendHead({ status: 101, headers: protocol }, false);
    socket._open();
    return;
  }

  // A body given whole (a string, bytes) goes out as it is, without a trip through its stream.
  const whole = head.method === "HEAD" ? undefined : wholeBody(response);
  const headers = withKnownLength(response, whole === null ? undefined : (whole?.length ?? knownLength(response)));
  if (whole === null) {
    stream.sendHead({ status: response.status, headers }, true);
    body?.discard();
    return;
  }
  if (whole) {
    stream.sendHead({ status: response.status, headers }, whole.length === 0);
    if (whole.length > 0) await stream.sendData(whole, true);
    body?.discard();
    return;
  }
  const out = response.body;
  const noBody = out === null || head.method === "HEAD";
  stream.sendHead({ status: response.status, headers }, noBody);
  if (noBody) {
    await out?.cancel().catch(() => {});
    body?.discard();
    return;
  }
  const reader = out.getReader();
  stopResponse = () => void reader.cancel().catch(() => {});
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (stream.closed) return;
      await stream.sendData(Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    }
    await stream.end();
  } catch (err) {
    if (!exchange.aborted) {
      handlers.report(err, request);
      stream.reset("error", "response body failed");
    }
  } finally {
    // The response is complete: whatever of the request body is still coming is not wanted.
    body?.discard();
  }
}

/**
 * The response's headers, with Content-Length added when the body's length is known and the
 * handler didn't say it: the client then gets the length at any size, not chunked framing once the
 * body no longer fits in one frame. 204 and 304 carry no body to measure.
 */
function withKnownLength(response: Response, length: number | undefined): HeaderList {
  const given = responseHeaders(response);
  const headers = headerList(given);
  const { status } = response;
  if (length === undefined || status === 204 || status === 304 || given.has("content-length")) return headers;
  headers.push(["content-length", String(length)]);
  return headers;
}

/**
 * The request body as a ReadableStream that holds nothing back: credit goes back to portico only
 * when the handler has taken what was queued, so a slow handler slows the upload down.
 */
function requestBody(stream: Stream) {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let enqueued = 0;
  let acked = 0;
  let discarding = false;
  let done = false;
  const ack = () => {
    stream.consumed(enqueued - acked);
    acked = enqueued;
  };
  const readable = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      // Called when the queue is empty and the handler waits for more: all queued bytes were read.
      pull: ack,
      cancel() {
        discarding = true;
        ack();
      },
    },
    { highWaterMark: 0 },
  );
  stream.handlers.onData = (chunk, end) => {
    if (done) {
      // Nothing may follow END; if something does anyway, it must not bring the plugin down.
      stream.consumed(chunk.length);
      return;
    }
    if (discarding) {
      stream.consumed(chunk.length);
    } else if (chunk.length > 0) {
      enqueued += chunk.length;
      controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    }
    if (end && !done) {
      done = true;
      if (!discarding) controller.close();
    }
  };
  return {
    readable,
    discard() {
      if (discarding) return;
      discarding = true;
      ack();
    },
    fail(code: string) {
      if (done || discarding) return;
      done = true;
      controller.error(new DOMException(`request body ${code}`, "AbortError"));
    },
  };
}
