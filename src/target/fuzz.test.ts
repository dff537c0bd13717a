// Fuzz tests for normalizeTarget, beyond the properties in target.test.ts (which draw targets from
// fragments chosen for the rules): here the input is anything a client can put in a request line —
// every UTF-16 code unit (lone surrogates too), long inputs, dense runs of '%', '.', '/' — and the
// questions are the ones routing depends on: it never throws, an ok path is canonical and stays
// what it is when normalized again, the fast path (the target returned as is) agrees with the slow
// one (decode and resolve), and nothing climbs above the root, however '..' is spelled.
import assert from "node:assert/strict";
import { posix } from "node:path";
import { describe, test } from "node:test";
import fc from "fast-check";
import { normalizeTarget, type Target } from "./index.js";

const budget = (numRuns: number, ms = 2500) => ({ numRuns, interruptAfterTimeLimit: ms });

const isUnreserved = (c: string) => /^[A-Za-z0-9\-._~]$/.test(c);

/** `%` and two characters that are often hex digits, in either case, and sometimes not. */
const escapeArb = fc
  .tuple(
    fc.constantFrom(..."0123456789abcdefABCDEFgG%/ "),
    fc.constantFrom(..."0123456789abcdefABCDEFgG%/ "),
    fc.constantFrom(3, 3, 3, 2, 1),
  )
  .map(([a, b, n]) => `%${a}${b}`.slice(0, n));

/** Strings built from what normalization cares about, packed close together. */
const denseArb = fc
  .tuple(
    fc.constantFrom("", "/", "/", "/", "//", "http://h", "HTTPS://h:1", "http://", "*", "h:80"),
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom("/", ".", "..", "a", "Z", "9", "-", "_", "~", ";", "?", "%2e", "%2E", "%25") },
        { weight: 3, arbitrary: escapeArb },
        {
          weight: 1,
          arbitrary: fc.constantFrom("%7F", "%7f", "%00", "%1F", "%20", "%2F", "%2f", "%5C", "%5c", "%C3%A9", "%ff", "%3F", "%23"),
        },
        { weight: 1, arbitrary: fc.constantFrom("#", "\\", " ", "\t", "\u0000", "\u007f", "\u0080", "é", "\ud800", "\udc00", "😀") },
      ),
      { maxLength: 40 },
    ),
  )
  .map(([start, parts]) => start + parts.join(""));

/** Any UTF-16 code units at all (lone surrogates included), now and then among printable ASCII. */
const unitsArb = fc
  .tuple(
    fc.constantFrom("", "/"),
    fc.array(
      fc.oneof(
        { weight: 30, arbitrary: fc.integer({ min: 0x21, max: 0x7e }) },
        { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) },
      ),
      { maxLength: 40 },
    ),
  )
  .map(([start, units]) => start + String.fromCharCode(...units));

/** Long paths: many segments, deep climbs. */
const longArb = fc
  .array(fc.constantFrom("a", "bb", ".", "..", "", "%2e%2e", "%41", "%3a", "x.y"), { minLength: 50, maxLength: 400 })
  .map((segs) => `/${segs.join("/")}`);

const anyTarget = fc.oneof(
  denseArb,
  unitsArb,
  longArb,
  fc.string({ unit: "binary", maxLength: 60 }),
  fc.string({ unit: "binary-ascii", maxLength: 60 }).map((s) => `/${s}`),
);

/** The shape of a result: exactly these keys, these types. */
function assertShape(t: Target): void {
  if (t.ok) {
    const keys = Object.keys(t).sort();
    assert.ok(keys.join() === "ok,path,query" || keys.join() === "authority,ok,path,query", `keys ${keys.join()}`);
    assert.equal(typeof t.path, "string");
    assert.equal(typeof t.query, "string");
    if (t.authority !== undefined)
      assert.ok(/^[\x21-\x7e]+$/.test(t.authority) && !/[/?#\\]/.test(t.authority), `authority ${t.authority}`);
  } else {
    assert.deepEqual(Object.keys(t).sort(), ["ok", "reason"]);
    assert.ok(typeof t.reason === "string" && t.reason.length > 0, "a reason");
  }
}

/** What routing sees of a result: ok, path and query (an absolute-form target's authority aside). */
const routed = (t: Target) => (t.ok ? { ok: true, path: t.path, query: t.query } : { ok: false });

/** What routing relies on (src/target/README.md, "Consequences"). */
function assertCanonical(path: string): void {
  assert.equal(path[0], "/", "starts with '/'");
  assert.ok(!path.includes("//"), "no '//'");
  assert.ok(!/[^\x21-\x7e]/.test(path), "no control, space, DEL or non-ASCII");
  assert.ok(!/[#?\\]/.test(path), "no '#', '?' or '\\'");
  const segs = path.split("/");
  assert.ok(!segs.includes(".") && !segs.includes(".."), "no dot-segment");
  assert.ok(!/%(?![0-9A-F]{2})/.test(path), "every '%' starts an upper-case escape");
  for (const [, hex] of path.matchAll(/%([0-9A-F]{2})/g)) {
    const v = Number.parseInt(hex as string, 16);
    const c = String.fromCharCode(v);
    assert.ok(!isUnreserved(c), `no encoded unreserved character (%${hex})`);
    assert.ok(v >= 0x20 && v !== 0x7f && c !== "/" && c !== "\\", `no %2F, %5C or encoded control (%${hex})`);
  }
}

describe("fuzz: normalizeTarget", () => {
  test("never throws; every ok path is canonical", () => {
    fc.assert(
      fc.property(anyTarget, (raw) => {
        const t = normalizeTarget(raw);
        assertShape(t);
        if (t.ok) assertCanonical(t.path);
      }),
      budget(5000),
    );
  });

  test("normalizing an ok result again gives it back", () => {
    fc.assert(
      fc.property(anyTarget, (raw) => {
        const t = normalizeTarget(raw);
        if (!t.ok) return;
        assert.deepEqual(normalizeTarget(t.path), { ok: true, path: t.path, query: "" });
        assert.deepEqual(normalizeTarget(`${t.path}?${t.query}`), { ok: true, path: t.path, query: t.query });
        assert.deepEqual(routed(normalizeTarget(`http://h${t.path}?${t.query}`)), routed(t));
      }),
      budget(5000),
    );
  });

  test("the fast path agrees with the slow one: a '.' or 'x/..' detour, or absolute-form, changes nothing", () => {
    fc.assert(
      fc.property(
        anyTarget.map((s) => (s.startsWith("/") ? s : `/${s}`)),
        (raw) => {
          const t = normalizeTarget(raw);
          // `/.` + raw and `/x/..` + raw take the slow path (they are not in final form); raw may not.
          for (const other of [`/.${raw}`, `/x/..${raw}`, `/%78/%2e%2E${raw}`, `HTTP://h${raw}`]) {
            const o = normalizeTarget(other);
            if (t.ok) assert.deepEqual(routed(o), routed(t), `${JSON.stringify(other)} vs ${JSON.stringify(raw)}`);
            else assert.equal(o.ok, false, `${JSON.stringify(other)} → ${JSON.stringify(o)}, but ${JSON.stringify(raw)} is refused`);
          }
        },
      ),
      budget(3000),
    );
  });

  test("no spelling of '..' climbs above the root; within it, the path is the walk's", () => {
    const DOT = [".", "%2e", "%2E"];
    const DOTDOT = ["..", ".%2e", "%2E.", "%2e%2E", "%2E%2E"];
    // Names, some of them traps: "...", "..;" and ".a" are plain names, "%252e%252e" is not '..' (one decoding only).
    const NAMES = ["a", "%41", "b.c", "...", "..;", ".a", "%2e%2e%2e", "%252e%252e", "%2e%252e", "~"];
    const segArb = fc.oneof(
      fc.constantFrom(...DOT).map((spelling) => ({ kind: "." as const, spelling })),
      fc.constantFrom(...DOTDOT).map((spelling) => ({ kind: ".." as const, spelling })),
      fc.constantFrom(...NAMES).map((spelling) => ({ kind: "name" as const, spelling })),
      fc.constant({ kind: "" as const, spelling: "" }),
    );
    fc.assert(
      fc.property(fc.constantFrom("", "http://h", "HTTPS://h:8443"), fc.array(segArb, { minLength: 1, maxLength: 14 }), (start, segs) => {
        const raw = `${start}/${segs.map((s) => s.spelling).join("/")}`;
        const stack: string[] = [];
        let climbed = false;
        for (const s of segs) {
          if (s.kind === "..") {
            if (stack.length === 0) climbed = true;
            stack.pop();
          } else if (s.kind === "name") {
            stack.push(s.spelling.replace(/%(2e|2E|41)/g, (e) => String.fromCharCode(Number.parseInt(e.slice(1), 16))));
          }
        }
        const t = normalizeTarget(raw);
        if (climbed) {
          assert.equal(t.ok, false, `${raw} climbs above the root but gave ${JSON.stringify(t)}`);
          return;
        }
        const last = segs[segs.length - 1];
        const trailing = last !== undefined && last.kind !== "name";
        const want = stack.length === 0 ? "/" : `/${stack.join("/")}${trailing ? "/" : ""}`;
        assert.deepEqual(routed(t), { ok: true, path: want, query: "" }, raw);
      }),
      budget(3000),
    );
  });

  test("an ok path, decoded once by a careless server and resolved as a file path, stays inside its root", () => {
    const JAIL = "/srv/www";
    fc.assert(
      fc.property(anyTarget, (raw) => {
        const t = normalizeTarget(raw);
        if (!t.ok) return;
        const decoded = t.path.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
        const file = posix.resolve(JAIL, `.${decoded}`);
        assert.ok(file === JAIL || file.startsWith(`${JAIL}/`), `${JSON.stringify(raw)} → ${t.path} → ${file}`);
      }),
      budget(3000),
    );
  });
});
