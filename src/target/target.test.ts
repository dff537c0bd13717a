import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { Target } from "./index.js";
import { normalizeTarget, underPrefix } from "./index.js";

const RUNS = { numRuns: 2000 };

/** [raw, expected path (or null: not ok), expected query (default "")] */
type Row = [string, string | null, string?];

/** JSON.stringify leaves DEL and non-ASCII raw: escape them too so test names stay readable. */
const show = (s: string) => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** What the rules decide (the authority of an absolute-form target is compared on its own). */
const core = (t: ReturnType<typeof normalizeTarget>) => (t.ok ? { ok: true, path: t.path, query: t.query } : t);

function table(rows: Row[]): void {
  for (const [raw, path, query = ""] of rows) {
    it(`${show(raw)} → ${path === null ? "not ok" : JSON.stringify(path)}`, () => {
      const t = normalizeTarget(raw);
      if (path === null) {
        assert.equal(t.ok, false, `expected not ok, got ${JSON.stringify(t)}`);
        if (!t.ok) assert.ok(t.reason.length > 0);
      } else {
        assert.deepEqual(core(t), { ok: true, path, query });
      }
    });
  }
}

describe("rule 1: request-target forms", () => {
  table([
    ["/", "/"],
    ["/hello/world?x=1", "/hello/world", "x=1"],
    ["/p?", "/p", ""],
    ["/p?a?b", "/p", "a?b"],
    ["http://x/a", "/a"],
    ["http://x/a?b=1", "/a", "b=1"],
    ["HTTP://x/a", "/a"],
    ["https://example.com:8443/a/b", "/a/b"],
    ["hTtPs://x/", "/"],
    ["http://x", "/"],
    ["http://x?q=1", "/", "q=1"],
    ["http://x/%2e%2e/a", null],
    ["http:///a", null], // no host
    ["http://a b/x", null],
    ["ftp://x/a", null],
    ["http:/x/a", null],
    ["*", null],
    ["example.com:443", null],
    ["", null],
    ["a/b", null],
    ["?q", null],
  ]);

  it("absolute-form reports its authority, for the gateway to judge against Host", () => {
    assert.equal((normalizeTarget("https://example.com:8443/a") as { authority?: string }).authority, "example.com:8443");
    assert.equal((normalizeTarget("http://u:p@x?q") as { authority?: string }).authority, "u:p@x");
    assert.equal((normalizeTarget("/a") as { authority?: string }).authority, undefined);
  });
});

describe("rule 2: forbidden characters anywhere", () => {
  table([
    ["/a b", null],
    ["/é", null],
    ["/a\u0000", null],
    ["/a\t", null],
    ["/a\r\n", null],
    ["/a\u007f", null],
    ["/a\u0080", null],
    ["/a#frag", null],
    ["/a\\b", null],
    ["/a?x y", null],
    ["/a?é", null],
    ["/a?x#y", null],
    ["/a?x\\y", null],
    ["/a?x\u001f", null],
    ["http://x\\@y/a", null],
    ["/!$&'()*+,;=:@", "/!$&'()*+,;=:@"],
    ["/a?!$&'()*+,;=:@/?", "/a", "!$&'()*+,;=:@/?"],
  ]);
});

describe("rule 3: percent-encoding in the path", () => {
  table([
    ["/%41", "/A"],
    ["/%61%7a%30%2D%5f%7E%2e", "/az0-_~."],
    ["/%2e%2E", null], // ".." at the root
    ["/a/%2e%2E", "/"],
    ["/a/%2e", "/a/"],
    ["/app/%2e%2e/health", "/health"],
    ["/%3a", "/%3A"],
    ["/%3A", "/%3A"],
    ["/%c3%a9", "/%C3%A9"],
    ["/%C3%A9", "/%C3%A9"],
    ["/%20", "/%20"],
    ["/%25", "/%25"],
    ["/%252e%252e", "/%252e%252e"], // decoded once only: "%25" stays, "2e" is plain text
    ["/%3F%23", "/%3F%23"],
    ["/%2F", null],
    ["/%2f", null],
    ["/app/..%2Fhealth", null],
    ["/%5C", null],
    ["/%5c", null],
    ["/%00", null],
    ["/%0a", null],
    ["/%1F", null],
    ["/%7F", null],
    ["/%7f", null],
    ["/%", null],
    ["/%4", null],
    ["/%4?1", null], // the escape may not borrow from the query
    ["/%zz", null],
    ["/%%41", null],
    ["/a%2", null],
  ]);
});

describe("rule 4: slashes and dot-segments", () => {
  table([
    ["//health", "/health"],
    ["//a///b", "/a/b"],
    ["//", "/"],
    ["/a//", "/a/"],
    ["/a/", "/a/"],
    ["/a/b/..", "/a/"],
    ["/a/.", "/a/"],
    ["/a/./b", "/a/b"],
    ["/./a", "/a"],
    ["/.", "/"],
    ["/a/..", "/"],
    ["/a/../", "/"],
    ["/a/b/../c", "/a/c"],
    ["/a//../b", "/b"], // collapse first, then resolve
    ["/..", null],
    ["/../a", null],
    ["/a/../..", null],
    ["/a/b/../../..", null],
    ["/./..", null],
    ["/app/..;/x", "/app/..;/x"], // ";" is data: "..;" is not a dot-segment
    ["/a/...", "/a/..."],
    ["/a/.b/c.", "/a/.b/c."],
    ["/.well-known/x", "/.well-known/x"],
    ["/app/../health?x=1", "/health", "x=1"],
  ]);
});

describe("rule 5: case is preserved", () => {
  table([
    ["/HEALTH", "/HEALTH"],
    ["/App/Api", "/App/Api"],
    ["/%48EALTH", "/HEALTH"],
    ["/%68ealth", "/health"],
  ]);
});

describe("rule 6: the query is passed through raw", () => {
  table([
    ["/a?%zz", "/a", "%zz"],
    ["/a?%2F%2e%2E", "/a", "%2F%2e%2E"],
    ["/a?../..", "/a", "../.."],
    ["/a/../b?%", "/b", "%"],
  ]);
});

describe("underPrefix", () => {
  const rows: [string, string, boolean][] = [
    ["/app", "/app", true],
    ["/app/", "/app", true],
    ["/app/x", "/app", true],
    ["/apple", "/app", false],
    ["/ap", "/app", false],
    ["/api/v1/x", "/api/v1", true],
    ["/api/v10", "/api/v1", false],
    ["/APP", "/app", false],
    ["/anything", "", true],
    ["/anything", "/", true],
  ];
  for (const [path, prefix, want] of rows) {
    it(`underPrefix(${path}, ${prefix}) = ${want}`, () => assert.equal(underPrefix(path, prefix), want));
  }
});

// ---------------------------------------------------------------------------------------------
// Property tests.

const HEXDIGIT = "0123456789ABCDEF";
const isUnreserved = (c: string) => /^[A-Za-z0-9\-._~]$/.test(c);

/** Targets built from pieces chosen to hit every rule and every trick at once. */
const FRAGMENTS = [
  "/",
  "//",
  ".",
  "..",
  "%2e",
  "%2E",
  "%2f",
  "%2F",
  "%5c",
  "%5C",
  "\\",
  "health",
  "HEALTH",
  "Health",
  "app",
  "api",
  "h",
  "%68",
  "%48",
  "ealth",
  "%65alth",
  "?",
  "%",
  "%2",
  "%00",
  "%1f",
  "%7F",
  "%41",
  "%3a",
  "%C3%a9",
  "%25",
  ";",
  "..;",
  "x",
  "~",
  "%7e",
  "#",
  " ",
  "é",
  "=&",
];
const targetArb = fc.oneof(
  fc
    .tuple(
      fc.constantFrom("", "/", "/", "/", "http://h", "HTTP://h", "https://h:8443", "*", "h:80"),
      fc.array(fc.constantFrom(...FRAGMENTS), { maxLength: 12 }),
    )
    .map(([start, parts]) => start + parts.join("")),
  // Biased toward the attack shape: a plugin prefix, a climb spelled some way, then "health".
  fc
    .tuple(
      fc.constantFrom("/app", "/%61pp", "/APP", "http://h/app", "", "/"),
      fc.array(fc.constantFrom("/", "..", ".", "%2e", "%2E", "%2f", "%5c", "\\", ";", "x", "//"), { maxLength: 8 }),
      fc.constantFrom("health", "%68ealth", "HEALTH", "h%65alth", "health/x", "healthz", "health?x"),
    )
    .map(([a, b, c]) => a + b.join("") + c),
  fc.string({ unit: "binary-ascii", maxLength: 24 }).map((s) => `/${s}`),
  fc.string({ maxLength: 16 }),
);

/**
 * The rules written as plainly as possible (regexes, split, no fast path), to check the real
 * implementation against.
 */
function model(raw: string): Target {
  const bad: Target = { ok: false, reason: "model" };
  // Anything outside printable ASCII (U+0021..U+007E, so every control character and space), '#' or '\'.
  if (/[^\u0021-\u007e]|[#\\]/.test(raw)) return bad;
  const abs = /^https?:\/\/([^/?]*)(.*)$/is.exec(raw);
  let rest = raw;
  if (abs) {
    const [, host, tail = ""] = abs; // both groups always take part in a match
    if (host === "") return bad;
    rest = tail === "" ? "/" : tail.startsWith("?") ? `/${tail}` : tail;
  }
  if (!rest.startsWith("/")) return bad;
  const q = rest.indexOf("?");
  const rawPath = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? "" : rest.slice(q + 1);
  if (/%(?![0-9a-fA-F]{2})/.test(rawPath)) return bad;
  let refused = false;
  const decoded = rawPath.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => {
    const c = String.fromCharCode(parseInt(h, 16));
    if (c === "/" || c === "\\" || c < " " || c === "\u007f") refused = true;
    return isUnreserved(c) ? c : `%${h.toUpperCase()}`;
  });
  if (refused) return bad;
  const segs = decoded.replace(/\/+/g, "/").split("/").slice(1);
  const out: string[] = [];
  for (const s of segs) {
    if (s === "..") {
      if (out.length === 0) return bad;
      out.pop();
    } else if (s !== "." && s !== "") {
      out.push(s);
    }
  }
  const last = segs[segs.length - 1];
  const trailing = last === "" || last === "." || last === "..";
  const path = out.length === 0 ? "/" : `/${out.join("/")}${trailing ? "/" : ""}`;
  return { ok: true, path, query };
}

/** What a careless server would do: decode every escape, treat '\' as '/', resolve, clamp at root. */
function naive(raw: string): string {
  let path = raw.replace(/^https?:\/\/[^/?]*/i, "");
  const q = path.indexOf("?");
  if (q >= 0) path = path.slice(0, q);
  path = path.replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
  const out: string[] = [];
  for (const s of path.replace(/\\/g, "/").split("/")) {
    if (s === "..") out.pop();
    else if (s !== "." && s !== "") out.push(s);
  }
  return `/${out.join("/")}`;
}

function checkInvariants(path: string): void {
  assert.ok(path.startsWith("/"), "starts with '/'");
  assert.ok(!path.includes("//"), "no '//'");
  for (const seg of path.split("/")) assert.ok(seg !== "." && seg !== "..", "no dot-segment");
  assert.ok(!/[^\u0021-\u007e]|[#\\?]/.test(path), "no forbidden char"); // nothing outside printable ASCII, no '#', '\', '?'
  for (const [pct] of path.matchAll(/%../g)) {
    const h = pct.slice(1);
    assert.match(h, /^[0-9A-F]{2}$/, "escapes are well-formed, upper-case");
    const c = String.fromCharCode(parseInt(h, 16));
    assert.ok(!isUnreserved(c), `no encoded unreserved char (%${h})`);
    assert.ok(!(c === "/" || c === "\\" || c < " " || c === "\u007f"), `no refused escape (%${h})`);
  }
}

describe("properties", () => {
  it("agrees with the plain model of the rules", () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const got = normalizeTarget(raw);
        const want = model(raw);
        if (want.ok) assert.deepEqual(core(got), want);
        else assert.equal(got.ok, false, JSON.stringify(got));
      }),
      RUNS,
    );
  });

  it("is idempotent", () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const t = normalizeTarget(raw);
        if (!t.ok) return;
        assert.deepEqual(normalizeTarget(t.path), { ok: true, path: t.path, query: "" });
        const withQuery = t.path + (t.query ? `?${t.query}` : "");
        assert.deepEqual(normalizeTarget(withQuery), core(t));
      }),
      RUNS,
    );
  });

  it("output path satisfies the invariants", () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const t = normalizeTarget(raw);
        if (t.ok) checkInvariants(t.path);
      }),
      RUNS,
    );
  });

  it("no spelling reaches another space", () => {
    const SEGMENTS = [
      "health",
      "HEALTH",
      "app",
      "api",
      ".",
      "..",
      "",
      "a%2Fb",
      "a%2fb",
      "%5C",
      "%3A",
      "%3a",
      ";",
      "..;",
      "a.b",
      "~x",
      "%C3%A9",
      "%25",
      "%2541",
    ];
    const NAMES = ["x", "health", "app", "a.b", "..;", "%3A"];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...SEGMENTS), { minLength: 1, maxLength: 8 }), fc.gen(), (segs, g) => {
        const randomCase = (h: string) => (g(fc.boolean) ? h.toLowerCase() : h.toUpperCase());
        // Encode unreserved chars at random (random hex case); re-case existing escapes.
        const spellSegment = (seg: string) =>
          (seg.match(/%[0-9A-Fa-f]{2}|./g) ?? [])
            .map((tok) => {
              if (tok.length === 3) return `%${randomCase(tok.slice(1))}`;
              if (!isUnreserved(tok) || !g(fc.boolean)) return tok;
              const v = tok.charCodeAt(0);
              return `%${randomCase(HEXDIGIT.charAt(v >> 4) + HEXDIGIT.charAt(v & 15))}`;
            })
            .join("");
        const pieces: string[] = [];
        for (const seg of segs) {
          // Insertions go before a segment, never after the last (that would add a trailing '/').
          for (let n = g(fc.nat, 2); n > 0; n--) {
            if (g(fc.boolean)) pieces.push(spellSegment(g(fc.constantFrom, ...NAMES)), spellSegment(".."));
            else pieces.push(spellSegment("."));
          }
          pieces.push(spellSegment(seg));
        }
        let spelling = g(fc.constantFrom, "", "", "http://h", "HTTPS://h");
        for (const p of pieces) spelling += "/".repeat(g(fc.integer, { min: 1, max: 3 })) + p;

        const canonical = normalizeTarget(`/${segs.join("/")}`);
        const spelled = normalizeTarget(spelling);
        if (canonical.ok) assert.deepEqual(core(spelled), canonical, `spelling ${spelling}`);
        else assert.equal(spelled.ok, false, `spelling ${spelling} → ${JSON.stringify(spelled)}`);
      }),
      { numRuns: 5000 },
    );
  });

  it("no encoding trick routes a /health-bound request to /app", () => {
    fc.assert(
      fc.property(targetArb, (raw) => {
        const t = normalizeTarget(raw);
        if (!t.ok) return;
        assert.ok(!(underPrefix(t.path, "/app") && underPrefix(t.path, "/health")));
        const careless = naive(raw);
        if (underPrefix(careless, "/health")) assert.ok(underPrefix(t.path, "/health"), `${raw} → ${t.path}`);
        // The router compares reserved prefixes case-insensitively: hold the same line there.
        if (underPrefix(careless.toLowerCase(), "/health")) {
          assert.ok(underPrefix(t.path.toLowerCase(), "/health"), `${raw} → ${t.path}`);
        }
        if (underPrefix(t.path.toLowerCase(), "/app")) {
          assert.ok(!underPrefix(careless.toLowerCase(), "/health"), `${raw} → ${t.path}`);
        }
      }),
      { numRuns: 5000 },
    );
  });

  it("never throws, on any string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 40 }), (raw) => {
        const t = normalizeTarget(raw);
        if (t.ok) checkInvariants(t.path);
      }),
      RUNS,
    );
  });
});
