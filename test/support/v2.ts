/**
 * Helpers for the protocol v2 end-to-end tests (test/v2-*.e2e.test.ts): the SDK fixture plugins
 * under test/fixtures/v2/ (inside the repo, so their `import "portico/sdk"` resolves to dist/ by
 * package self-reference), and small bounded HTTP client helpers on 127.0.0.1.
 */

import { readFileSync } from "node:fs";
import { get as httpGet, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { fileURLToPath } from "node:url";
import type { PluginSpec } from "./portico.js";

export const V2_FIXTURES = fileURLToPath(new URL("../fixtures/v2/", import.meta.url));
export const LAB = `${V2_FIXTURES}lab/plugin.mjs`;

/** The lab plugin (SDK, protocol v2) under `id`, mounted at /<id>, with extra [plugin.http] lines. */
export function labSpec(id: string, http = ""): PluginSpec {
  return { id, command: process.execPath, args: [LAB], http };
}

/** A fixture plugin under test/fixtures/v2/<name>/plugin.mjs, mounted at `prefix`. */
export function fixtureSpec(id: string, name: string, prefix: string, http = ""): PluginSpec {
  return { id, prefix, command: process.execPath, args: [`${V2_FIXTURES}${name}/plugin.mjs`], http };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** `p`, or a rejection naming `what` after `ms`. */
export function within<T>(p: Promise<T>, what: string, ms = 15_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request, the whole answer buffered (small bodies only), bounded in time. */
export function fetchRaw(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {},
  ms = 15_000,
): Promise<Reply> {
  return within(
    new Promise<Reply>((resolve, reject) => {
      const req = httpRequest(url, { method: init.method ?? "GET", headers: init.headers, agent: false }, (res) => {
        const parts: Buffer[] = [];
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(init.body);
    }),
    `${init.method ?? "GET"} ${url}`,
    ms,
  );
}

export async function getJson<T = Record<string, unknown>>(url: string): Promise<T> {
  const r = await fetchRaw(url);
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${r.body.toString()}`);
  return JSON.parse(r.body.toString()) as T;
}

/** How a streamed response ended: cleanly, or cut short (the client can tell). */
export interface StreamOutcome {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** 'end' after a complete message. */
  complete: boolean;
  /** 'aborted' or 'error' on the response (truncated transfer). */
  truncated: boolean;
  error: string | undefined;
}

/** GET whose response body is read to its end or its cut, bounded in time. */
export function streamGet(url: string, ms = 15_000, onResponse?: (res: IncomingMessage) => void): Promise<StreamOutcome> {
  return within(
    new Promise<StreamOutcome>((resolve, reject) => {
      const req = httpGet(url, { agent: false }, (res) => {
        onResponse?.(res);
        const parts: Buffer[] = [];
        let truncated = false;
        let error: string | undefined;
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts),
            complete: res.complete,
            truncated,
            error,
          });
        };
        res.on("data", (c: Buffer) => parts.push(c));
        res.on("aborted", () => {
          truncated = true;
        });
        res.on("error", (err) => {
          truncated = true;
          error = (err as NodeJS.ErrnoException).code ?? err.message;
          done();
        });
        res.on("end", done);
        res.on("close", done);
      });
      req.on("error", reject);
    }),
    `GET ${url}`,
    ms,
  );
}

/** Peak and current resident set size of a process, in bytes (Linux /proc). */
export function memoryOf(pid: number): { hwm: number; rss: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(status);
    if (!m) throw new Error(`no ${key} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { hwm: kb("VmHWM"), rss: kb("VmRSS") };
}

export const MiB = 1024 * 1024;
