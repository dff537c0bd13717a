import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { underPrefix } from "../target/index.js";
import { type Route, RouteError, Router } from "./index.js";

const route = (pluginId: string, prefix: string): Route => ({
  pluginId,
  prefix,
  timeoutMs: 30_000,
  idleTimeoutMs: 300_000,
  maxBodyBytes: 1024,
});

function refused(fn: () => void, reason: RouteError["reason"], ...mentions: string[]): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof RouteError, String(err));
    assert.equal(err.reason, reason);
    for (const m of mentions) assert.ok(err.message.includes(m), `"${err.message}" should mention ${m}`);
    return true;
  });
}

describe("register", () => {
  test("refuses reserved prefixes, their children, their parents and case variants", () => {
    const r = new Router();
    for (const p of [
      "/health",
      "/health/x",
      "/metrics",
      "/pair",
      "/admin/users",
      "/.well-known/acme",
      "/HEALTH",
      "/Admin",
      "/Health/live",
    ]) {
      refused(() => r.register(route("p", p)), "reserved", p);
    }
    refused(() => r.register(route("p", "/")), "invalid");
    assert.equal(r.routes().length, 0);
  });

  test("configured reserved prefixes are refused too", () => {
    const r = new Router(["/health", "/internal/ops"]);
    refused(() => r.register(route("p", "/internal")), "reserved", "/internal/ops");
    refused(() => r.register(route("p", "/internal/ops/x")), "reserved");
    r.register(route("p", "/internal/other"));
    assert.equal(r.match("/internal/ops/x")?.kind, "reserved");
    assert.equal(r.match("/internal/other/x")?.kind, "plugin");
  });

  test("refuses malformed prefixes", () => {
    const r = new Router();
    for (const p of ["", "x", "/x/", "/a//b", "/a/../b", "/a?b", "/a#b", "/a%20b", "/a b"])
      refused(() => r.register(route("p", p)), "invalid");
  });

  test("a second plugin asking for a held prefix is refused, naming both", () => {
    const r = new Router();
    r.register(route("first", "/app"));
    refused(() => r.register(route("second", "/app")), "taken", "first", "second", "/app");
    refused(() => r.register(route("second", "/APP")), "taken", "first");
    assert.equal(r.match("/app/x")?.kind === "plugin" && r.match("/app/x")?.kind, "plugin");
  });

  test("a plugin re-registering replaces its own route", () => {
    const r = new Router();
    r.register(route("p", "/old"));
    r.register(route("p", "/new"));
    assert.equal(r.match("/old/x"), undefined);
    assert.deepEqual(
      r.routes().map((x) => x.prefix),
      ["/new"],
    );
    r.register({ ...route("p", "/new"), timeoutMs: 5 });
    assert.equal(r.routeOf("p")?.timeoutMs, 5);
  });

  test("a failed registration leaves the table unchanged", () => {
    const r = new Router();
    r.register(route("p", "/mine"));
    refused(() => r.register(route("p", "/health")), "reserved");
    assert.deepEqual(
      r.routes().map((x) => x.prefix),
      ["/mine"],
    );
  });
});

describe("match", () => {
  const r = new Router();
  r.register(route("api", "/api"));
  r.register(route("v1", "/api/v1"));
  r.register(route("deep", "/a/b/c"));

  const pluginOf = (path: string) => {
    const m = r.match(path);
    return m?.kind === "plugin" ? m.route.pluginId : m?.kind;
  };

  test("longest prefix wins, on whole segments only", () => {
    assert.equal(pluginOf("/api"), "api");
    assert.equal(pluginOf("/api/"), "api");
    assert.equal(pluginOf("/api/users"), "api");
    assert.equal(pluginOf("/api/v1"), "v1");
    assert.equal(pluginOf("/api/v1/users/7"), "v1");
    assert.equal(pluginOf("/api/v10"), "api");
    assert.equal(pluginOf("/apiary"), undefined);
    assert.equal(pluginOf("/a/b"), undefined);
    assert.equal(pluginOf("/a/b/c/d"), "deep");
    assert.equal(pluginOf("/"), undefined);
  });

  test("the reserved space is matched case-insensitively", () => {
    assert.equal(pluginOf("/health"), "reserved");
    assert.equal(pluginOf("/HEALTH"), "reserved");
    assert.equal(pluginOf("/Metrics/x"), "reserved");
    assert.equal(pluginOf("/healthz"), undefined);
  });

  test("agrees with a linear scan over random tables and paths", () => {
    const seg = fc.constantFrom("a", "b", "api", "v1", "x", "A");
    const prefixArb = fc.array(seg, { minLength: 1, maxLength: 4 }).map((s) => `/${s.join("/")}`);
    fc.assert(
      fc.property(
        fc.uniqueArray(prefixArb, { maxLength: 12, selector: (p) => p.toLowerCase() }),
        fc.array(seg, { maxLength: 6 }),
        fc.boolean(),
        (prefixes, segs, slash) => {
          const router = new Router();
          for (const [i, p] of prefixes.entries()) router.register(route(`p${i}`, p));
          const path = `/${segs.join("/")}${slash && segs.length ? "/" : ""}`;
          const linear = prefixes
            .map((p, i) => ({ p, id: `p${i}` }))
            .filter(({ p }) => underPrefix(path, p))
            .sort((x, y) => y.p.length - x.p.length)[0]?.id;
          const m = router.match(path);
          assert.equal(m?.kind === "plugin" ? m.route.pluginId : undefined, linear);
        },
      ),
      { numRuns: 2000 },
    );
  });

  test("match cost does not grow with the number of routes", () => {
    // Counted in table look-ups, which is deterministic, instead of timed.
    const lookups = (n: number) => {
      const router = new Router();
      for (let i = 0; i < n; i++) router.register(route(`p${i}`, `/r${i}/x`));
      const original = Map.prototype.get;
      let count = 0;
      Map.prototype.get = function (this: Map<unknown, unknown>, k: unknown) {
        count++;
        return original.call(this, k);
      };
      try {
        router.match("/r7/x/deep/path/here");
        router.match("/nothing/matches/this/path");
      } finally {
        Map.prototype.get = original;
      }
      return count;
    };
    assert.equal(lookups(10), lookups(10_000));
  });
});

describe("clone and adopt", () => {
  test("a plan changes nothing until adopted, then replaces the whole table at once", () => {
    const r = new Router();
    r.register(route("a", "/a"));
    r.register(route("b", "/b"));
    const plan = r.clone();
    plan.unregister("a");
    plan.register(route("b", "/a")); // b moves to a's old prefix
    plan.register(route("c", "/c"));
    const owner = (path: string) => {
      const m = r.match(path);
      return m?.kind === "plugin" ? m.route.pluginId : undefined;
    };
    assert.equal(owner("/a/x"), "a", "untouched before adopt");
    assert.equal(owner("/c"), undefined);
    r.adopt(plan);
    assert.equal(owner("/a/x"), "b");
    assert.equal(owner("/b/x"), undefined);
    assert.equal(owner("/c"), "c");
    assert.equal(r.routeOf("a"), undefined);
    assert.deepEqual(
      r.routes().map((x) => x.prefix),
      ["/a", "/c"],
    );
  });

  test("a clone keeps the reserved prefixes", () => {
    const plan = new Router(["/health", "/ops"]).clone();
    refused(() => plan.register(route("p", "/ops/x")), "reserved");
  });
});
