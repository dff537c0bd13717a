/**
 * Codec v1: the seed's (nexo's) HTTP exchange, byte for byte.
 *
 * request:  host → child  `broker.event`   {topic, event: Event{…, payload: Message{id, topic, reply_to, payload: HttpRequestV1}}}
 * reply:    child → host  `broker.publish` {topic: reply_to, event: {topic, source, payload: Message{…, payload: HttpReplyV1}}}
 */
import { randomBytes } from "node:crypto";
import { isoNow } from "../clock.js";
import { newUuid } from "../ids.js";
import { type HeaderList, malformed, validateResponseHead } from "./http.js";

export type { HeaderList } from "./http.js";

export interface HttpRequestV1 {
  method: string;
  /** Full path, prefix included, without the query. */
  path: string;
  /** Raw query string without '?'. */
  query: string;
  headers: HeaderList;
  body_base64: string;
}

/** A validated reply: status in range, headers checked, body decoded. */
export interface HttpReply {
  status: number;
  headers: HeaderList;
  body: Buffer;
}

export const requestTopic = (pluginId: string): string => `plugin.${pluginId}.http.request`;

export const newInbox = (): string => `_inbox.${newUuid()}`;

/**
 * The `broker.event` line for one request, in two parts: what goes before the body's base64 and
 * what goes after. The base64 needs no JSON escaping, so it is put in place rather than run through
 * JSON.stringify: a multi-megabyte body is then never copied into a JSON string. The envelope is
 * written out by hand, in the key order nexo's own host uses, rather than built as five nested
 * objects to be stringified: this runs once per request, and that was most of its cost.
 */
export function requestLine(pluginId: string, inbox: string, req: Omit<HttpRequestV1, "body_base64">): { before: string; after: string } {
  const topic = JSON.stringify(requestTopic(pluginId));
  const before =
    `{"jsonrpc":"2.0","method":"broker.event","params":{"topic":${topic},"event":{"id":"${newUuid()}",` +
    `"timestamp":"${isoNow()}","topic":${topic},"source":"local","session_id":null,` +
    `"payload":{"id":"${newUuid()}","topic":${topic},"reply_to":${JSON.stringify(inbox)},` +
    `"payload":{"method":${JSON.stringify(req.method)},"path":${JSON.stringify(req.path)},` +
    `"query":${JSON.stringify(req.query)},"headers":${JSON.stringify(req.headers)},"body_base64":"`;
  return { before, after: '"}}}}}\n' };
}

/** The whole `broker.event` line for one request. */
export function encodeRequest(pluginId: string, inbox: string, req: HttpRequestV1): string {
  const { before, after } = requestLine(pluginId, inbox, req);
  return `${before}${req.body_base64}${after}`;
}

/** The Message as it travels over NATS (same object, without the Event wrapper). */
export function encodeMessage(pluginId: string, inbox: string, req: HttpRequestV1): string {
  return JSON.stringify({ id: newUuid(), topic: requestTopic(pluginId), reply_to: inbox, payload: req });
}

/**
 * From a `broker.publish` notification's params, the inbox topic it answers and the reply event
 * (unchecked: decodeReply judges it). Returns undefined when no topic can be found (then it is
 * just another broker publish). A publish to a waiting inbox whose event is missing or not an
 * object is still that request's reply, a malformed one: the client gets a 502 now, not a 504 later.
 */
export function replyEnvelope(params: unknown): { topic: string; event: unknown } | undefined {
  if (typeof params !== "object" || params === null) return undefined;
  const p = params as Record<string, unknown>;
  const event = p.event;
  const evTopic = typeof event === "object" && event !== null ? (event as Record<string, unknown>).topic : undefined;
  const topic = typeof p.topic === "string" ? p.topic : typeof evTopic === "string" ? evTopic : undefined;
  return topic ? { topic, event } : undefined;
}

/**
 * The HTTP reply inside a reply event. nexo's SDKs put it in a Message under `event.payload.payload`;
 * a bare `{status, headers, body_base64}` directly under `event.payload` is accepted too, since a
 * hand-written plugin easily forgets the Message layer and nothing else could be meant by it.
 */
export function decodeReply(event: unknown): HttpReply {
  if (typeof event !== "object" || event === null) throw malformed("params.event is not an object");
  const outer = (event as Record<string, unknown>).payload;
  if (typeof outer !== "object" || outer === null) throw malformed("event.payload is not an object");
  const o = outer as Record<string, unknown>;
  const inner = typeof o.payload === "object" && o.payload !== null ? o.payload : "status" in o ? o : undefined;
  if (!inner) throw malformed("no reply under event.payload.payload");
  return validateReply(inner as Record<string, unknown>);
}

export function validateReply(r: Record<string, unknown>): HttpReply {
  const { status, headers } = validateResponseHead(r, false);
  const b64 = r.body_base64 ?? "";
  if (typeof b64 !== "string") throw malformed("body_base64 is not a string");
  return { status, headers, body: decodeBase64(b64) };
}

/**
 * Standard padded base64, strictly. Buffer.from skips characters outside the alphabet without a
 * word, so one that did shows in the length: every character of a valid string counts, and `=`
 * only as the last one or two. (A regular expression over a multi-megabyte body costs far more.)
 */
export function decodeBase64(given: string): Buffer {
  const bytes = takeSpliced(given);
  if (bytes) return decodeBase64Bytes(bytes, true);
  const s = given;
  if (s.length === 0) return Buffer.alloc(0);
  const out = Buffer.from(s, "base64");
  const padding = s.endsWith("==") ? 2 : s.endsWith("=") ? 1 : 0;
  refuseUnlessPadded(s.length, padding, s.indexOf("="), s.includes("-") || s.includes("_"), out.length);
  return out;
}

/**
 * Base64 given as bytes (ASCII). `strict`: as decodeBase64 (standard padded alphabet, else
 * malformed); else leniently, as Buffer.from. A megabyte-sized string of it is cheapest made in
 * one piece: Node makes it an external string, a copy outside V8's heap (pieces small enough for
 * the heap cost four times as much here, in page faults on fresh large-object pages).
 */
export function decodeBase64Bytes(b64: Buffer, strict: boolean): Buffer {
  const out = Buffer.from(b64.toString("latin1"), "base64");
  if (!strict) return out;
  // The same checks, on the bytes (a scan of an external string costs far more).
  const n = b64.length;
  const padding = b64[n - 1] === 0x3d ? (b64[n - 2] === 0x3d ? 2 : 1) : 0;
  refuseUnlessPadded(n, padding, b64.indexOf(0x3d), b64.indexOf(0x2d) !== -1 || b64.indexOf(0x5f) !== -1, out.length);
  return out;
}

/**
 * The one rule both decoders judge by: a length that is a multiple of 4, `=` only as the last one
 * or two characters, none of base64url's `-` and `_` (Buffer.from decodes them too), and every
 * character decoded.
 */
function refuseUnlessPadded(length: number, padding: number, firstPad: number, urlSafe: boolean, decoded: number): void {
  const padded = length % 4 === 0 && (firstPad === -1 || firstPad >= length - padding);
  if (!padded || urlSafe || decoded !== (length / 4) * 3 - padding) throw malformed("body_base64 is not valid padded base64");
}

/**
 * A reply line carries its body as one long base64 string. Turning the whole line into a JS string
 * (UTF-8 decoding every byte) and JSON.parse scanning it again cost most of what a big v1 reply
 * costs the daemon: about 15 ms per MiB of body here. So a line over SPLICE_OVER bytes whose last
 * `"body_base64"` key holds a long plain string has that string taken out as it is (base64 is
 * ASCII, kept as bytes), the rest parsed with a placeholder in its place, and decodeBase64 decodes
 * those bytes for the placeholder. JSON rules out the key appearing unescaped inside another string, and a
 * value with an escape in it (`\/`, as some encoders write slashes) is left to JSON.parse.
 */
const SPLICE_OVER = 64 * 1024;
const KEY = '"body_base64"';
/**
 * The placeholder: what no base64 can be (a NUL is not in its alphabet), with a part drawn per
 * process, so no plugin can write it and have some other line's body taken for its own.
 */
const NONCE = randomBytes(12).toString("hex");
const SPLICED = `\u0000portico:spliced-body:${NONCE}`;
const SPLICED_JSON = `\\u0000portico:spliced-body:${NONCE}`;
/** The base64 taken out of the line being handled (its bytes), until decodeBase64 takes it. */
let spliced: Buffer | undefined;

const isBlank = (c: number | undefined) => c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d;

/** JSON.parse of one line from a v1 plugin, with a long body_base64 taken out first (see above). */
export function parseLine(line: Buffer): unknown {
  spliced = undefined;
  const at = line.length > SPLICE_OVER ? bodyValue(line) : undefined;
  if (!at) return JSON.parse(line.toString("utf8"));
  const [start, end] = at;
  const text = `${line.toString("utf8", 0, start)}${SPLICED_JSON}${line.toString("utf8", end)}`;
  const value: unknown = JSON.parse(text);
  spliced = line.subarray(start, end);
  return value;
}

/**
 * The bytes of the body_base64 value parseLine took out of the line being handled, if `value` is
 * its placeholder; else undefined. Only once: a placeholder a peer wrote itself stays what it is,
 * text that is not base64.
 */
export function takeSpliced(value: unknown): Buffer | undefined {
  if (value !== SPLICED || spliced === undefined) return undefined;
  const taken = spliced;
  spliced = undefined;
  return taken;
}

/** Whatever parseLine took out and nobody used (a reply to no one): not kept past its line. */
export function endLine(): void {
  spliced = undefined;
}

/** Where the last body_base64 string's characters are, if it is long and has no escapes. */
function bodyValue(line: Buffer): [number, number] | undefined {
  const key = line.lastIndexOf(KEY);
  if (key === -1) return undefined;
  let i = key + KEY.length;
  while (isBlank(line[i])) i++;
  if (line[i] !== 0x3a) return undefined;
  i++;
  while (isBlank(line[i])) i++;
  if (line[i] !== 0x22) return undefined;
  const start = i + 1;
  const end = line.indexOf(0x22, start);
  if (end === -1 || end - start < SPLICE_OVER) return undefined;
  const backslash = line.indexOf(0x5c, start);
  if (backslash !== -1 && backslash < end) return undefined;
  return [start, end];
}
