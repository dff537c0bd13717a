// The bystander's prober (test/hostile/harness.ts): GETs one URL over one keep-alive connection,
// one request at a time, 10 ms apart, and writes one line per probe on stdout: "<ms> <status>" or
// "error <message>". It runs in a process of its own, so that what the test process itself does
// (sending megabytes, parsing logs) never shows up as the daemon's latency. It stops when its
// stdin closes, and after ten minutes in any case.
import { Agent, request } from "node:http";

const url = process.argv[2];
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
const deadline = Date.now() + 10 * 60_000;
let running = true;
process.stdin.on("end", () => {
  running = false;
});
process.stdin.resume();

function probe() {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(`${(performance.now() - started).toFixed(2)} ${res.statusCode}`));
      res.on("error", (err) => resolve(`error ${err.message}`));
    });
    req.setTimeout(5000, () => req.destroy(new Error("no answer within 5000 ms")));
    req.on("error", (err) => resolve(`error ${err.message}`));
    req.end();
  });
}

while (running && Date.now() < deadline) {
  process.stdout.write(`${await probe()}\n`);
  await new Promise((r) => setTimeout(r, 10));
}
agent.destroy();
process.exit(0);
