/**
 * portico's client side of one run of an own-server app: an undici pool of keep-alive connections
 * to its loopback port, the health probe, and the exchanges. Loaded only when an app is configured
 * (undici and ws cost memory a daemon without apps has no use for).
 */
import { Pool } from "undici";
import type { Exchange, RequestHead } from "../exchange/index.js";
import type { PluginHttpServer } from "../manifest/index.js";
import { HttpExchange } from "./http-exchange.js";
import { appRequestHeaders } from "./request.js";
import { WsExchange } from "./ws-exchange.js";

/** A health answer's body is read up to this and dropped. */
const HEALTH_BODY_LIMIT = 64 * 1024;

export class AppUpstream {
  readonly #server: PluginHttpServer;
  readonly #token: string | undefined;
  readonly #pool: Pool;
  readonly #authority: string;

  constructor(server: PluginHttpServer, token: string | undefined) {
    this.#server = server;
    this.#token = token;
    this.#authority = server.bind.includes(":") ? `[${server.bind}]:${server.port}` : `${server.bind}:${server.port}`;
    this.#pool = new Pool(`http://${this.#authority}`, {
      // The gateway owns the request clocks; these only bound a connect that never completes.
      headersTimeout: 0,
      bodyTimeout: 0,
      connectTimeout: 10_000,
      keepAliveTimeout: 4_000,
      // `localhost` may mean ::1 or 127.0.0.1: try both, whichever the app listens on.
      autoSelectFamily: true,
    });
  }

  /** One GET of the health path: undefined when it answered 2xx, else why not, in words. */
  async probe(timeoutMs: number): Promise<string | undefined> {
    const path = this.#server.healthPath;
    const headers: Record<string, string> = { "user-agent": "portico-health-check" };
    if (this.#token !== undefined) headers.authorization = `Bearer ${this.#token}`;
    try {
      const { statusCode, body } = await this.#pool.request({
        path,
        method: "GET",
        headers,
        signal: AbortSignal.timeout(timeoutMs),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      await body.dump({ limit: HEALTH_BODY_LIMIT }).catch(() => {});
      return statusCode >= 200 && statusCode < 300 ? undefined : `GET ${path} answered ${statusCode}`;
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      if (e.name === "TimeoutError" || e.code === "UND_ERR_HEADERS_TIMEOUT")
        return `GET ${path} had no answer within ${timeoutMs / 1000} s`;
      return `GET ${path} failed: ${e.code ?? e.name ?? "error"}${e.message ? ` (${e.message})` : ""}`;
    }
  }

  /** An exchange with the app for one request; a WebSocket one for an upgrade. */
  open(head: RequestHead, end: boolean, onClose: () => void): Exchange {
    const headers = appRequestHeaders(head.headers, this.#token);
    if (head.upgrade === "websocket") {
      const target = head.query ? `${head.path}?${head.query}` : head.path;
      return new WsExchange(`ws://${this.#authority}${target}`, head, headers, onClose);
    }
    return new HttpExchange(this.#pool, head, end, headers, onClose);
  }

  /** Drops every connection to the app (its process is gone). */
  close(): void {
    void this.#pool.destroy().catch(() => {});
  }
}
