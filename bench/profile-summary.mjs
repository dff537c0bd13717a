#!/usr/bin/env node
// Summarizes V8 .cpuprofile files (from `node --cpu-prof`, e.g. `npm run bench -- --profile`):
// per profile, where the busy (non-idle) time went, by area (portico's own files, each
// node_modules package, Node internals by module, GC) and by function, self and inclusive.
//
//   node bench/profile-summary.mjs DIR_OR_FILE... [--top N]
import { readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";

function shortUrl(url) {
  if (!url) return "";
  const u = url.replace(/^file:\/\//, "");
  const nm = u.lastIndexOf("/node_modules/");
  if (nm !== -1) return u.slice(nm + "/node_modules/".length);
  const m = u.match(/\/(dist|src|examples|bench|bin)\/.*/);
  if (m) return m[0].slice(1);
  return u;
}

function areaOf(frame) {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === "(garbage collector)") return "GC";
    if (functionName === "(program)") return "(program: native, not attributed)";
    if (functionName === "(idle)") return "(idle)";
    return functionName || "(native)";
  }
  const u = url.replace(/^file:\/\//, "");
  const nm = u.lastIndexOf("/node_modules/");
  if (nm !== -1) {
    const rest = u.slice(nm + "/node_modules/".length).split("/");
    return `npm:${rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0]}`;
  }
  if (u.startsWith("node:")) {
    const mod = u.slice(5).replace(/^internal\//, "internal/");
    // node:internal/streams/writable → node:internal/streams
    const parts = mod.split("/");
    return `node:${parts.length > 2 ? parts.slice(0, 2).join("/") : mod}`;
  }
  const m = u.match(/\/(dist|src|examples)\/(.*)$/);
  if (m) return `portico:${m[1]}/${m[2]}`;
  return u;
}

function keyOf(frame) {
  const name = frame.functionName || "(anonymous)";
  const where = frame.url ? ` ${shortUrl(frame.url)}:${frame.lineNumber + 1}` : "";
  return `${name}${where}`;
}

/** Returns { totalMs, busyMs, areas: [[area, ms]], selfTop: [[fn, ms]], inclTop: [[fn, ms]] }. */
export function analyze(profile, top = 15) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  // Time of sample i: the gap until the next sample (the last one gets the average).
  const totalUs = profile.endTime - profile.startTime;
  const avg = samples.length ? totalUs / samples.length : 0;
  const selfUs = new Map();
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < deltas.length ? deltas[i + 1] : avg;
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt));
  }
  const areas = new Map();
  const selfFn = new Map();
  const inclFn = new Map();
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = nodes.get(id);
    if (!n) continue;
    const area = areaOf(n.callFrame);
    if (area === "(idle)") {
      idleUs += us;
      continue;
    }
    areas.set(area, (areas.get(area) ?? 0) + us);
    const k = keyOf(n.callFrame);
    selfFn.set(k, (selfFn.get(k) ?? 0) + us);
    // Inclusive: every distinct function on the stack, once.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const f = nodes.get(cur).callFrame;
      if (!f.url && (f.functionName === "(root)" || f.functionName === "")) continue;
      const kk = keyOf(f);
      if (seen.has(kk)) continue;
      seen.add(kk);
      inclFn.set(kk, (inclFn.get(kk) ?? 0) + us);
    }
  }
  const busyUs = totalUs - idleUs;
  const sorted = (m) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([k, us]) => [k, us / 1000]);
  return { totalMs: totalUs / 1000, busyMs: busyUs / 1000, areas: sorted(areas), selfTop: sorted(selfFn), inclTop: sorted(inclFn) };
}

function profileFiles(paths) {
  const out = [];
  for (const p of paths) {
    if (statSync(p).isDirectory()) {
      for (const f of readdirSync(p).sort()) if (f.endsWith(".cpuprofile")) out.push(join(p, f));
    } else out.push(p);
  }
  return out;
}

/**
 * Markdown-ish text report for every profile in `dir`; `roles` names pids: `names` (Map pid → name),
 * or `portico` (the daemon's pid) and `plugins` (Map id → pid).
 */
export function summarizeProfiles(dir, roles = {}, top = 15) {
  const lines = ["## CPU profile hot spots", ""];
  const pidName = new Map(roles.names ?? []);
  if (roles.portico) pidName.set(roles.portico, "portico daemon");
  for (const [id, pid] of roles.plugins ?? []) pidName.set(pid, `plugin ${id}`);
  const files = profileFiles([dir]);
  if (files.length === 0) return `${lines.join("\n")}no .cpuprofile files in ${dir} (did the processes exit cleanly?)\n`;
  for (const file of files) {
    // CPU.<date>.<time>.<pid>.<tid>.<seq>.cpuprofile
    const parts = basename(file).split(".");
    const pid = Number(parts[3]);
    const tid = Number(parts[4]);
    const a = analyze(JSON.parse(readFileSync(file, "utf8")), top);
    if (a.busyMs < 50) continue; // a helper thread or an idle process: nothing to see
    const who = `${pidName.get(pid) ?? `pid ${pid}`}${tid ? ` (thread ${tid})` : ""}`;
    const pct = (ms) => `${((ms / a.busyMs) * 100).toFixed(1)}%`;
    lines.push(`### ${who}: ${(a.busyMs / 1000).toFixed(1)} s busy of ${(a.totalMs / 1000).toFixed(1)} s profiled — ${basename(file)}`, "");
    lines.push("by area (self time, % of busy):");
    for (const [k, ms] of a.areas) lines.push(`  ${pct(ms).padStart(6)}  ${k}`);
    lines.push("", "top functions, self time:");
    for (const [k, ms] of a.selfTop) lines.push(`  ${pct(ms).padStart(6)}  ${k}`);
    lines.push("", "top functions, inclusive time:");
    for (const [k, ms] of a.inclTop) lines.push(`  ${pct(ms).padStart(6)}  ${k}`);
    lines.push("");
  }
  return lines.join("\n");
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const ti = args.indexOf("--top");
  const top = ti !== -1 ? Number(args.splice(ti, 2)[1]) : 15;
  if (args.length === 0) {
    process.stderr.write("usage: node bench/profile-summary.mjs DIR_OR_FILE... [--top N]\n");
    process.exit(2);
  }
  for (const a of args) process.stdout.write(`${summarizeProfiles(a, {}, top)}\n`);
}
