/**
 * Issue 8, item 5: every state change of a plugin is one structured log line, in one shape, and
 * the lines of a plugin chain from `stopped` to the state it is in.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { FAST_SUPERVISOR, type Running, startPortico, until } from "./support/portico.js";

/** The state-change lines of `plugin`, as "previous→state". */
function stateLines(p: Running, plugin: string): string[] {
  return p.logs.filter((l) => l.plugin === plugin && l.previous !== undefined).map((l) => `${l.previous}→${l.state}`);
}

describe("every state change is one structured log line", () => {
  let p: Running;
  before(async () => {
    p = await startPortico([{ id: "steady" }, { id: "doomed", env: { FIXTURE_INIT: "exit" } }], {
      supervisor: { ...FAST_SUPERVISOR, maxCrashes: 3 },
    });
  });
  after(() => p.close());

  test("the lines chain from stopped to the plugin's state now, each change once, with its explanation", async () => {
    await until(() => p.portico.plugins.get("doomed")?.state === "failed", 10_000, "doomed to fail");
    const r = await fetch(`${p.url}/steady/crash`);
    assert.equal(r.status, 502);
    await until(() => stateLines(p, "steady").length >= 5 && p.portico.plugins.get("steady")?.state === "ready", 10_000, "steady back");
    for (const id of ["steady", "doomed"]) {
      const chain = stateLines(p, id);
      let at = "stopped";
      for (const step of chain) {
        const [previous, state] = step.split("→");
        assert.equal(previous, at, `${id}: ${chain.join(", ")}`);
        at = state as string;
      }
      assert.equal(at, p.portico.plugins.get(id)?.state, `${id}'s log ends where it is`);
    }
    assert.deepEqual(stateLines(p, "steady"), [
      "stopped→starting",
      "starting→ready",
      "ready→restarting",
      "restarting→starting",
      "starting→ready",
    ]);
    assert.deepEqual(stateLines(p, "doomed"), [
      "stopped→starting",
      "starting→restarting",
      "restarting→starting",
      "starting→restarting",
      "restarting→starting",
      "starting→failed",
    ]);
    // One shape for every change: a log reader follows a plugin with one filter.
    for (const l of p.logs.filter((l) => l.previous !== undefined)) {
      assert.equal(l.msg, `plugin state ${l.previous} → ${l.state}`);
      assert.equal(l.level, 30);
    }
    // The why is on the lines beside it.
    const crash = p.logs.find((l) => l.plugin === "steady" && l.msg === "plugin exited; restarting");
    assert.equal(crash?.exit, "exited with code 3");
    assert.ok(p.logs.some((l) => l.plugin === "doomed" && l.msg === "plugin crashed too often; giving up (state failed)"));
  });
});
