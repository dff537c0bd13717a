/**
 * End to end over real HTTP against real plugin processes: what the plugin receives (the nexo v1
 * request payload, request headers after the proxy rules), what the client gets back (reply headers,
 * HEAD/204/304 framing), request ids, and keep-alive.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Agent } from "node:http";
import { after, before, describe, test } from "node:test";
import { type Echo, type Running, startPortico } from "./support/portico.js";
import { header, headerAll, httpRequest, only, rawGet, rawRequest } from "./support/raw-http.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

let p: Running;
/** Same plugin, behind a portico told to trust the proxy in front of it. */
let trusted: Running;
before(async () => {
  [p, trusted] = await Promise.all([startPortico([{ id: "alpha" }]), startPortico([{ id: "alpha" }], { trustProxy: true })]);
});
after(async () => {
  await Promise.all([p?.close(), trusted?.close()]);
});

function parseEcho(body: Buffer): Echo {
  return JSON.parse(body.toString()) as Echo;
}

/** A target for the fixture's /reply route: the plugin answers exactly this status, headers and body. */
function replyTarget(status: number, headers: [string, string][], body = ""): string {
  const b64 = (x: string) => Buffer.from(x).toString("base64url");
  return `/alpha/reply/${status}?h=${b64(JSON.stringify(headers))}&b=${b64(body)}`;
}

function names(headers: [string, string][]): string[] {
  return headers.map(([k]) => k.toLowerCase());
}

/** The forwarding headers portico appends, in order, after the client's own. */
function forwarded(port: number, host = `127.0.0.1:${port}`, prefix = "/alpha"): [string, string][] {
  return [
    ["X-Forwarded-For", "127.0.0.1"],
    ["X-Forwarded-Proto", "http"],
    ["X-Forwarded-Host", host],
    ["X-Forwarded-Prefix", prefix],
  ];
}

describe("the v1 request payload the plugin receives", { timeout: 30_000 }, () => {
  test("method, full path, raw query, headers in order with case and duplicates, every byte value of the body", async () => {
    const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const head = [
      "PUT /alpha/echo/x?b=2&a=1&a=3&empty=&flag HTTP/1.1",
      `Host: 127.0.0.1:${p.port}`,
      "X-Dup: one",
      "x-mixed-CASE: Value With  Spaces",
      "X-Dup: two",
      "Content-Type: application/octet-stream",
      "Accept: */*",
      `Content-Length: ${body.length}`,
      "",
      "",
    ].join("\r\n");
    const { responses } = await rawRequest(p.port, Buffer.concat([Buffer.from(head, "latin1"), body]));
    const res = responses[0];
    assert.ok(res);
    assert.equal(res.status, 200);
    const echo = parseEcho(res.body);
    assert.equal(echo.method, "PUT");
    assert.equal(echo.path, "/alpha/echo/x");
    assert.equal(echo.query, "b=2&a=1&a=3&empty=&flag");
    const requestId = header(res, "x-request-id");
    assert.match(requestId ?? "", UUID);
    assert.deepEqual(echo.headers, [
      ["Host", `127.0.0.1:${p.port}`],
      ["X-Dup", "one"],
      ["x-mixed-CASE", "Value With  Spaces"],
      ["X-Dup", "two"],
      ["Content-Type", "application/octet-stream"],
      ["Accept", "*/*"],
      ["Content-Length", "256"],
      ...forwarded(p.port),
      ["X-Request-Id", requestId],
    ]);
    assert.equal(echo.body_base64, body.toString("base64"));
    assert.deepEqual(Buffer.from(echo.body_base64, "base64"), body);
  });

  test("no body: body_base64 is the empty string; the query is empty when there is none", async () => {
    const res = await httpRequest(`${p.url}/alpha/echo`);
    const echo = parseEcho(res.body);
    assert.equal(echo.method, "GET");
    assert.equal(echo.query, "");
    assert.equal(echo.body_base64, "");
    // A bare '?' is an empty query too.
    assert.equal(parseEcho((await httpRequest(`${p.url}/alpha/echo?`)).body).query, "");
  });

  test("a larger random binary body arrives intact (fetch, Content-Length)", async () => {
    const body = randomBytes(300 * 1024);
    const res = await fetch(`${p.url}/alpha/echo`, { method: "POST", body, headers: { "content-type": "application/octet-stream" } });
    assert.equal(res.status, 200);
    const echo = (await res.json()) as Echo;
    assert.equal(echo.method, "POST");
    assert.ok(Buffer.from(echo.body_base64, "base64").equals(body));
  });

  test("a chunked body arrives whole, with a Content-Length instead of Transfer-Encoding", async () => {
    const parts = [randomBytes(1000), randomBytes(1), randomBytes(4096)];
    const chunks = parts.map((b) => Buffer.concat([Buffer.from(`${b.length.toString(16)}\r\n`), b, Buffer.from("\r\n")]));
    const head = Buffer.from(rawGet("/alpha/echo", ["Transfer-Encoding: chunked"], "POST"), "latin1");
    const { responses } = await rawRequest(p.port, Buffer.concat([head, ...chunks, Buffer.from("0\r\n\r\n")]));
    const res = responses[0];
    assert.ok(res);
    assert.equal(res.status, 200);
    const echo = parseEcho(res.body);
    const all = Buffer.concat(parts);
    assert.ok(Buffer.from(echo.body_base64, "base64").equals(all));
    assert.ok(!names(echo.headers).includes("transfer-encoding"));
    assert.deepEqual(
      echo.headers.filter(([k]) => k.toLowerCase() === "content-length"),
      [["Content-Length", String(all.length)]],
    );
  });
});

describe("request headers at the proxy boundary", { timeout: 30_000 }, () => {
  test("hop-by-hop headers, and headers named in Connection, are stripped", async () => {
    const { responses } = await rawRequest(
      p.port,
      rawGet("/alpha/echo", [
        "Connection: keep-alive, X-Private, x-other-private",
        "Connection: X-Third",
        "Keep-Alive: timeout=5",
        "TE: trailers",
        "Trailer: X-T",
        "Upgrade: h2c",
        "Proxy-Authorization: Basic dXNlcjpwYXNz",
        "Proxy-Connection: keep-alive",
        "X-Private: secret",
        "X-Other-Private: secret",
        "X-Third: secret",
        "X-Keep: kept",
        "Authorization: Bearer end-to-end",
      ]),
    );
    const res = responses[0];
    assert.ok(res);
    assert.equal(res.status, 200);
    const echo = parseEcho(res.body);
    const seen = names(echo.headers);
    for (const h of [
      "connection",
      "keep-alive",
      "te",
      "trailer",
      "upgrade",
      "proxy-authorization",
      "proxy-connection",
      "x-private",
      "x-other-private",
      "x-third",
      "transfer-encoding",
    ]) {
      assert.ok(!seen.includes(h), `${h} must not reach the plugin: ${JSON.stringify(echo.headers)}`);
    }
    assert.deepEqual(echo.headers.slice(0, 3), [
      ["Host", "127.0.0.1"],
      ["X-Keep", "kept"],
      ["Authorization", "Bearer end-to-end"],
    ]);
  });

  test("X-Forwarded-For/-Proto/-Host/-Prefix and X-Request-Id are set; a client's spoofed copies are dropped", async () => {
    const { responses } = await rawRequest(
      p.port,
      rawGet("/alpha/echo", [
        "X-Forwarded-For: 6.6.6.6",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: evil.example",
        "X-Forwarded-Prefix: /evil",
        "x-forwarded-for: 7.7.7.7",
        "Forwarded: for=6.6.6.6;proto=https",
      ]),
    );
    const res = responses[0];
    assert.ok(res);
    const echo = parseEcho(res.body);
    assert.deepEqual(echo.headers, [
      ["Host", "127.0.0.1"],
      ...forwarded(p.port, "127.0.0.1"),
      ["X-Request-Id", header(res, "x-request-id") as string],
    ]);
  });

  test("with trustProxy, the client's X-Forwarded-* are kept and its For chain is appended to", async () => {
    const { responses } = await rawRequest(
      trusted.port,
      rawGet("/alpha/echo", [
        "X-Forwarded-For: 6.6.6.6, 7.7.7.7",
        "X-Forwarded-Proto: https",
        "X-Forwarded-Host: public.example",
        "X-Forwarded-Prefix: /evil",
        "X-Forwarded-For: 8.8.8.8",
        "Forwarded: for=6.6.6.6",
      ]),
    );
    const res = responses[0];
    assert.ok(res);
    const echo = parseEcho(res.body);
    const get = (n: string) => echo.headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
    assert.deepEqual(get("x-forwarded-for"), ["6.6.6.6, 7.7.7.7, 8.8.8.8, 127.0.0.1"]);
    assert.deepEqual(get("x-forwarded-proto"), ["https"]);
    assert.deepEqual(get("x-forwarded-host"), ["public.example"]);
    assert.deepEqual(get("x-forwarded-prefix"), ["/alpha"], "the prefix is always the route's");
    assert.deepEqual(get("forwarded"), ["for=6.6.6.6"]);
    assert.deepEqual(get("x-request-id"), [header(res, "x-request-id")]);
  });

  test("Host: an HTTP/1.1 request with none or two is a 400 (RFC 9112 §3.2); HTTP/1.0 may have none", async () => {
    for (const req of [
      "GET /alpha/echo HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
      "GET /alpha/echo HTTP/1.1\r\nHost: a.example\r\nhost: a.example\r\n\r\n",
      "GET /alpha/echo HTTP/1.1\r\n\r\n",
      "GET /health HTTP/1.1\r\nX-Other: 1\r\n\r\n",
    ]) {
      const res = only(await rawRequest(p.port, req));
      assert.equal(res.statusLine, "HTTP/1.1 400 Bad Request", JSON.stringify(req));
      assert.equal(res.body.toString(), '{"error":"bad request"}');
      assert.match(header(res, "x-request-id") ?? "", UUID);
    }
    // A 400 is the connection's last answer: a request pipelined behind it is not served, and
    // never reaches the plugin.
    for (const [i, first] of [
      "GET /alpha/echo HTTP/1.1\r\n\r\n",
      rawGet("/alpha/..%2Fecho"),
      "GET /alpha/echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ].entries()) {
      const result = await rawRequest(p.port, first + rawGet(`/alpha/smuggled-${i}`), { count: 2, waitClose: true, timeoutMs: 3000 });
      assert.deepEqual(
        result.responses.map((r) => r.status),
        [400],
        `case ${i}`,
      );
      assert.equal(result.closed, true, `case ${i}`);
    }
    const seen = (await (await fetch(`${p.url}/alpha/seen`)).json()) as { paths: string[] };
    assert.deepEqual(
      seen.paths.filter((x) => x.includes("smuggled")),
      [],
    );

    const old = await rawRequest(p.port, "GET /alpha/echo HTTP/1.0\r\n\r\n", { waitClose: true });
    const res = only(old);
    assert.equal(res.status, 200);
    const echo = parseEcho(res.body);
    assert.ok(!names(echo.headers).includes("host"));
    assert.ok(!names(echo.headers).includes("x-forwarded-host"), "no Host, nothing to forward");
    assert.equal(old.closed, true, "HTTP/1.0 without keep-alive: closed after the response");
  });

  test("a valid client X-Request-Id is passed on and echoed; an invalid one is replaced", async () => {
    const good = "Req-123.abc_DEF:456";
    const ok = await httpRequest(`${p.url}/alpha/echo`, { headers: { "X-Request-Id": good } });
    assert.equal(ok.headers["x-request-id"], good);
    assert.deepEqual(
      parseEcho(ok.body).headers.filter(([k]) => k.toLowerCase() === "x-request-id"),
      [["X-Request-Id", good]],
    );

    for (const bad of ["has spaces in it", "a".repeat(129), "semi;colon", 'quote"d', "ünïcode"]) {
      const res = await rawRequest(p.port, Buffer.from(rawGet("/alpha/echo", [`X-Request-Id: ${bad}`]), "utf8"));
      const r = res.responses[0];
      assert.ok(r);
      const id = header(r, "x-request-id");
      assert.match(id ?? "", UUID, JSON.stringify(bad));
      assert.deepEqual(
        parseEcho(r.body).headers.filter(([k]) => k.toLowerCase() === "x-request-id"),
        [["X-Request-Id", id]],
        "the plugin sees only portico's id",
      );
    }
    // Two copies are not one valid id.
    const twice = only(await rawRequest(p.port, rawGet("/alpha/echo", ["X-Request-Id: one", "X-Request-Id: two"])));
    assert.match(header(twice, "x-request-id") ?? "", UUID);
  });

  test("one log line per request, with its id, plugin, status and duration", async () => {
    const id = `log-line-${Date.now()}`;
    await httpRequest(`${p.url}/alpha/sleep/50?x=1`, { headers: { "x-request-id": id } });
    await httpRequest(`${p.url}/nowhere`, { headers: { "x-request-id": `${id}-404` } });
    const lines = p.logs.filter((l) => l.reqId === id);
    assert.equal(lines.length, 1, JSON.stringify(lines));
    const line = lines[0] as Record<string, unknown>;
    assert.equal(line.plugin, "alpha");
    assert.equal(line.status, 200);
    assert.equal(line.method, "GET");
    assert.equal(line.path, "/alpha/sleep/50?x=1");
    assert.ok(typeof line.ms === "number" && line.ms >= 45, `duration ${String(line.ms)}`);
    const miss = p.logs.filter((l) => l.reqId === `${id}-404`);
    assert.equal(miss.length, 1);
    assert.equal(miss[0]?.status, 404);
  });

  test("every response carries X-Request-Id: plugin replies, 204s, errors, the daemon's own", async () => {
    for (const path of [
      "/alpha/echo",
      "/alpha/status/204",
      "/alpha/status/500",
      "/nowhere",
      "/health",
      "/metrics",
      "/admin/x",
      "/alpha/bad/status",
    ]) {
      const id = `id-${path.replace(/\W/g, "")}`;
      const res = await httpRequest(`${p.url}${path}`, { headers: { "x-request-id": id } });
      assert.equal(res.headers["x-request-id"], id, path);
      const fresh = await httpRequest(`${p.url}${path}`);
      assert.match(String(fresh.headers["x-request-id"]), UUID, path);
    }
    // A 400 from portico's target check.
    const bad = only(await rawRequest(p.port, rawGet("/alpha/%00", ["X-Request-Id: abc"])));
    assert.equal(bad.status, 400);
    assert.equal(header(bad, "x-request-id"), "abc");
    // A 400 from node's HTTP parser (a NUL byte in the target): a fresh id, a body, and a close.
    const parser = await rawRequest(p.port, rawGet("/alpha/\x00"), { waitClose: true });
    const r = parser.responses[0];
    assert.ok(r);
    assert.equal(r.statusLine, "HTTP/1.1 400 Bad Request");
    assert.match(header(r, "x-request-id") ?? "", UUID);
    assert.equal(r.body.toString(), '{"error":"bad request target"}');
    assert.equal(parser.closed, true);
  });
});

describe("reply headers and framing", { timeout: 30_000 }, () => {
  test("Location and repeated Set-Cookie reach the client; hop-by-hop and Connection-named ones don't; Content-Length is recomputed", async () => {
    const { responses } = await rawRequest(p.port, rawGet("/alpha/headers"));
    const res = responses[0];
    assert.ok(res);
    assert.equal(res.statusLine, "HTTP/1.1 201 Created");
    assert.equal(header(res, "location"), "/elsewhere");
    assert.deepEqual(headerAll(res, "set-cookie"), ["a=1; Path=/", "b=2; Path=/"]);
    assert.equal(header(res, "x-custom"), "yes");
    assert.equal(header(res, "x-secret"), undefined, "named in the plugin's Connection header");
    assert.equal(header(res, "transfer-encoding"), undefined);
    assert.deepEqual(headerAll(res, "content-length"), ["7"], "the plugin's wrong 9999 is replaced");
    assert.equal(res.body.toString(), "created");
    // node's own connection management, not the plugin's Connection/Keep-Alive values.
    assert.deepEqual(headerAll(res, "connection"), ["keep-alive"]);
    assert.ok(!headerAll(res, "keep-alive").includes("timeout=1"));
    assert.match(header(res, "x-request-id") ?? "", UUID);

    // The same through fetch, which would reject a body shorter than a Content-Length of 9999.
    const viaFetch = await fetch(`${p.url}/alpha/headers`, { redirect: "manual" });
    assert.equal(viaFetch.status, 201);
    assert.deepEqual(viaFetch.headers.getSetCookie(), ["a=1; Path=/", "b=2; Path=/"]);
    assert.equal(await viaFetch.text(), "created");
  });

  test("reply headers spelled by the plugin: every Connection header's names and every hop-by-hop one stripped, the rest kept in order", async () => {
    const { responses } = await rawRequest(
      p.port,
      rawGet(
        replyTarget(
          200,
          [
            ["Connection", "X-First"],
            ["Vary", "Accept"],
            ["X-First", "hop"],
            ["connection", "x-second, close"],
            ["X-Second", "hop"],
            ["Proxy-Authenticate", "Basic"],
            ["Proxy-Connection", "keep-alive"],
            ["Upgrade", "h2c"],
            ["Trailer", "X-T"],
            ["TE", "trailers"],
            ["Vary", "Accept-Encoding"],
            ["X-Empty", ""],
            ["X-Latin1", "caf\u00e9"],
          ],
          "body",
        ),
      ),
    );
    const res = responses[0];
    assert.ok(res);
    assert.equal(res.status, 200);
    const own = res.headers.filter(
      ([k]) => !["date", "connection", "keep-alive", "x-request-id", "content-length"].includes(k.toLowerCase()),
    );
    assert.deepEqual(own, [
      ["Vary", "Accept"],
      ["Vary", "Accept-Encoding"],
      ["X-Empty", ""],
      ["X-Latin1", "caf\u00e9"],
    ]);
    assert.deepEqual(headerAll(res, "connection"), ["keep-alive"], "the plugin's 'close' is not the client connection's");
    assert.equal(res.body.toString(), "body");
    // Outside Latin-1 a value cannot be written on the wire: a malformed reply, not a crash.
    const wide = await httpRequest(`${p.url}${replyTarget(200, [["X-Euro", "\u20ac"]])}`);
    assert.equal(wide.status, 502);
  });

  test("HEAD: no body, the plugin's Content-Length kept", async () => {
    // HEAD then GET on one connection: a body leaked after the HEAD would break the second response.
    const req = rawGet("/alpha/head", [], "HEAD") + rawGet("/alpha/echo?after=head");
    const { responses, rest } = await rawRequest(p.port, req, { count: 2, head: [true, false] });
    assert.equal(responses.length, 2);
    const [head, next] = responses as [(typeof responses)[0], (typeof responses)[0]];
    assert.equal(head.status, 200);
    assert.deepEqual(headerAll(head, "content-length"), ["1234"]);
    assert.equal(next.status, 200);
    assert.equal(parseEcho(next.body).query, "after=head");
    assert.equal(rest.length, 0);
    // The plugin saw a HEAD (it builds the GET body; portico drops it) and no Content-Length from
    // the plugin: the length of the body it built is announced.
    const viaNode = await httpRequest(`${p.url}/alpha/echo`, { method: "HEAD" });
    assert.equal(viaNode.status, 200);
    assert.equal(viaNode.body.length, 0);
    assert.ok(Number(viaNode.headers["content-length"]) > 0);
  });

  test("204: no body and no Content-Length, even when the plugin sends a body", async () => {
    const req = rawGet("/alpha/status/204/body") + rawGet("/alpha/echo?after=204");
    const { responses, rest } = await rawRequest(p.port, req, { count: 2 });
    const [res, next] = responses;
    assert.ok(res && next);
    assert.equal(res.statusLine, "HTTP/1.1 204 No Content");
    assert.deepEqual(headerAll(res, "content-length"), []);
    assert.deepEqual(headerAll(res, "transfer-encoding"), []);
    assert.equal(parseEcho(next.body).query, "after=204");
    assert.equal(rest.length, 0);
  });

  test("304: no body, even when the plugin sends one", async () => {
    const req = rawGet("/alpha/status/304/body") + rawGet("/alpha/echo?after=304");
    const { responses, rest } = await rawRequest(p.port, req, { count: 2 });
    const [res, next] = responses;
    assert.ok(res && next);
    assert.equal(res.statusLine, "HTTP/1.1 304 Not Modified");
    assert.deepEqual(headerAll(res, "transfer-encoding"), []);
    // The plugin gave no Content-Length; the length of the body it wrongly attached is no 200's.
    assert.deepEqual(headerAll(res, "content-length"), []);
    assert.equal(parseEcho(next.body).query, "after=304");
    assert.equal(rest.length, 0);
  });

  test("HEAD on an error: the error's head, no body", async () => {
    const req = rawGet("/nowhere", [], "HEAD") + rawGet("/alpha/echo?after=head404");
    const { responses, rest } = await rawRequest(p.port, req, { count: 2, head: [true, false] });
    const [res, next] = responses;
    assert.ok(res && next);
    assert.equal(res.statusLine, "HTTP/1.1 404 Not Found");
    assert.deepEqual(headerAll(res, "content-length"), [String('{"error":"not found"}'.length)]);
    assert.equal(parseEcho(next.body).query, "after=head404");
    assert.equal(rest.length, 0);
  });

  test("plugin statuses pass through with their reason phrases", async () => {
    for (const [status, reason] of [
      [200, "OK"],
      [201, "Created"],
      [202, "Accepted"],
      [301, "Moved Permanently"],
      [400, "Bad Request"],
      [418, "I'm a Teapot"],
      [500, "Internal Server Error"],
      [503, "Service Unavailable"],
      [599, undefined],
    ] as const) {
      const { responses } = await rawRequest(p.port, rawGet(`/alpha/status/${status}/body`));
      const res = responses[0];
      assert.ok(res);
      assert.equal(res.status, status);
      if (reason) assert.equal(res.reason, reason, String(status));
      assert.equal(res.body.toString(), "some body");
      assert.deepEqual(headerAll(res, "content-length"), ["9"]);
    }
  });
});

describe("keep-alive", { timeout: 30_000 }, () => {
  test("many requests, answers and errors alike, on one connection", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set<number | undefined>();
      const sequence: [string, string, number][] = [
        ["GET", "/alpha/echo?i=1", 200],
        ["GET", "/nowhere", 404],
        ["GET", "/alpha/headers", 201],
        ["HEAD", "/alpha/head", 200],
        ["GET", "/alpha/status/204/body", 204],
        ["GET", "/alpha/status/304", 304],
        ["GET", "/health", 200],
        ["GET", "/alpha/bad/status", 502],
        ["GET", "/admin/x", 404],
        ["POST", "/alpha/echo?i=2", 200],
        ["GET", "/alpha/echo?i=3", 200],
      ];
      for (const [i, [method, path, status]] of sequence.entries()) {
        const res = await httpRequest(`${p.url}${path}`, { method, agent, body: method === "POST" ? "hello" : undefined });
        assert.equal(res.status, status, `${method} ${path}`);
        assert.equal(res.headers.connection, "keep-alive", `${method} ${path}`);
        if (i > 0) assert.equal(res.reusedSocket, true, `${method} ${path} should reuse the connection`);
        ports.add(res.localPort);
      }
      assert.equal(ports.size, 1, `one socket for all requests, saw local ports ${[...ports].join(", ")}`);
    } finally {
      agent.destroy();
    }
  });

  test("a request that says Connection: close is answered, then the connection closes; nothing pipelined behind it is served", async () => {
    for (const [i, first] of [
      rawGet("/alpha/sleep/150?first=1", ["Connection: close"]),
      "GET /alpha/sleep/150?first=1 HTTP/1.0\r\n\r\n",
    ].entries()) {
      const result = await rawRequest(p.port, first + rawGet(`/alpha/after-close-${i}`), { count: 2, waitClose: true, timeoutMs: 3000 });
      const res = only(result);
      assert.equal(res.status, 200, `case ${i}`);
      assert.equal((JSON.parse(res.body.toString()) as { query: string }).query, "first=1");
      assert.deepEqual(headerAll(res, "connection"), ["close"]);
      assert.equal(result.closed, true);
    }
    const seen = (await (await fetch(`${p.url}/alpha/seen`)).json()) as { paths: string[] };
    assert.deepEqual(
      seen.paths.filter((x) => x.includes("after-close")),
      [],
    );
  });

  test("pipelined requests on one connection are answered in order, each with its own reply", async () => {
    const n = 10;
    // Later requests finish first inside the plugin; the answers must still come back in order.
    let req = "";
    for (let i = 0; i < n; i++) req += rawGet(`/alpha/sleep/${(n - i) * 15}?i=${i}`);
    const { responses } = await rawRequest(p.port, req, { count: n, timeoutMs: 5000 });
    assert.equal(responses.length, n);
    responses.forEach((res, i) => {
      assert.equal(res.status, 200);
      assert.equal((JSON.parse(res.body.toString()) as { query: string }).query, `i=${i}`);
    });
  });
});
