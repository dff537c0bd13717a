#!/usr/bin/env node
// What a plugin flooding portico with JSON-RPC frames costs the daemon and a bystander (hostile
// cases 8 and 8b, measured rather than asserted): a daemon with the lab plugin and the hostile
// fixture, while a prober GETs the lab plugin over one keep-alive connection. Prints the daemon's
// CPU over the 6 s from the flood's start and the prober's slowest answers.
//   --mode requests       (default) requests while never reading the answers: the fixture in
//                         rpc-flood mode, set off by killing it (its next start floods for 4 s)
//   --mode notifications  frames portico has no use for (unknown notifications, publishes to no
//                         one, answers to no call), while reading normally: notify-flood mode,
//                         set off by a GET (it floods for 4 s)
//   node bench/experiments/rpc-flood.mjs [--mode M] [--checkout DIR] [--runs N]
// --checkout runs the daemon of another built checkout (the fixtures are this one's).
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const { values } = parseArgs({
  options: { checkout: { type: "string" }, runs: { type: "string", default: "3" }, mode: { type: "string", default: "requests" } },
});
if (!["requests", "notifications"].includes(values.mode)) {
  console.error(`rpc-flood: --mode is requests or notifications, not "${values.mode}"`);
  process.exit(2);
}
const REQUESTS = values.mode === "requests";
const BIN = join(values.checkout ?? ROOT, "bin", "portico.js");
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** CPU time (user + system) of `pid` so far, in ms (clock ticks of 10 ms). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function manifest(id, script, env) {
  const envToml = Object.entries({ FIXTURE_ID: id, ...env })
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join(", ");
  return `[plugin]\nid = "${id}"\nversion = "0.1.0"\nname = "${id}"\ndescription = "rpc-flood experiment"\n\n[plugin.entrypoint]\ncommand = ${JSON.stringify(process.execPath)}\nargs = [${JSON.stringify(script)}]\nenv = { ${envToml} }\n\n[plugin.http]\nmount_prefix = "/${id}"\n`;
}

async function once() {
  const dir = mkdtempSync(join(tmpdir(), "portico-rpc-flood-"));
  const trigger = join(dir, "trigger");
  const plugins = {
    bystander: [join(ROOT, "test/fixtures/v2/lab/plugin.mjs"), {}],
    rpcflood: [
      join(ROOT, "test/fixtures/hostile/plugin.mjs"),
      REQUESTS ? { HOSTILE: "rpc-flood", FLOOD_SECONDS: "4", FLOOD_TRIGGER: trigger } : { HOSTILE: "notify-flood", FLOOD_SECONDS: "4" },
    ],
  };
  for (const [id, [script, env]] of Object.entries(plugins)) {
    mkdirSync(join(dir, "plugins", id), { recursive: true });
    writeFileSync(join(dir, "plugins", id, "nexo-plugin.toml"), manifest(id, script, env));
  }
  // The hostile corpus's limits (test/hostile/plugins.serial.test.ts).
  writeFileSync(
    join(dir, "portico.toml"),
    `listen = "127.0.0.1:0"\nplugins = "${join(dir, "plugins")}"\nlog_level = "info"\n[limits]\nmax_line_bytes = 8388608\nmax_queued_bytes = 4194304\nmax_log_lines_per_second = 100\nmin_upload_rate = 1024\ninput_stall_seconds = 2\n`,
  );
  const daemon = spawn(process.execPath, [BIN, "serve", "--config", join(dir, "portico.toml")], { stdio: ["ignore", "pipe", "inherit"] });
  let log = "";
  daemon.stdout.on("data", (c) => {
    log += c;
  });
  let url;
  for (let i = 0; i < 200 && !url; i++, await sleep(50)) url = /"url":"(http:[^"]+)"/.exec(log)?.[1];
  if (!url) throw new Error("portico did not start listening within 10 s");
  await sleep(2000); // both plugins ready, the daemon settled
  const prober = spawn(process.execPath, [join(ROOT, "test/hostile/probe.mjs"), `${url}/bystander/pid`], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const answers = [];
  let pending = "";
  prober.stdout.on("data", (c) => {
    pending += c;
    for (let nl = pending.indexOf("\n"); nl >= 0; nl = pending.indexOf("\n")) {
      answers.push(Number(pending.slice(0, nl).split(" ")[0]));
      pending = pending.slice(nl + 1);
    }
  });
  await sleep(1000);
  const health = await (await fetch(`${url}/health`)).json();
  const pid = health.plugins.find((p) => p.id === "rpcflood").pid;
  const seen = answers.length;
  const before = cpuMs(daemon.pid);
  if (REQUESTS) {
    writeFileSync(trigger, "");
    process.kill(pid, "SIGKILL");
  } else await (await fetch(`${url}/rpcflood/flood`)).text();
  await sleep(6000);
  const cpu = cpuMs(daemon.pid) - before;
  const during = answers.slice(seen).sort((a, b) => b - a);
  prober.stdin.end();
  daemon.kill("SIGTERM");
  await new Promise((r) => daemon.on("exit", r));
  rmSync(dir, { recursive: true, force: true });
  return { cpu, answers: during.length, slowest: during.slice(0, 3) };
}

for (let i = 0; i < Number(values.runs); i++) {
  const r = await once();
  console.log(
    `run ${i + 1}: daemon CPU ${r.cpu} ms over 6 s; bystander: ${r.answers} answers, slowest ${r.slowest.map((ms) => ms.toFixed(1)).join(", ")} ms`,
  );
}
