/**
 * The HTTP heads both protocols carry, and the one check a plugin's response head must pass
 * before anything of it reaches a client (whatever codec brought it).
 */
import { GatewayError } from "../errors.js";

export type HeaderList = [string, string][];

/** The request as the plugin sees it (v1's payload without the body, v2's HEAD). */
export interface RequestHead {
  method: string;
  /** The normalized full path, prefix included, without the query. */
  path: string;
  /** Raw query string without '?'. */
  query: string;
  headers: HeaderList;
  /** Set for a WebSocket upgrade; only a plugin that can tunnel one is told (v2). */
  upgrade?: "websocket";
}

/** A response head that passed validateResponseHead. */
export interface ResponseHead {
  status: number;
  headers: HeaderList;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values: visible Latin-1 and tabs/spaces; no CR, LF, NUL or other controls.
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

export function validateHeaders(value: unknown): HeaderList {
  if (!Array.isArray(value)) throw malformed("headers is not an array");
  for (const pair of value) {
    if (!Array.isArray(pair) || pair.length !== 2) throw malformed("a header is not a [name, value] pair");
    const [k, v] = pair as unknown[];
    if (typeof k !== "string" || !TOKEN.test(k)) throw malformed(`invalid header name ${JSON.stringify(k)}`);
    if (typeof v !== "string" || !FIELD_VALUE.test(v)) throw malformed(`invalid value for header ${k}`);
  }
  return value as HeaderList;
}

/**
 * `{status, headers}` from a plugin: status an integer in 200..599 (1xx are interim responses in
 * HTTP/1.1, an exchange can't end with one), or 101 when it accepts a WebSocket upgrade.
 */
export function validateResponseHead(value: unknown, allowUpgrade: boolean): ResponseHead {
  if (typeof value !== "object" || value === null) throw malformed("response head is not an object");
  const h = value as Record<string, unknown>;
  const status = h.status;
  const ok =
    typeof status === "number" && Number.isInteger(status) && ((status >= 200 && status <= 599) || (allowUpgrade && status === 101));
  if (!ok) throw malformed(`status ${JSON.stringify(status)} is not an integer in 200..599`);
  return { status: status as number, headers: validateHeaders(h.headers ?? []) };
}

export function malformed(detail: string): GatewayError {
  return new GatewayError("bad_reply", detail);
}
