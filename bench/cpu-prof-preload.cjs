// Preloaded by `npm run bench -- --profile` through NODE_OPTIONS (which refuses --cpu-prof itself):
// profiles this Node process (the portico daemon and any Node plugin it spawns) with V8's sampling
// profiler and writes DIR/CPU.<date>.<time>.<pid>.0.001.cpuprofile when the process exits normally
// (process.exit or end of work; not SIGKILL). DIR comes from PORTICO_BENCH_PROFILE_DIR.
"use strict";
const { isMainThread } = require("node:worker_threads");
const dir = process.env.PORTICO_BENCH_PROFILE_DIR;
if (dir && isMainThread) {
  const inspector = require("node:inspector");
  const { writeFileSync, mkdirSync } = require("node:fs");
  const { join } = require("node:path");
  const session = new inspector.Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: Number(process.env.PORTICO_BENCH_PROFILE_INTERVAL_US) || 500 });
  session.post("Profiler.start");
  let written = false;
  process.on("exit", () => {
    if (written) return;
    written = true;
    // The in-process session answers synchronously, so this works inside 'exit'.
    session.post("Profiler.stop", (err, result) => {
      if (err || !result) return;
      const d = new Date();
      const p2 = (n) => String(n).padStart(2, "0");
      const stamp = `${d.getFullYear()}${p2(d.getMonth() + 1)}${p2(d.getDate())}.${p2(d.getHours())}${p2(d.getMinutes())}${p2(d.getSeconds())}`;
      try {
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, `CPU.${stamp}.${process.pid}.0.001.cpuprofile`), JSON.stringify(result.profile));
      } catch {
        // profiling must never break the process
      }
    });
  });
}
