/**
 * The case table of the hostile-client corpus (clients.serial.test.ts runs it): one entry per
 * attack or malformation, sent as raw bytes on a fresh connection, with the outcome a correct and
 * careful HTTP/1.1 gateway gives (RFC 9110/9112, RFC 6455, portico's README). Where the RFCs let a
 * server choose (refuse, or repair and serve), `status` lists every allowed answer and `check`
 * holds a served answer to the repaired meaning.
 *
 * Bytes are written with placeholders the runner fills in per case: `{t}` is the case's own token
 * (every path it sends carries it), `{echo}` the victim's echo route for it (/victim/echo/{t}),
 * `{s}` the token of a request smuggled behind it and `{smuggled}` that whole request (a GET for
 * /victim/{s}), which must never reach a plugin. The victim (the raw v1 fixture at /victim) lists
 * every path it received, so the runner can tell what reached it.
 */
import assert from "node:assert/strict";
import { header, type RawResponse, type RawResult } from "../support/raw-http.js";

/** The per-case values behind the placeholders. */
export interface Marks {
  t: string;
  s: string;
  echo: string;
  smuggled: string;
}

/** The plugin portico must route the case's request to (null: its own handlers, or no route). */
export type Route = "victim" | "victim2" | "bystander" | null;

export interface Case {
  category: string;
  name: string;
  /** What is sent, placeholders filled in. */
  bytes: string | Buffer;
  /** The statuses a correct gateway may answer (the first response). */
  status: readonly number[];
  /** The connection must close after the answer: the runner sends `{smuggled}` right behind the case. */
  close?: boolean;
  /** Whether the case's request reaches the victim: "must", "may", or never (absent). */
  reach?: "must" | "may";
  /** Checked in portico's request log, on every line whose raw target carries `{t}`. */
  route?: Route;
  /** Responses in all (default 1), the first of which has one of `status`. */
  responses?: number;
  /** Written after the first bytes, 100 ms apart. */
  more?: string[];
  check?: (r: RawResult, m: Marks) => void;
}

export interface Echo {
  method: string;
  path: string;
  query: string;
  headers: [string, string][];
  body_base64: string;
}

/**
 * The bytes of a case for `m`. Besides the placeholders above: `{sl}` and `{sx}` are the length of
 * `{smuggled}` in decimal and hex, `{cl}` that of `0\r\n\r\n{smuggled}`.
 */
export const fill = (text: string, m: Marks): string =>
  text
    .replaceAll("{echo}", m.echo)
    .replaceAll("{smuggled}", m.smuggled)
    .replaceAll("{sl}", String(m.smuggled.length))
    .replaceAll("{sx}", m.smuggled.length.toString(16))
    .replaceAll("{cl}", String(m.smuggled.length + 5))
    .replaceAll("{t}", m.t)
    .replaceAll("{s}", m.s);
const first = (r: RawResult): RawResponse => {
  assert.ok(r.responses[0], "a response");
  return r.responses[0];
};
/** What the victim's /echo route answered: the request it received. */
export const echoOf = (res: RawResponse): Echo => JSON.parse(res.body.toString("utf8")) as Echo;
const values = (e: Echo, name: string) => e.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
const bodyOf = (e: Echo) => Buffer.from(e.body_base64, "base64").toString("latin1");
type Check = NonNullable<Case["check"]>;
/** Runs `check` only when the victim served the request (200) rather than the gateway refusing it. */
const ifServed =
  (check: (e: Echo, m: Marks) => void): Check =>
  (r, m) => {
    if (first(r).status === 200) check(echoOf(first(r)), m);
  };
const pathIs = (path: string) => ifServed((e, m) => assert.equal(e.path, fill(path, m)));
const bodyIs = (body: string) => ifServed((e, m) => assert.equal(bodyOf(e), fill(body, m)));
const headerIs = (name: string, expected: string[]) => ifServed((e) => assert.deepEqual(values(e, name), expected));
const isControl = (ch: string) => (ch.charCodeAt(0) < 32 && ch !== "\t") || ch.charCodeAt(0) === 127;
/** No CR, LF, NUL or other control byte (HTAB aside) reached the plugin in a header. */
const noControls = ifServed((e) => {
  for (const [k, v] of e.headers) assert.ok(![...`${k}${v}`].some(isControl), `a control byte reached the plugin in ${k}`);
});
const FORWARDING =
  /^(x[-_]forwarded[-_].*|forwarded|x[-_]real[-_]ip|x[-_]client[-_]ip|true[-_]client[-_]ip|x[-_]cluster[-_]client[-_]ip|client[-_]ip)$/;
/** portico's own forwarding headers, once each, and none of the client's claims. */
const ownForwarding = ifServed((e) => {
  const claims = e.headers.filter(([k]) => FORWARDING.test(k.toLowerCase()));
  const own = [
    ["X-Forwarded-For", "127.0.0.1"],
    ["X-Forwarded-Proto", "http"],
    ["X-Forwarded-Host", "h"],
    ["X-Forwarded-Prefix", "/victim"],
  ];
  assert.deepEqual(claims, own);
  assert.equal(values(e, "x-request-id").length, 1);
});
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** The request id is a fresh UUID of portico's, the same on the response and at the plugin. */
const freshId: Check = (r) => {
  const id = header(first(r), "x-request-id") ?? "";
  assert.match(id, UUID);
  if (first(r).status === 200) assert.deepEqual(values(echoOf(first(r)), "x-request-id"), [id]);
};
const jsonError =
  (message: string): Check =>
  (r) => {
    assert.equal(header(first(r), "content-type"), "application/json; charset=utf-8");
    assert.equal(first(r).body.toString(), JSON.stringify({ error: message }));
  };

/** A request: the line, `Host: h`, the given header lines, a blank line, then `body`. */
const req = (line: string, headers: string[] = [], body = "") => `${[line, "Host: h", ...headers].join("\r\n")}\r\n\r\n${body}`;
const post = (headers: string[], body: string) => req("POST {echo} HTTP/1.1", headers, body);
const chunked = (body: string, headers: string[] = []) => post(["Transfer-Encoding: chunked", ...headers], body);
const C = (code: number) => String.fromCharCode(code);

export const CASES: Case[] = [];
const add = (category: string, name: string, c: Omit<Case, "category" | "name">) => CASES.push({ category, name, ...c });
/** Refused (400 unless said) and the connection closed: nothing behind it is read as a request. */
const refuse = (category: string, name: string, bytes: string | Buffer, status = [400], check?: Check) =>
  add(category, name, { bytes, status, close: true, reach: status.includes(200) ? "may" : undefined, check });
/** Served to the victim, which must see it. */
const serve = (category: string, name: string, bytes: string, check?: Check) =>
  add(category, name, { bytes, status: [200], reach: "must", route: "victim", check });
/** Refused, or served repaired (the RFC leaves it to the server): `check` holds the served answer. */
const either = (category: string, name: string, bytes: string, status: number[], check?: Check) =>
  add(category, name, { bytes, status, reach: "may", check });
/** Answered by the daemon itself (or no route): no plugin sees it. */
const daemon = (category: string, name: string, bytes: string, status: number[], check?: Check) =>
  add(category, name, { bytes, status, route: null, check });

// Request line ------------------------------------------------------------------------------------
const RL = "request-line";
refuse(RL, "http09-bare", "GET /victim/{t}\r\n\r\n");
refuse(RL, "http09-then-injected-header", "GET {echo}\r\nX-Inj: 1 HTTP/1.1\r\nHost: h\r\n\r\n");
refuse(RL, "http09-explicit", req("GET /victim/{t} HTTP/0.9"), [400, 505]);
for (const v of ["HTTP/2.0", "HTTP/3.0", "HTTP/4.0", "HTTP/9.9", "HTTP/2.1"]) {
  refuse(RL, `major-${v}`, req(`GET /victim/{t} ${v}`), [505], jsonError("HTTP version not supported"));
}
for (const [name, v] of [
  ["lowercase-name", "http/1.1"],
  ["mixed-case-name", "Http/1.1"],
  ["no-minor", "HTTP/1"],
  ["two-digit-major", "HTTP/11"],
  ["trailing-letter", "HTTP/1.1x"],
  ["letter-minor", "HTTP/1.a"],
  ["leading-zero", "HTTP/01.1"],
  ["two-digit-minor", "HTTP/1.10"],
  ["no-number", "HTTP/"],
  ["wrong-name", "HTTX/1.1"],
  ["space-after-slash", "HTTP/ 1.1"],
  ["three-parts", "HTTP/1.1.1"],
  ["negative", "HTTP/-1.1"],
  ["backslash", "HTTP\\1.1"],
  ["comma", "HTTP/1,1"],
  ["nul-after", `HTTP/1.1${C(0)}`],
  ["empty", ""],
] as const) {
  refuse(RL, `version-${name}`, req(`GET /victim/{t} ${v}`));
}
// RFC 9110 §2.5 says a higher minor version SHOULD be processed as 1.1; node's parser refuses it,
// and portico says so with 505 (documented in README's table), the request unserved.
for (const v of ["HTTP/1.2", "HTTP/1.9"]) refuse(RL, `higher-minor-${v}-refused-505`, req(`GET /victim/{t} ${v}`), [505]);
// RFC 9112 §3: a recipient MAY parse on whitespace; if it serves, the target is the right one.
for (const [name, line] of [
  ["double-space-after-method", "GET  {echo} HTTP/1.1"],
  ["double-space-before-version", "GET {echo}  HTTP/1.1"],
  ["leading-space", " GET {echo} HTTP/1.1"],
  ["tabs-as-separators", "GET\t{echo}\tHTTP/1.1"],
  ["trailing-space", "GET {echo} HTTP/1.1 "],
  ["trailing-tab", "GET {echo} HTTP/1.1\t"],
] as const) {
  either(RL, `whitespace-${name}`, req(line), [200, 400], pathIs("{echo}"));
}
refuse(RL, "no-space-after-method", req("GET/victim/{t} HTTP/1.1"));
refuse(RL, "no-space-before-version", req("GET /victim/{t}HTTP/1.1"));
refuse(RL, "no-target", req("GET HTTP/1.1"));
refuse(RL, "extra-token", req("GET /victim/{t} HTTP/1.1 extra"));
refuse(RL, "bare-cr-separator", req("GET\r/victim/{t} HTTP/1.1"));
serve(RL, "one-leading-empty-line-ignored", `\r\n${req("GET {echo} HTTP/1.1")}`);
either(RL, "thousand-leading-empty-lines", "\r\n".repeat(1000) + req("GET {echo} HTTP/1.1"), [200, 400]);
for (const [name, bytes] of [
  ["nul", C(0)],
  ["soh", C(1)],
  ["backspace", C(8)],
  ["tab", "\t"],
  ["vt", C(11)],
  ["ff", C(12)],
  ["bare-cr", "\r"],
  ["esc", C(27)],
  ["del", C(127)],
  ["0x80", C(0x80)],
  ["nbsp", C(0xa0)],
  ["0xff", C(0xff)],
  ["utf8-e-acute", "\u00c3\u00a9"],
  ["utf8-bom", "\u00ef\u00bb\u00bf"],
] as const) {
  refuse(RL, `target-byte-${name}`, req(`GET /victim/{t}/a${bytes}b HTTP/1.1`));
}
// RFC 9112 §3: a request-target longer than the server will parse MUST get 414.
add(RL, "target-alone-over-max-header-bytes-414", { bytes: req(`GET /victim/{t}/${"a".repeat(20_000)} HTTP/1.1`), status: [414] });
add(RL, "target-and-header-over-limit", {
  bytes: req(`GET /victim/{t}/${"a".repeat(10_000)} HTTP/1.1`, [`X-Pad: ${"p".repeat(7000)}`]),
  status: [414, 431],
});
serve(RL, "target-8k-within-limits", req(`GET {echo}/${"a".repeat(8000)} HTTP/1.1`));
serve(RL, "query-8k-within-limits", req(`GET {echo}?${"q".repeat(8000)} HTTP/1.1`));
serve(RL, "absolute-form", req("GET http://h{echo} HTTP/1.1"), pathIs("{echo}"));
serve(RL, "absolute-form-uppercase-scheme", req("GET HTTP://h{echo} HTTP/1.1"), pathIs("{echo}"));
serve(RL, "absolute-form-https-claims-nothing", req("GET https://h{echo} HTTP/1.1"), ownForwarding);
// RFC 9112 §3.2.2: with an absolute-form target, its authority is the host, whatever Host says.
either(
  RL,
  "absolute-form-authority-wins-over-host",
  req("GET http://evil.example{echo} HTTP/1.1"),
  [200, 400],
  headerIs("x-forwarded-host", ["evil.example"]),
);
refuse(RL, "absolute-form-userinfo", req("GET http://user:pass@h/victim/{t} HTTP/1.1"));
refuse(RL, "absolute-form-empty-authority", req("GET http:///victim/{t} HTTP/1.1"));
refuse(RL, "absolute-form-ftp", req("GET ftp://h/victim/{t} HTTP/1.1"));
refuse(RL, "absolute-form-file", req("GET file:///victim/{t} HTTP/1.1"));
refuse(RL, "absolute-form-fragment", req("GET http://h/victim/{t}#f HTTP/1.1"));
daemon(RL, "absolute-form-no-path-is-root", req("GET http://h?{t} HTTP/1.1"), [404]);
daemon(RL, "absolute-form-to-health", req("GET http://h/health?{t} HTTP/1.1"), [200]);
daemon(RL, "absolute-form-escape-to-health", req("GET http://h/victim/{t}/%2e%2e/%2e%2e/health HTTP/1.1"), [200]);
refuse(RL, "authority-form-on-get", req("GET 127.0.0.1:80 HTTP/1.1"));
refuse(RL, "asterisk-form-on-get", req("GET * HTTP/1.1"));
add(RL, "options-asterisk-is-the-daemons", { bytes: req("OPTIONS * HTTP/1.1"), status: [200, 204, 400, 501] });
refuse(RL, "relative-target", req("GET victim/{t} HTTP/1.1"));
refuse(RL, "query-only-target", req("GET ?{t} HTTP/1.1"));
serve(RL, "double-slash-not-an-authority", req("GET /{echo} HTTP/1.1"), pathIs("{echo}"));

// Methods -----------------------------------------------------------------------------------------
const ME = "method";
const notImplemented = jsonError("method not implemented");
refuse(ME, "connect-evil-443", "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n", [501], notImplemented);
refuse(ME, "connect-the-daemon-itself", "CONNECT 127.0.0.1:80 HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", [501], notImplemented);
refuse(ME, "connect-origin-form", req("CONNECT /victim/{t} HTTP/1.1"), [400, 501]);
refuse(ME, "connect-with-body", "CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\nContent-Length: 5\r\n\r\nhello", [400, 501]);
// RFC 9110 §9.1: an unknown method SHOULD get 501; a parser may refuse it as 400.
for (const method of ["get", "Get", "FOO", "BREW", "A".repeat(100)]) {
  add(ME, `unknown-${method.slice(0, 8)}`, { bytes: req(`${method} /victim/{t} HTTP/1.1`), status: [400, 501] });
}
for (const [name, method] of [
  ["paren", "G(T"],
  ["quoted", '"GET"'],
  ["colon", "GET:"],
  ["utf8", "G\u00c3\u0089T"],
  ["nul", `GET${C(0)}`],
  ["del", `GE${C(127)}T`],
  ["slash", "GE/T"],
] as const) {
  refuse(ME, `not-a-token-${name}`, req(`${method} /victim/{t} HTTP/1.1`));
}
serve(ME, "trace-without-proxy-credentials", req("TRACE {echo} HTTP/1.1", ["Proxy-Authorization: Basic c2VjcmV0"]), (r) => {
  assert.equal(echoOf(first(r)).method, "TRACE");
  assert.deepEqual(values(echoOf(first(r)), "proxy-authorization"), []);
});
for (const [method, path] of [
  ["TRACE", "/health"],
  ["POST", "/health"],
  ["DELETE", "/metrics"],
  ["PUT", "/health"],
] as const) {
  daemon(ME, `${method.toLowerCase()}-on-${path.slice(1)}`, req(`${method} ${path}?{t} HTTP/1.1`, ["Content-Length: 0"]), [405]);
}
refuse(ME, "h2-prior-knowledge-preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", [400, 505]);

// Targets: escapes, dot-segments, reserved prefixes, other plugins' prefixes ------------------------
const TA = "target";
for (const [name, target] of [
  ["encoded-slash-escape", "/victim/{t}/..%2Fhealth"],
  ["encoded-slash-lower", "/victim%2f{t}"],
  ["encoded-backslash-escape", "/victim/{t}/..%5Chealth"],
  ["raw-backslash-escape", "/victim/{t}/..\\health"],
  ["all-encoded-escape", "/victim/{t}/%2e%2e%2f%2e%2e%2fhealth"],
  ["encoded-backslash-dots", "/victim/{t}/%2e%2e%5c%2e%2e%5chealth"],
  ["iis-unicode-dots", "/victim/{t}/%u002e%u002e/health"],
  ["above-root", "/victim/{t}/../../../health"],
  ["above-root-encoded", "/victim/{t}/%2e%2e/%2e%2e/%2e%2e/health"],
  ["encoded-nul", "/victim/{t}%00"],
  ["encoded-crlf-header", "/victim/{t}%0d%0aX-Inj:%201"],
  ["encoded-del", "/victim/{t}%7f"],
  ["encoded-esc", "/victim/{t}%1B"],
  ["encoded-tab", "/victim/{t}%09"],
  ["percent-alone", "/victim/{t}%"],
  ["percent-not-hex", "/victim/{t}%g0"],
  ["percent-one-digit", "/victim/{t}%2"],
  ["percent-double", "/victim/{t}%%32%65"],
  ["fragment", "{echo}#frag"],
  ["query-then-fragment", "{echo}?q#f"],
  ["query-control-byte", `{echo}?x=${C(1)}`],
  ["well-known-encoded-slash", "/.well-known/..%2Fvictim/{t}"],
  ["encoded-slash-in-echo", "{echo}/%2F"],
  ["encoded-backslash-upper", "{echo}/%5C"],
] as const) {
  refuse(TA, name, req(`GET ${target} HTTP/1.1`), [400], jsonError("bad request target"));
}
for (const [name, target, status] of [
  ["dots-into-health", "/victim/{t}/%2e%2e/%2e%2e/health", [200]],
  ["upper-dots-into-metrics", "/victim/{t}/%2E%2E/%2E%2E/metrics", [200]],
  ["dots-into-admin", "/victim/{t}/%2e%2e/%2e%2e/admin", [404]],
  ["dots-into-pair", "/victim/{t}/%2e%2e/%2e%2e/pair", [404]],
  ["dots-into-well-known", "/victim/{t}/%2e%2e/%2e%2e/.well-known/x", [404]],
  ["half-encoded-dots", "/victim/{t}/.%2e/.%2e/health", [200]],
  ["other-half-encoded-dots", "/victim/{t}/%2e./%2e./health", [200]],
  ["dot-and-dotdot", "/victim/{t}/./.././../health", [200]],
  ["slashes-and-dots", "/victim/{t}//..//..//health", [200]],
  ["dots-to-root", "/victim/{t}/../..", [404]],
  ["upper-health", "/HEALTH?{t}", [200, 404]],
  ["mixed-case-health", "/hEaLtH?{t}", [200, 404]],
  ["upper-metrics", "/METRICS?{t}", [200, 404]],
  ["upper-admin", "/ADMIN/x?{t}", [404]],
  ["upper-well-known", "/.WELL-KNOWN/x?{t}", [404]],
  ["encoded-h-health", "/%68ealth?{t}", [200]],
  ["encoded-upper-health", "/%48EALTH?{t}", [200, 404]],
  ["double-slash-health", "//health?{t}", [200]],
  ["well-known-dots-metrics", "/.well-known/%2e%2e/metrics?{t}", [200]],
  ["path-parameter-in-prefix", "/victim;x=1/echo/{t}", [404]],
  ["capitalised-prefix", "/Victim/echo/{t}", [404]],
  ["upper-prefix", "/VICTIM/echo/{t}", [404]],
  ["prefix-plus-letter", "/victimx/{t}", [404]],
  ["prefix-plus-dash", "/victim-evil/{t}", [404]],
  ["prefix-plus-dot", "/victim.evil/{t}", [404]],
] as const) {
  daemon(TA, name, req(`GET ${target} HTTP/1.1`), [...status]);
}
for (const [name, target, normal] of [
  ["double-encoded-dots-stay-data", "{echo}/%252e%252e/%252e%252e/health", "{echo}/%252e%252e/%252e%252e/health"],
  ["tomcat-dot-dot-semicolon", "{echo}/..;/..;/health", "{echo}/..;/..;/health"],
  ["overlong-utf8-dots", "{echo}/%c0%ae%c0%ae/health", "{echo}/%C0%AE%C0%AE/health"],
  ["overlong-utf8-slash", "{echo}/..%c0%afhealth", "{echo}/..%C0%AFhealth"],
  ["fullwidth-slash", "{echo}/%ef%bc%8f..%ef%bc%8f", "{echo}/%EF%BC%8F..%EF%BC%8F"],
  ["from-victim2-by-dots", "/victim2/../victim/echo/{t}", "{echo}"],
  ["from-victim2-by-encoded-dots", "/victim2/%2e%2e/victim/echo/{t}", "{echo}"],
  ["from-bystander-by-dots", "/bystander/../victim/echo/{t}", "{echo}"],
  ["from-admin-by-dots", "/admin/%2e%2e/victim/echo/{t}", "{echo}"],
  ["from-health-by-dots", "/health/../victim/echo/{t}", "{echo}"],
  ["leading-dot-segment", "/./victim/echo/{t}", "{echo}"],
  ["inner-dot-segment", "/victim/./echo/{t}", "{echo}"],
  ["encoded-unreserved-prefix", "/%76ictim/echo/{t}", "{echo}"],
  ["encoded-unreserved-decoded", "{echo}/%41%7e", "{echo}/A~"],
  ["reserved-escape-kept-upper", "{echo}/%3a%3b", "{echo}/%3A%3B"],
  ["trailing-encoded-dot", "{echo}/%2E", "{echo}/"],
  ["four-dots-are-a-name", "{echo}/....//...", "{echo}/..../..."],
  ["deep-path", `{echo}/${"a/".repeat(2000)}`, `{echo}/${"a/".repeat(2000)}`],
  ["query-dots-untouched", "{echo}?x=/../../health", "{echo}"],
] as const) {
  serve(TA, name, req(`GET ${target} HTTP/1.1`), pathIs(normal));
}
serve(TA, "query-encoded-crlf-is-data", req("GET {echo}?a=%0d%0aX-Inj:%201 HTTP/1.1"), (r) => {
  assert.equal(echoOf(first(r)).query, "a=%0d%0aX-Inj:%201");
  assert.deepEqual(values(echoOf(first(r)), "x-inj"), []);
});
add(TA, "dots-into-victim2", { bytes: req("GET /victim/{t}/../../victim2/pid HTTP/1.1"), status: [200], route: "victim2" });
add(TA, "dots-into-bystander", { bytes: req("GET /victim/{t}/%2e%2e/%2e%2e/bystander/pid HTTP/1.1"), status: [200], route: "bystander" });

// Host (RFC 9112 §3.2: none, several, or an invalid one on a request: 400) --------------------------
const HO = "host";
const badRequest = jsonError("bad request");
refuse(HO, "missing-on-1.1", "GET /victim/{t} HTTP/1.1\r\n\r\n", [400], badRequest);
refuse(HO, "two-same", req("GET /victim/{t} HTTP/1.1", ["Host: h"]), [400], badRequest);
refuse(HO, "two-different", req("GET /victim/{t} HTTP/1.1", ["Host: evil.example"]), [400], badRequest);
refuse(HO, "two-differing-case", req("GET /victim/{t} HTTP/1.1", ["host: h"]), [400], badRequest);
refuse(HO, "second-after-50-headers", req("GET /victim/{t} HTTP/1.1", [...Array(50).fill("X-F: x"), "Host: evil"]));
// Over max_header_count with the head intact: 431 (the connection may live on; the request is not served).
const tooMany = (category: string, name: string, bytes: string) =>
  add(category, name, { bytes, status: [431], check: jsonError("request header fields too large") });
tooMany(HO, "second-after-2000-empty-headers", req("GET /victim/{t} HTTP/1.1", [...Array(2000).fill("X-E:"), "Host: evil"]));
refuse(HO, "two-on-1.0", "GET /victim/{t} HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
refuse(HO, "folded", "GET /victim/{t} HTTP/1.1\r\nHost: h\r\n evil\r\n\r\n");
for (const [name, value] of [
  ["space", "a b"],
  ["comma", "a,b"],
  ["port-letters", "h:abc"],
  ["two-ports", "h:80:80"],
  ["at-sign", "@evil"],
  ["userinfo", "user@h"],
  ["slash", "evil/path"],
  ["open-bracket", "[::1"],
  ["quote", 'h"x'],
  ["question-mark", "h?x"],
  ["hash", "h#x"],
] as const) {
  refuse(HO, `invalid-${name}`, `GET /victim/{t} HTTP/1.1\r\nHost: ${value}\r\n\r\n`);
}
for (const [name, value] of [
  ["empty", ""],
  ["ipv6-literal", "[::1]:8080"],
  ["max-port", "127.0.0.1:65535"],
] as const) {
  serve(HO, `valid-${name}`, `GET {echo} HTTP/1.1\r\nHost: ${value}\r\n\r\n`);
}

// Header count and size (max_header_count = 100, max_header_bytes = 16384) ---------------------------
const HS = "header-size";
const fillers = (n: number, value = "x") => Array.from({ length: n }, (_, i) => `X-F${i}: ${value}`);
const tooLarge = jsonError("request header fields too large");
serve(HS, "100-lines-accepted", req("GET {echo} HTTP/1.1", fillers(99)));
tooMany(HS, "101-lines", req("GET /victim/{t} HTTP/1.1", fillers(100)));
tooMany(HS, "150-lines", req("GET /victim/{t} HTTP/1.1", fillers(149)));
tooMany(HS, "2000-lines", req("GET /victim/{t} HTTP/1.1", fillers(1999, "")));
tooMany(HS, "101st-is-transfer-encoding", chunked("3\r\nabc\r\n0\r\n\r\n", fillers(99)));
tooMany(HS, "101st-is-x-forwarded-for", req("GET /victim/{t} HTTP/1.1", [...fillers(99), "X-Forwarded-For: 6.6.6.6"]));
serve(HS, "15000-bytes-accepted", req("GET {echo} HTTP/1.1", fillers(30, "v".repeat(480))));
refuse(HS, "one-value-17000", req("GET /victim/{t} HTTP/1.1", [`X-Big: ${"v".repeat(17_000)}`]), [431], tooLarge);
refuse(HS, "one-name-17000", req("GET /victim/{t} HTTP/1.1", [`X-${"n".repeat(17_000)}: v`]), [431]);
refuse(HS, "forty-of-500", req("GET /victim/{t} HTTP/1.1", fillers(40, "v".repeat(500))), [431]);
refuse(HS, "cookie-20000", req("GET /victim/{t} HTTP/1.1", [`Cookie: ${"c=1; ".repeat(4000)}`]), [431]);
const dups = Array.from({ length: 50 }, (_, i) => String(i));
serve(
  HS,
  "50-duplicates-in-order",
  req(
    "GET {echo} HTTP/1.1",
    dups.map((i) => `X-Dup: ${i}`),
  ),
  headerIs("x-dup", dups),
);

// Header syntax ------------------------------------------------------------------------------------
const HX = "header-syntax";
for (const name of ["X-A", "Content-Length", "Transfer-Encoding"]) {
  refuse(HX, `space-before-colon-${name}`, post([`${name} : 3`, "Content-Length: 3"], "abc"));
}
refuse(HX, "space-before-colon-host", "GET /victim/{t} HTTP/1.1\r\nHost : h\r\n\r\n");
refuse(HX, "tab-before-colon", req("GET /victim/{t} HTTP/1.1", ["X-A\t: 1"]));
// RFC 9112 §5.2: obs-fold is refused, or replaced by spaces before the value is used.
either(HX, "obs-fold-space", req("GET {echo} HTTP/1.1", ["X-A: 1", " 2"]), [400, 200], noControls);
either(HX, "obs-fold-tab", req("GET {echo} HTTP/1.1", ["X-A: 1", "\t2"]), [400, 200], noControls);
refuse(HX, "obs-fold-content-length", post(["Content-Length: 3", " 3"], "abc"));
// RFC 9112 §2.2: a line starting with whitespace before the first header is refused or ignored.
either(HX, "whitespace-before-first-header", "GET {echo} HTTP/1.1\r\n X-Evil: 1\r\nHost: h\r\n\r\n", [400, 200], headerIs("x-evil", []));
for (const ch of ["(", ")", "<", ">", "@", ",", ";", "\\", '"', "/", "[", "]", "?", "=", "{", "}", " ", C(0), C(127), "\u00c3\u00a9"]) {
  refuse(HX, `name-char-0x${ch.charCodeAt(0).toString(16)}`, req("GET /victim/{t} HTTP/1.1", [`X${ch}A: 1`]));
}
refuse(HX, "empty-name", req("GET /victim/{t} HTTP/1.1", [": 1"]));
refuse(HX, "no-colon", req("GET /victim/{t} HTTP/1.1", ["X-A 1"]));
refuse(HX, "whitespace-only-line", req("GET /victim/{t} HTTP/1.1", ["   "]));
refuse(HX, "double-cr", req("GET /victim/{t} HTTP/1.1", ["X-A: a\r", "X-B: 1"]));
// RFC 9110 §5.5: CR, LF and NUL in a value are refused or replaced by SP; other controls may be kept
// only where no parser reads them: they never reach a plugin raw.
for (const code of [0, 13, 1, 11, 12, 27, 127]) {
  either(HX, `value-control-0x${code.toString(16)}`, req("GET {echo} HTTP/1.1", [`X-A: a${C(code)}b`]), [400, 200], noControls);
}
serve(HX, "value-obs-text-kept", req("GET {echo} HTTP/1.1", ["X-A: caf\u00e9"]), headerIs("x-a", ["caf\u00e9"]));
serve(HX, "value-inner-tab-kept", req("GET {echo} HTTP/1.1", ["X-A: a\tb"]), headerIs("x-a", ["a\tb"]));
serve(
  HX,
  "connection-names-porticos-headers",
  req("GET {echo} HTTP/1.1", ["Connection: X-Forwarded-For, X-Forwarded-Prefix, X-Request-Id"]),
  ownForwarding,
);
serve(HX, "connection-names-content-length", post(["Connection: content-length", "Content-Length: 3"], "abc"), bodyIs("abc"));
serve(HX, "connection-names-transfer-encoding", chunked("3\r\nabc\r\n0\r\n\r\n", ["Connection: transfer-encoding"]), bodyIs("abc"));
serve(HX, "connection-names-host", req("GET {echo} HTTP/1.1", ["Connection: host"]), headerIs("x-forwarded-host", ["h"]));
add(HX, "connection-close-with-private-header", {
  bytes: req("GET {echo} HTTP/1.1", ["Connection: close, X-Secret", "X-Secret: s"]),
  status: [200],
  close: true,
  reach: "must",
  check: headerIs("x-secret", []),
});

// Framing and smuggling ------------------------------------------------------------------------------
const FR = "framing";
// Content-Length and Transfer-Encoding together (RFC 9112 §6.3): a 400, or the body read as chunked
// (empty here) and the connection closed after the answer. The Content-Length covers the smuggled
// request, so a gateway framing by it would hand that request to the plugin as a body.
const clte = (...te: string[]) => post([...te.map((v) => `Transfer-Encoding: ${v}`), "Content-Length: {cl}"], "0\r\n\r\n{smuggled}");
for (const te of ["chunked", " chunked", "chunked ", "\tchunked", "chunked\t", "Chunked", "CHUNKED", ", chunked", "chunked,"]) {
  refuse(FR, `cl-and-te-${JSON.stringify(te)}`, clte(te), [400, 200], bodyIs(""));
}
// Chunked not last, or not a coding at all: RFC 9112 §6.3 says 400 and close.
for (const te of [
  "xchunked",
  "chunkedx",
  "chunk",
  "chunked, identity",
  "chunked;q=1",
  '"chunked"',
  `${C(11)}chunked`,
  `chunked${C(0)}`,
  "gzip",
] as const) {
  refuse(FR, `cl-and-te-${JSON.stringify(te)}`, clte(te));
}
// Chunked applied twice: no valid message (RFC 9112 §6.1).
for (const te of ["chunked, chunked", "chunked,chunked"]) refuse(FR, `cl-and-te-${JSON.stringify(te)}`, clte(te));
// A coding portico does not decode: 501 (RFC 9112 §6.1) or 400; never passed on as if decoded.
for (const te of ["gzip, chunked", "x, chunked", "deflate, chunked"]) refuse(FR, `cl-and-te-${JSON.stringify(te)}`, clte(te), [400, 501]);
refuse(FR, "cl-and-te-identity-then-chunked", clte("identity, chunked"), [400, 501, 200], bodyIs(""));
refuse(FR, "te-before-cl", post(["Transfer-Encoding: chunked", "Content-Length: 60"], "0\r\n\r\n"), [400, 200], bodyIs(""));
refuse(FR, "two-te-lines-chunked-twice", clte("chunked", "chunked"));
refuse(FR, "two-te-lines-identity-last", clte("chunked", "identity"));
refuse(FR, "two-te-lines-unknown-first", clte("x", "chunked"), [400, 501]);
refuse(FR, "te-space-before-colon", post(["Transfer-Encoding : chunked", "Content-Length: 5"], "0\r\n\r\n"));
refuse(FR, "te-tab-before-colon", post(["Transfer-Encoding\t: chunked", "Content-Length: 5"], "0\r\n\r\n"));
refuse(FR, "te-folded", post(["Transfer-Encoding:", " chunked", "Content-Length: 5"], "0\r\n\r\n"));
for (const te of ["xchunked", "gzip", "identity", "chunked, gzip", '"chunked"']) {
  refuse(FR, `te-alone-${JSON.stringify(te)}`, post([`Transfer-Encoding: ${te}`], "3\r\nabc\r\n0\r\n\r\n"));
}
serve(
  FR,
  "underscore-te-is-no-framing",
  post(["Transfer_Encoding: chunked", "Content-Length: {cl}"], "0\r\n\r\n{smuggled}"),
  bodyIs("0\r\n\r\n{smuggled}"),
);
// HTTP/1.0 with Transfer-Encoding: faulty framing, closed after (RFC 9112 §6.1).
const http10 = "POST {echo} HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n";
refuse(FR, "http10-te-keep-alive", `${http10}\r\n3\r\nabc\r\n0\r\n\r\n`, [200, 400]);
refuse(FR, "http10-te-and-cl-keep-alive", `${http10}Content-Length: 3\r\n\r\n0\r\n\r\n`, [200, 400]);
refuse(FR, "cl-dup-different", post(["Content-Length: 3", "Content-Length: 40"], "abc"));
refuse(FR, "cl-list-different", post(["Content-Length: 3, 40"], "abc"));
either(FR, "cl-dup-same", post(["Content-Length: 3", "Content-Length: 3"], "abc"), [400, 200], bodyIs("abc"));
either(FR, "cl-list-same", post(["Content-Length: 3, 3"], "abc"), [400, 200], bodyIs("abc"));
for (const cl of ["+3", "-3", "0x3", "3.0", "1e3", "3 3", "3a", "", "\u00d9\u00a3", `3${C(0)}`]) {
  refuse(FR, `cl-invalid-${JSON.stringify(cl)}`, post([`Content-Length: ${cl}`], "abc"));
}
refuse(FR, "cl-2^64", post(["Content-Length: 18446744073709551616"], "abc"), [400, 413]);
refuse(FR, "cl-20-digits", post(["Content-Length: 99999999999999999999"], "abc"), [400, 413]);
serve(FR, "cl-leading-zeros", post(["Content-Length: 003"], "abc"), bodyIs("abc"));
serve(FR, "cl-surrounding-whitespace", post(["Content-Length:  3 "], "abc"), bodyIs("abc"));
add(FR, "bytes-past-cl-are-a-bad-request", {
  bytes: post(["Content-Length: 3"], "abcXYZ\r\n\r\n"),
  status: [200],
  reach: "must",
  responses: 2,
  close: true,
  check: (r) => assert.equal(r.responses[1]?.status, 400),
});
for (const [name, body] of [
  ["size-not-hex", "zz\r\nabc\r\n0\r\n\r\n"],
  ["size-negative", "-3\r\nabc\r\n0\r\n\r\n"],
  ["size-0x", "0x3\r\nabc\r\n0\r\n\r\n"],
  ["size-plus", "+3\r\nabc\r\n0\r\n\r\n"],
  ["size-trailing-space", "3 \r\nabc\r\n0\r\n\r\n"],
  ["size-leading-space", " 3\r\nabc\r\n0\r\n\r\n"],
  ["size-trailing-tab", "3\t\r\nabc\r\n0\r\n\r\n"],
  ["size-overflow", "ffffffffffffffffff\r\nabc\r\n0\r\n\r\n"],
  ["ext-no-name", "3;\r\nabc\r\n0\r\n\r\n"],
  ["ext-unterminated-quote", '3;a="b\r\nabc\r\n0\r\n\r\n'],
  ["ext-nul", `3;a${C(0)}\r\nabc\r\n0\r\n\r\n`],
  ["ext-bare-cr", "3;a\rb\r\nabc\r\n0\r\n\r\n"],
  ["data-longer-than-size", "3\r\nabcdef\r\n0\r\n\r\n"],
  ["data-shorter-than-size", "5\r\nabc\r\n0\r\n\r\n"],
  ["no-crlf-after-data", "3\r\nabc0\r\n\r\n"],
  ["bare-lf-after-data", "3\r\nabc\n0\r\n\r\n"],
  ["bare-lf-last-chunk", "3\r\nabc\r\n0\n\n"],
  ["trailer-bad-name", "3\r\nabc\r\n0\r\nX Bad: 1\r\n\r\n"],
  ["trailer-folded", "3\r\nabc\r\n0\r\nX-T: 1\r\n x\r\n\r\n"],
  ["request-as-trailer", "3\r\nabc\r\n0\r\nGET /victim/{s} HTTP/1.1\r\n\r\n"],
] as const) {
  refuse(FR, `chunk-${name}`, chunked(body));
}
serve(FR, "chunk-size-leading-zeros", chunked("0000000000000000000003\r\nabc\r\n0\r\n\r\n"), bodyIs("abc"));
serve(FR, "chunk-extension-ignored", chunked("3;foo=bar\r\nabc\r\n0\r\n\r\n"), bodyIs("abc"));
serve(FR, "chunk-quoted-extension-ignored", chunked('3;a="b;c"\r\nabc\r\n0\r\n\r\n'), bodyIs("abc"));
serve(FR, "thousand-one-byte-chunks", chunked(`${"1\r\na\r\n".repeat(1000)}0\r\n\r\n`), bodyIs("a".repeat(1000)));
refuse(FR, "chunk-extension-flood", chunked(`3;${"x".repeat(20_000)}\r\nabc\r\n0\r\n\r\n`), [400, 413]);
serve(FR, "trailer-not-merged", chunked("3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"), headerIs("x-trailer", []));
// Framing and routing fields in a trailer: refused, or ignored (RFC 9110 §6.5.1).
const trailerIgnored = ifServed((e) => {
  assert.equal(bodyOf(e), "abc");
  assert.deepEqual(values(e, "content-length"), ["3"]);
  assert.deepEqual(values(e, "x-forwarded-host"), ["h"]);
});
for (const line of ["Content-Length: 99", "Transfer-Encoding: chunked", "Host: evil"]) {
  either(
    FR,
    `trailer-${line.slice(0, line.indexOf(":")).toLowerCase()}-ignored`,
    chunked(`3\r\nabc\r\n0\r\n${line}\r\n\r\n`),
    [200, 400],
    trailerIgnored,
  );
}

// Pipelining: nothing after a connection's last answer is served --------------------------------------
const PI = "pipelining";
for (const [name, bytes] of [
  ["connection-close", req("GET {echo} HTTP/1.1", ["Connection: close"])],
  ["connection-close-uppercase", req("GET {echo} HTTP/1.1", ["Connection: CLOSE"])],
  ["connection-keep-alive-and-close", req("GET {echo} HTTP/1.1", ["Connection: keep-alive, close"])],
  ["two-connection-headers", req("GET {echo} HTTP/1.1", ["Connection: keep-alive", "Connection: close"])],
  ["http10-default-close", "GET {echo} HTTP/1.0\r\n\r\n"],
  ["post-then-close", post(["Connection: close", "Content-Length: 3"], "abc")],
] as const) {
  add(PI, name, { bytes, status: [200], close: true, reach: "must", route: "victim" });
}
add(PI, "close-on-no-route", { bytes: req("GET /nowhere/{t} HTTP/1.1", ["Connection: close"]), status: [404], close: true, route: null });
add(PI, "close-on-daemon-route", {
  bytes: req("GET /health?{t} HTTP/1.1", ["Connection: close"]),
  status: [200],
  close: true,
  route: null,
});
add(PI, "bad-request-ends-the-pipeline", {
  bytes: req("GET {echo} HTTP/1.1").repeat(5) + req("GET /victim/{s}/%2F HTTP/1.1") + req("GET /victim/{s} HTTP/1.1").repeat(5),
  status: [200],
  responses: 6,
  close: true,
  reach: "must",
  check: (r) =>
    assert.deepEqual(
      r.responses.map((x) => x.status),
      [200, 200, 200, 200, 200, 400],
    ),
});
const hundred = Array.from({ length: 100 }, (_, i) => `i=${i}`);
add(PI, "hundred-pipelined-answered-in-order", {
  bytes: hundred.map((q) => req(`GET {echo}?${q} HTTP/1.1`)).join(""),
  status: [200],
  responses: 100,
  reach: "must",
  check: (r) =>
    assert.deepEqual(
      r.responses.map((x) => echoOf(x).query),
      hundred,
    ),
});
serve(PI, "get-body-holding-a-request", req("GET {echo} HTTP/1.1", ["Content-Length: {sl}"], "{smuggled}"), bodyIs("{smuggled}"));
serve(PI, "delete-body-holding-a-request", req("DELETE {echo} HTTP/1.1", ["Content-Length: {sl}"], "{smuggled}"), bodyIs("{smuggled}"));
serve(PI, "chunk-holding-a-request", chunked("{sx}\r\n{smuggled}\r\n0\r\n\r\n"), bodyIs("{smuggled}"));
// A body portico answers without reading (no route, its own endpoint, a refused expectation) is
// still consumed as a body, never parsed as the next request.
daemon(PI, "no-route-body-holding-a-request", req("POST /nowhere/{t} HTTP/1.1", ["Content-Length: {sl}"], "{smuggled}"), [404]);
daemon(PI, "health-body-holding-a-request", req("GET /health?{t} HTTP/1.1", ["Content-Length: {sl}"], "{smuggled}"), [200]);
either(PI, "expectation-refused-body-holding-a-request", post(["Content-Length: {sl}", "Expect: teapot"], "{smuggled}"), [200, 417]);

// Bodies (max_body_bytes = 64 KiB) and Expect: 100-continue -------------------------------------------
const BO = "body";
const MAX = 65536;
const tooBig = jsonError("request body too large");
refuse(BO, "cl-over-limit-refused-before-the-body", post([`Content-Length: ${MAX + 1}`], "abc"), [413], tooBig);
refuse(BO, "cl-over-limit-whole-body-sent", post([`Content-Length: ${MAX + 1}`], "b".repeat(MAX + 1)), [413], tooBig);
serve(BO, "cl-at-limit-accepted", post([`Content-Length: ${MAX}`], "b".repeat(MAX)), bodyIs("b".repeat(MAX)));
refuse(BO, "chunked-over-limit", chunked(`8000\r\n${"b".repeat(0x8000)}\r\n8001\r\n${"b".repeat(0x8001)}\r\n0\r\n\r\n`), [413], tooBig);
refuse(BO, "huge-chunk-declared", chunked(`40000000\r\n${"b".repeat(MAX + 1024)}`), [413], tooBig);
refuse(BO, "expect-over-limit-no-100", post([`Content-Length: ${MAX + 1}`, "Expect: 100-continue"], ""), [413], tooBig);
for (const expect of ["100-continue", "100-Continue"]) {
  add(BO, `expect-${expect}-then-body`, {
    bytes: post(["Content-Length: 3", `Expect: ${expect}`], ""),
    more: ["abc"],
    status: [100],
    responses: 2,
    reach: "must",
    check: (r) => assert.equal(bodyOf(echoOf(r.responses[1] as RawResponse)), "abc"),
  });
}
daemon(BO, "expect-to-no-route-no-100", req("POST /nowhere/{t} HTTP/1.1", ["Content-Length: 3", "Expect: 100-continue"]), [404]);
daemon(BO, "expect-to-health-no-100", req("POST /health?{t} HTTP/1.1", ["Content-Length: 3", "Expect: 100-continue"]), [405]);
either(BO, "expect-unknown", post(["Content-Length: 3", "Expect: teapot"], "abc"), [200, 417]);

// Forwarding claims: none of the client's reach the plugin, portico's own do ------------------------
const FW = "forwarding";
for (const line of [
  "X-Forwarded-For: 6.6.6.6",
  "x-forwarded-for: 6.6.6.6",
  "X-FORWARDED-FOR: 6.6.6.6",
  "X-Forwarded-Proto: https",
  "X-Forwarded-Host: evil.example",
  "X-Forwarded-Port: 443",
  "X-Forwarded-Ssl: on",
  "X-Forwarded-Server: evil",
  "X-Forwarded-Prefix: /evil",
  "X-Forwarded-Scheme: https",
  "X-Forwarded-Uri: /admin",
  "Forwarded: for=6.6.6.6;proto=https;host=evil.example",
  "X-Real-IP: 6.6.6.6",
  "X-Client-IP: 6.6.6.6",
  "True-Client-IP: 6.6.6.6",
  "X-Cluster-Client-IP: 6.6.6.6",
  "Client-IP: 6.6.6.6",
  "X_Forwarded_For: 6.6.6.6",
] as const) {
  serve(FW, `spoofed-${line.slice(0, line.indexOf(":"))}`, req("GET {echo} HTTP/1.1", [line]), ownForwarding);
}
serve(
  FW,
  "spoofed-for-three-lines",
  req("GET {echo} HTTP/1.1", ["X-Forwarded-For: 1.1.1.1", "X-Forwarded-For: 2.2.2.2", "X-Forwarded-For: 3.3.3.3"]),
  ownForwarding,
);
serve(
  FW,
  "spoofed-all-at-once",
  req("GET {echo} HTTP/1.1", ["Forwarded: for=1.1.1.1", "X-Real-IP: 1.1.1.1", "X-Forwarded-Host: a"]),
  ownForwarding,
);

// X-Request-Id: a sane token is kept; anything else is replaced by a fresh UUID ----------------------
const ID = "request-id";
for (const [name, value] of [
  ["10k", "a".repeat(10_000)],
  ["129-chars", "a".repeat(129)],
  ["empty", ""],
  ["spaces", "a b c"],
  ["quotes", '"abc"'],
  ["html", "<script>x</script>"],
  ["encoded-crlf", "a%0d%0aSet-Cookie:x"],
  ["obs-text", "caf\u00e9"],
  ["semicolon", "a;b"],
] as const) {
  serve(ID, `replaced-${name}`, req("GET {echo} HTTP/1.1", [`X-Request-Id: ${value}`]), freshId);
}
for (const code of [1, 127])
  either(
    ID,
    `control-0x${code.toString(16)}-never-echoed`,
    req("GET {echo} HTTP/1.1", [`X-Request-Id: a${C(code)}b`]),
    [200, 400],
    freshId,
  );
serve(ID, "two-copies-replaced", req("GET {echo} HTTP/1.1", ["X-Request-Id: one", "X-Request-Id: two"]), freshId);
serve(ID, "sane-token-kept", req("GET {echo} HTTP/1.1", ["X-Request-Id: {t}-Ok.1:2"]), (r, m) => {
  assert.equal(header(first(r), "x-request-id"), `${m.t}-Ok.1:2`);
  assert.deepEqual(values(echoOf(first(r)), "x-request-id"), [`${m.t}-Ok.1:2`]);
});

// Upgrade ------------------------------------------------------------------------------------------
const UP = "upgrade";
const KEY = "dGhlIHNhbXBsZSBub25jZQ==";
const ws = (key = KEY, version = "13") => [
  "Upgrade: websocket",
  "Connection: Upgrade",
  `Sec-WebSocket-Key: ${key}`,
  `Sec-WebSocket-Version: ${version}`,
];
const h2c = ["Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA", "Connection: Upgrade, HTTP2-Settings"];
/** No protocol switch: a plain answer, and the plugin saw none of the upgrade's hop-by-hop headers. */
const plain: Check = (r) => {
  assert.notEqual(first(r).status, 101);
  if (first(r).status !== 200 || !first(r).body.includes('"headers"')) return;
  const names = echoOf(first(r)).headers.map(([k]) => k.toLowerCase());
  for (const h of ["upgrade", "http2-settings", "connection"]) assert.ok(!names.includes(h), `${h} reached the plugin`);
};
serve(UP, "h2c-to-v1-is-a-plain-request", req("GET {echo} HTTP/1.1", h2c), plain);
serve(UP, "websocket-to-v1-is-a-plain-request", req("GET {echo} HTTP/1.1", ws()), plain);
add(UP, "h2c-to-v2-is-a-plain-request", {
  bytes: req("GET /victim2/pid?{t} HTTP/1.1", h2c),
  status: [200],
  route: "victim2",
  check: plain,
});
daemon(UP, "websocket-to-health", req("GET /health?{t} HTTP/1.1", ws()), [200, 400], plain);
daemon(UP, "websocket-to-no-route", req("GET /nowhere/{t} HTTP/1.1", ws()), [404], plain);
const wsRefused = (name: string, headers: string[], status = [400], line = "GET /victim2/ws?{t} HTTP/1.1") =>
  add(UP, name, { bytes: req(line, headers), status, route: "victim2", check: plain });
wsRefused("websocket-key-too-short", ws("abc"));
wsRefused("websocket-key-15-bytes", ws("AAAAAAAAAAAAAAAAAAAA"));
wsRefused("websocket-key-missing", ["Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]);
wsRefused("websocket-key-twice", [...ws(), `Sec-WebSocket-Key: ${KEY}`]);
wsRefused("websocket-version-missing", ["Upgrade: websocket", "Connection: Upgrade", `Sec-WebSocket-Key: ${KEY}`], [400, 426]);
add(UP, "websocket-version-12-names-13", {
  bytes: req("GET /victim2/ws?{t} HTTP/1.1", ws(KEY, "12")),
  status: [400, 426],
  route: "victim2",
  // RFC 6455 §4.2.2: the refusal names the versions the server speaks.
  check: (r) => assert.match(header(first(r), "sec-websocket-version") ?? "", /\b13\b/),
});
wsRefused("websocket-over-post", [...ws(), "Content-Length: 0"], [400, 405], "POST /victim2/ws?{t} HTTP/1.1");
// RFC 9110 §7.8: a server MUST ignore Upgrade in an HTTP/1.0 request; then it is a plain GET.
wsRefused("websocket-on-http10-ignored", ws(), [400, 426, 500], "GET /victim2/ws?{t} HTTP/1.0");
wsRefused(
  "websocket-without-connection-upgrade",
  ["Upgrade: websocket", `Sec-WebSocket-Key: ${KEY}`, "Sec-WebSocket-Version: 13"],
  [400, 426, 500],
);
add(UP, "websocket-valid-handshake-accepted", {
  bytes: req("GET /victim2/ws?{t} HTTP/1.1", ws()),
  status: [101],
  route: "victim2",
  check: (r) => assert.equal(header(first(r), "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
});

// Not HTTP at all ------------------------------------------------------------------------------------
const NH = "not-http";
refuse(NH, "tls-client-hello", Buffer.from("16030100a5010000a10303", "hex"));
refuse(NH, "ssh-banner", "SSH-2.0-OpenSSH_9.6\r\n");
refuse(NH, "smtp-ehlo", "EHLO evil.example\r\n");
refuse(NH, "nul-flood", C(0).repeat(1000));
refuse(NH, "binary", Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 73 + 11) % 256)));
refuse(NH, "json-rpc-frame", '{"jsonrpc":"2.0","method":"broker.publish","params":{}}\r\n\r\n');
