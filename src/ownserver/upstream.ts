/**
 * portico's client side of one run of an own-server app: an undici pool of keep-alive connections
 * to its loopback port, the health probe, and the exchanges. Loaded only when an app is configured
 * (undici and ws cost memory a daemon without apps has no use for).
 */
import { createRequire } from "node:module";
import type * as Undici from "undici";
import type { Exchange, RequestHead } from "../exchange/index.js";
import type { PluginHttpServer } from "../manifest/index.js";
import { HttpExchange } from "./http-exchange.js";
import { appRequestHeaders, mayRetry } from "./request.js";
import { WsExchange } from "./ws-exchange.js";

// undici's index also loads its fetch, WebSocket, cache and proxy parts: about 10 MiB of memory
// and half a second of start-up for nothing portico uses. The pool comes from its own module.
const require = createRequire(import.meta.url);
const Pool = require("undici/lib/dispatcher/pool.js") as typeof Undici.Pool;

export class AppUpstream {
  readonly #server: PluginHttpServer;
  readonly #token: string | undefined;
  readonly #pool: Undici.Pool;
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

  /**
   * One GET of the health path: undefined when it answered 2xx (its body read to the end and
   * dropped), else why not, in words.
   */
  probe(timeoutMs: number): Promise<string | undefined> {
    const path = this.#server.healthPath;
    const headers = ["User-Agent", "portico-health-check"];
    if (this.#token !== undefined) headers.push("Authorization", `Bearer ${this.#token}`);
    return new Promise((resolve) => {
      let controller: Undici.Dispatcher.DispatchController | undefined;
      let status = 0;
      let settled = false;
      const settle = (failure: string | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(failure);
      };
      const timer = setTimeout(() => {
        controller?.abort(new Error("health check timed out"));
        settle(`GET ${path} had no ${status ? "complete " : ""}answer within ${timeoutMs / 1000} s`);
      }, timeoutMs);
      let retried = false;
      const send = () =>
        this.#pool.dispatch(
          { path, method: "GET", headers, headersTimeout: 0, bodyTimeout: 0 },
          {
            onRequestStart: (c) => {
              controller = c;
              if (settled) c.abort(new Error("health check timed out"));
            },
            onResponseStart: (_c, statusCode) => {
              status = statusCode;
            },
            onResponseData: () => {},
            onResponseEnd: () => settle(status >= 200 && status < 300 ? undefined : `GET ${path} answered ${status}`),
            onResponseError: (_c, err) => {
              // As for a client's GET (HttpExchange): a kept-alive connection closed as the probe
              // crossed it says nothing of the app's health.
              if (!retried && !settled && !status && mayRetry(err, "GET", false)) {
                retried = true;
                return queueMicrotask(send);
              }
              const e = err as { code?: string; message?: string };
              settle(`GET ${path} failed: ${e.code ?? "error"}${e.message ? ` (${e.message})` : ""}`);
            },
          },
        );
      send();
    });
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
