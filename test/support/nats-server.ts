/**
 * Test harness: runs REAL `nats-server` processes (Debian package `nats-server`, 2.9.x) on
 * 127.0.0.1, one temp dir and config file each. 2.9 has no `--max_payload` flag, so every option
 * goes through the config file. Every process started is tracked; a `process.on("exit")` hook
 * SIGKILLs whatever is still running, and the child handles are unref'd, so a test that fails
 * before its cleanup neither hangs the test file nor leaves a nats-server behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "@nats-io/transport-node";

export interface NatsServerOptions {
  /** Client port; a free loopback port when omitted. */
  port?: number;
  /** Largest message payload the server accepts (`max_payload`), in bytes. */
  maxPayload?: number;
  /** `authorization { user, password }`, or `authorization { token }` when token is set. */
  user?: string;
  pass?: string;
  token?: string;
  /** `cluster { name, listen: 127.0.0.1:port, routes }`; routes are `nats-route://127.0.0.1:P` URLs. */
  cluster?: { name: string; port: number; routes: string[] };
  /** `server_name` */
  name?: string;
}

export interface NatsServer {
  /** `nats://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** Pid of the current process (changes on restart()). */
  pid: number;
  /** SIGTERM, wait for the exit; SIGKILL if it has not exited after 2 s. */
  stop(): Promise<void>;
  /** SIGKILL and wait for the exit (a crash, as far as clients can tell). */
  kill(): Promise<void>;
  /** stop(), then start again on the same port with the same config; resolves once it accepts connections. */
  restart(): Promise<void>;
}

const NOT_INSTALLED = "nats-server is not installed (Debian package nats-server: apt-get install nats-server)";
const READY_TIMEOUT_MS = 5000;
const STOP_GRACE_MS = 2000;

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

/** /usr/sbin/nats-server, else the first `nats-server` on PATH; throws naming the Debian package. */
function natsServerBinary(): string {
  const dirs = ["/usr/sbin", ...(process.env.PATH ?? "").split(delimiter).filter(Boolean)];
  const found = dirs.map((d) => join(d, "nats-server")).find((p) => existsSync(p));
  if (!found) throw new Error(NOT_INSTALLED);
  return found;
}

/** k distinct free loopback ports: all k listeners are held open together, then closed. */
export async function freePorts(k: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < k; i++) {
      const srv = createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => srv.once("error", reject).listen(0, "127.0.0.1", resolve));
    }
    return servers.map((s) => (s.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  }
}

function configText(port: number, o: NatsServerOptions): string {
  const q = JSON.stringify; // NATS config accepts JSON-style quoted strings
  const lines = [`listen: 127.0.0.1:${port}`];
  if (o.name) lines.push(`server_name: ${q(o.name)}`);
  if (o.maxPayload !== undefined) lines.push(`max_payload: ${o.maxPayload}`);
  if (o.token !== undefined) lines.push(`authorization { token: ${q(o.token)} }`);
  else if (o.user !== undefined) lines.push(`authorization { user: ${q(o.user)}, password: ${q(o.pass ?? "")} }`);
  if (o.cluster) {
    const routes = o.cluster.routes.map((r) => q(r)).join(", ");
    lines.push(`cluster { name: ${q(o.cluster.name)}, listen: 127.0.0.1:${o.cluster.port}, routes: [${routes}] }`);
  }
  return `${lines.join("\n")}\n`;
}

/** true once 127.0.0.1:port accepts a TCP connection; false if refused or no answer in 500 ms. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once("connect", () => done(true)).once("error", () => done(false));
    sock.setTimeout(500, () => done(false));
  });
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const bin = natsServerBinary();
  const port = opts.port ?? (await freePorts(1))[0] ?? 0;
  const dir = mkdtempSync(join(tmpdir(), "portico-nats-"));
  tempDirs.add(dir);
  const config = join(dir, "nats.conf");
  writeFileSync(config, configText(port, opts));

  let child!: ChildProcess;
  let stderr = ""; // tail of the current process's log (nats-server logs to stderr)
  const exited = (c: ChildProcess) => c.exitCode !== null || c.signalCode !== null;

  // Ready = the client port (and the route port, for a cluster member) accept TCP connections.
  const ports = opts.cluster ? [port, opts.cluster.port] : [port];
  const allAccept = async () => (await Promise.all(ports.map(accepts))).every(Boolean);

  async function launch(): Promise<void> {
    // Something else answering there would pass for our server: refuse instead.
    for (const p of ports) if (await accepts(p)) throw new Error(`nats-server: 127.0.0.1:${p} is already in use`);
    stderr = "";
    const c = spawn(bin, ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
    child = c;
    live.add(c);
    c.once("exit", () => live.delete(c));
    c.once("error", (err) => {
      stderr += `\nspawn error: ${err.message}`;
    });
    c.stderr?.on("data", (b: Buffer) => {
      stderr = (stderr + b.toString()).slice(-4000);
    });
    c.unref(); // a forgotten server must not keep the test file alive; the exit hook kills it
    (c.stderr as Socket | null)?.unref();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (!(await allAccept())) {
      const why = exited(c) ? `exited (${c.exitCode ?? c.signalCode})` : Date.now() > deadline ? "not accepting after 5 s" : "";
      if (why) {
        c.kill("SIGKILL");
        throw new Error(`nats-server on 127.0.0.1:${port} ${why}; stderr tail:\n${stderr.slice(-1500)}`);
      }
      await sleep(25);
    }
  }

  async function halt(signal: NodeJS.Signals): Promise<void> {
    const c = child;
    if (exited(c)) return;
    c.ref(); // keep the event loop alive until the exit event arrives
    const done = new Promise((resolve) => c.once("exit", resolve));
    c.kill(signal);
    const timer = setTimeout(() => c.kill("SIGKILL"), STOP_GRACE_MS);
    await done;
    clearTimeout(timer);
  }

  await launch();
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return child.pid ?? -1;
    },
    stop: () => halt("SIGTERM"),
    kill: () => halt("SIGKILL"),
    restart: async () => {
      await halt("SIGTERM");
      await launch();
    },
  };
}

/** Like Promise.all, but lets every promise settle; on a rejection, releases the ones that succeeded, then throws. */
async function allOrRelease<T>(ps: Promise<T>[], release: (t: T) => Promise<unknown>): Promise<T[]> {
  const settled = await Promise.allSettled(ps);
  const ok = settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) await Promise.all(ok.map(release)).then(() => Promise.reject(failed.reason));
  return ok;
}

/**
 * n servers in one full-mesh cluster (each routes to all the others). Resolves once all accept
 * connections AND are routed: a subscriber on server 0 receives a message published on each of the
 * other servers (republished every 100 ms, up to 5 s). Any failure stops every server started.
 */
export async function startNatsCluster(n = 3, opts: Omit<NatsServerOptions, "port" | "cluster"> = {}): Promise<NatsServer[]> {
  const ports = await freePorts(2 * n); // [client ports..., cluster ports...]
  const clusterPorts = ports.slice(n);
  const starts = ports.slice(0, n).map((port, i) =>
    startNatsServer({
      ...opts,
      port,
      name: `${opts.name ?? "portico-test"}-${i}`,
      cluster: {
        name: "portico-test",
        port: clusterPorts[i] ?? 0,
        routes: clusterPorts.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p}`),
      },
    }),
  );
  const servers = await allOrRelease(starts, (s) => s.stop());
  await waitRouted(servers, opts).catch((err) => Promise.all(servers.map((s) => s.stop())).then(() => Promise.reject(err)));
  return servers;
}

async function waitRouted(servers: NatsServer[], o: NatsServerOptions): Promise<void> {
  // No reconnecting: on failure the servers are stopped, and these clients must not linger retrying.
  const auth = { user: o.user, pass: o.pass, token: o.token, timeout: 2000, reconnect: false };
  const conns = await allOrRelease(
    servers.map((s) => connect({ servers: s.url, ...auth })),
    (c) => c.close(),
  );
  const [first, ...others] = conns;
  try {
    // Each other server publishes its index until the subscriber on server 0 has heard them all.
    const subject = `portico.cluster-check.${process.pid}`;
    const heard = new Set<string>();
    first?.subscribe(subject, { callback: (_err, m) => void heard.add(m.string()) });
    await first?.flush();
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (heard.size < others.length) {
      if (Date.now() > deadline) throw new Error(`nats cluster: server 0 heard only [${[...heard]}] of 1..${others.length} in 5 s`);
      for (const [k, c] of others.entries()) c.publish(subject, String(k + 1));
      await sleep(100);
    }
  } finally {
    await Promise.all(conns.map((c) => c.close()));
  }
}
