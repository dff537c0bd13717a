import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

/**
 * A whole HTTP/1.1 response written straight to a socket that node:http no longer manages (an
 * upgrade request, a request its parser refused), then the connection is closed.
 */
export function endWithResponse(socket: Duplex, status: number, headers: readonly (readonly [string, string])[], body: Buffer): void {
  if (!socket.writable) return void socket.destroy();
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`];
  for (const [k, v] of headers) lines.push(`${k}: ${v}`);
  lines.push(`Content-Length: ${body.length}`, "Connection: close", "", "");
  socket.end(Buffer.concat([Buffer.from(lines.join("\r\n"), "latin1"), body]));
  socket.once("finish", () => socket.destroy());
}
