import type { IncomingMessage } from "node:http";
import { GatewayError } from "../errors.js";

/** 413 before a byte is read (or invited with 100-continue) when Content-Length is over `limit`. */
export function refuseDeclaredOver(req: IncomingMessage, limit: number): void {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit)
    throw new GatewayError("payload_too_large", `Content-Length ${declared} > ${limit}`);
}

/**
 * The whole request body, refused with 413 as soon as it exceeds `limit` while it is read (a
 * declared length is the caller's to check first, with refuseDeclaredOver).
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  if (req.complete && req.readableLength === 0) return Promise.resolve(Buffer.alloc(0));
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(new GatewayError("payload_too_large", `body over ${limit} bytes`));
        return;
      }
      parts.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size));
    };
    const onAborted = () => {
      cleanup();
      reject(new GatewayError("bad_request", "client went away while sending the body"));
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onAborted);
      req.off("close", onClose);
    };
    const onClose = () => {
      if (!req.complete) onAborted();
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onAborted);
    req.on("close", onClose);
  });
}
