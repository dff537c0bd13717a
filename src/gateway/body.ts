import type { IncomingMessage, ServerResponse } from "node:http";
import { GatewayError } from "../errors.js";

/** 413 before a byte is read (or invited with 100-continue) when Content-Length is over `limit`. */
export function refuseDeclaredOver(req: IncomingMessage, limit: number): void {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > limit)
    throw new GatewayError("payload_too_large", `Content-Length ${declared} > ${limit}`);
}

/** Tells a client waiting on `Expect: 100-continue` to send its body. */
export function invite(req: IncomingMessage, res: ServerResponse): void {
  if (req.headers.expect?.toLowerCase() === "100-continue" && !res.headersSent) res.writeContinue();
}
