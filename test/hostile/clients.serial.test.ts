/**
 * The hostile-client corpus: over four hundred raw-socket requests no well-behaved client sends
 * (broken request lines, hostile targets, bad or spoofed headers, smuggling, oversized, endless or
 * abandoned requests, slow clients, connection floods), against one portico run as its own process
 * with small limits, a bystander plugin (SDK, v2), a victim speaking nexo's v1 (the raw fixture,
 * which lists every path it received) and a second victim on v2.
 *
 * Every case asserts four things: the status a correct HTTP/1.1 gateway answers (RFC 9110/9112 and
 * the README; or the closed connection), that nothing reached a plugin it should not, that the
 * bystander kept answering within 100 ms meanwhile, and that the daemon's RSS and open fds came
 * back within 10 % of what they were (after a full GC) before the case.
 *
 * Organisation: client-cases.ts holds the table, one line per case, by category; it runs here one
 * case at a time, each on its own connection. What reached the victim and where portico's log says
 * each request went are checked every 25 cases. The cases that need time or many sockets are
 * written out below the table: clients that go away, slow clients (concurrently, as one group whose
 * bystander window and footprint every one of them answers for), and connection floods.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { after, before, test } from "node:test";
import { type RawResult, rawRequest } from "../support/raw-http.js";
import { labSpec } from "../support/v2.js";
import { CASES, type Case, echoOf, fill, type Marks, type Route } from "./client-cases.js";
import { assertSettled, Bystander, type Daemon, get, pluginHealth, settledFootprint, startDaemon, waitFor } from "./harness.js";

const LIMITS = { headS: 1, keepAliveS: 2, idleS: 5, rateWindowS: 10, maxConnections: 200 };
const TOML = `[limits]
head_timeout_seconds = ${LIMITS.headS}
keep_alive_timeout_seconds = ${LIMITS.keepAliveS}
max_header_count = 100
max_header_bytes = 16384
min_upload_rate = 1024
max_connections = ${LIMITS.maxConnections}
idle_timeout_seconds = ${LIMITS.idleS}
max_body_bytes = 65536
timeout_seconds = 5
`;

let d: Daemon;
let bystander: Bystander;

const pad = (i: number) => String(i).padStart(3, "0");
const marks = (i: number): Marks => ({
  t: `hc${pad(i)}`,
  s: `hs${pad(i)}`,
  echo: `/victim/echo/hc${pad(i)}`,
  smuggled: `GET /victim/hs${pad(i)} HTTP/1.1\r\nHost: h\r\n\r\n`,
});

/** Tokens the victim must never see, must have seen, and the routes portico's log must show. */
const forbidden = new Map<string, string>();
const required = new Map<string, string>();
const routes: { token: string; route: Route; name: string }[] = [];

/** Throws the one failure, or all of them at once. */
function throwAll(failures: unknown[]): void {
  if (failures.length === 1) throw failures[0];
  if (failures.length > 1) throw new AggregateError(failures, failures.map((e) => (e as Error).message).join("\n"));
}

/**
 * Runs one case between a fresh baseline (after a full GC, which the bystander's window does not
 * count) and the checks every case ends with; throws every failure.
 */
async function guarded(name: string, body: () => Promise<void>): Promise<void> {
  const base = await settledFootprint(d);
  await bystander.probed();
  bystander.window();
  const failures: unknown[] = [];
  try {
    await body();
  } catch (err) {
    failures.push(err);
  }
  try {
    await bystander.probed();
    bystander.assertServed(name);
    await assertSettled(d, base, name);
  } catch (err) {
    failures.push(err);
  }
  throwAll(failures);
}

const statusOf = (r: RawResult) => r.responses.map((x) => `${x.statusLine} ${x.body.toString("latin1").slice(0, 120)}`).join(" | ");

async function runCase(c: Case, i: number): Promise<void> {
  const m = marks(i);
  const name = `${c.category}/${c.name}`;
  forbidden.set(m.s, name);
  if (c.reach === "must") required.set(m.t, name);
  else if (!c.reach) forbidden.set(m.t, name);
  if (c.route !== undefined) routes.push({ token: m.t, route: c.route, name });
  const raw = typeof c.bytes === "string" ? Buffer.from(fill(c.bytes, m), "latin1") : c.bytes;
  const bytes = c.close ? Buffer.concat([raw, Buffer.from(m.smuggled, "latin1")]) : raw;
  const expected = c.responses ?? 1;
  const r = await rawRequest(d.port, bytes, {
    count: c.close ? expected + 1 : expected,
    waitClose: c.close,
    timeoutMs: c.close ? 1500 : 4000,
    more: c.more?.map((x) => fill(x, m)),
    gapMs: 100,
  });
  assert.equal(r.responses.length, expected, `${name}: ${expected} response(s) expected, got: ${statusOf(r)} (closed: ${r.closed})`);
  const [res] = r.responses;
  assert.ok(res);
  assert.ok(c.status.includes(res.status), `${name}: expected ${c.status.join(" or ")}, got ${statusOf(r)}`);
  if (c.close) assert.ok(r.closed, `${name}: the connection must be closed after ${res.status}`);
  const failures: unknown[] = [];
  try {
    c.check?.(r, m);
  } catch (err) {
    failures.push(err);
  }
  // README: every response carries X-Request-Id.
  const unmarked = r.responses.filter(
    (x) => x.status >= 200 && x.status !== 101 && !x.headers.some(([k]) => k.toLowerCase() === "x-request-id"),
  );
  if (unmarked.length) failures.push(new Error(`${name}: ${unmarked.map((x) => x.status).join(", ")} without X-Request-Id`));
  throwAll(failures);
}

/** Every path the victim received so far. */
async function victimSeen(): Promise<string[]> {
  const r = await get(`${d.url}/victim/seen`);
  assert.equal(r.status, 200, `/victim/seen: ${r.body}`);
  return (JSON.parse(r.body) as { paths: string[] }).paths;
}

/** What reached the victim, and where portico routed each case, against what each case allows. */
async function checkReached(): Promise<void> {
  await new Promise((r) => setTimeout(r, 100)); // the last log lines on their way
  const seen = await victimSeen();
  const problems: string[] = [];
  for (const [token, name] of forbidden) {
    const hits = seen.filter((p) => p.includes(token));
    if (hits.length) problems.push(`${name}: reached the victim: ${hits.join(", ").slice(0, 200)}`);
  }
  for (const [token, name] of required) if (!seen.some((p) => p.includes(token))) problems.push(`${name}: never reached the victim`);
  for (const p of seen) {
    if (!/^\/victim(\/|$)/.test(p) || /\/\/|\/\.\.?(\/|$)|%2f|%5c|\\/i.test(p))
      problems.push(`the victim received a path it should not: ${p}`);
  }
  for (const { token, route, name } of routes) {
    const lines = d.logs.filter((l) => typeof l.path === "string" && l.path.includes(token));
    if (!lines.length) problems.push(`${name}: no request line in portico's log`);
    for (const l of lines) if ((l.plugin ?? null) !== route) problems.push(`${name}: routed to ${String(l.plugin)}, expected ${route}`);
  }
  forbidden.clear();
  required.clear();
  routes.length = 0;
  assert.deepEqual(problems, []);
}

before(async () => {
  d = await startDaemon([labSpec("bystander"), { id: "victim" }, labSpec("victim2")], TOML);
  bystander = new Bystander(`${d.url}/bystander/pid`);
  bystander.start();
  // Warm-up: every kind of work the corpus makes the daemon do once, so the baseline includes the
  // code, buffers and modules (ws) a first use brings in.
  const warm = ["GET /victim/echo/warm HTTP/1.1\r\nHost: h\r\n\r\n", "GET /victim2/pid HTTP/1.1\r\nHost: h\r\n\r\n", "GET /x\r\n\r\n"];
  for (let round = 0; round < 3; round++) {
    for (const w of warm) await rawRequest(d.port, w);
    await rawRequest(d.port, `POST /victim/echo/warm HTTP/1.1\r\nHost: h\r\nContent-Length: 65536\r\n\r\n${"w".repeat(65536)}`);
    await rawRequest(
      d.port,
      `GET /victim2/ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    await get(`${d.url}/metrics`);
  }
});

after(async () => {
  await bystander?.stop();
  await d?.close();
});

for (const [i, c] of CASES.entries()) {
  test(`${c.category}/${c.name}`, () => guarded(`${c.category}/${c.name}`, () => runCase(c, i)));
  if (i % 25 === 24 || i === CASES.length - 1) test(`nothing reached a plugin it should not (cases up to ${i})`, checkReached);
}

// Clients that go away ---------------------------------------------------------------------------------

let next = CASES.length;
/** Marks for a case written out below, its tokens registered like a table case's. */
function written(name: string, reach?: "must" | "may"): Marks {
  const m = marks(next++);
  forbidden.set(m.s, name);
  if (reach === "must") required.set(m.t, name);
  else if (!reach) forbidden.set(m.t, name);
  return m;
}

/** Connects, writes `data`, and leaves (RST) once `leaveWhen` resolves. */
async function leave(data: string, leaveWhen: (s: Socket) => Promise<unknown>): Promise<void> {
  const s = connect(d.port, "127.0.0.1");
  s.on("error", () => {});
  await new Promise((r) => s.once("connect", r));
  s.write(data, "latin1");
  await leaveWhen(s);
  s.resetAndDestroy();
}
const firstData = (s: Socket) => new Promise((r) => s.once("data", r));
const pause = (ms: number) => () => new Promise((r) => setTimeout(r, ms));

test("gone/mid-head", async () => {
  const m = written("gone/mid-head");
  await guarded("gone/mid-head", () => leave(`GET /victim/${m.t} HTTP/1.1\r\nHost: h\r\nX-A: `, pause(50)));
});
test("gone/mid-body-v1: the buffered body never reaches the plugin", async () => {
  const m = written("gone/mid-body-v1");
  await guarded("gone/mid-body-v1", () =>
    leave(`POST ${m.echo} HTTP/1.1\r\nHost: h\r\nContent-Length: 60000\r\n\r\n${"b".repeat(20_000)}`, pause(100)),
  );
});
test("gone/mid-upload-v2: the plugin's request body fails", async () => {
  const m = written("gone/mid-upload-v2");
  await guarded("gone/mid-upload-v2", async () => {
    await leave(`POST /victim2/upload?tag=${m.t} HTTP/1.1\r\nHost: h\r\nContent-Length: 10000000\r\n\r\n${"b".repeat(65_536)}`, pause(200));
    await waitFor(
      () => d.logs.find((l) => String(l.msg).startsWith(`lab: upload ${m.t} failed`)),
      3000,
      "the plugin to see its upload fail",
    );
  });
});
test("gone/mid-response-v2: the plugin's stream is aborted", async () => {
  const m = written("gone/mid-response-v2");
  await guarded("gone/mid-response-v2", async () => {
    await leave(`GET /victim2/hold?tag=${m.t} HTTP/1.1\r\nHost: h\r\n\r\n`, firstData);
    const state = async () => JSON.parse((await get(`${d.url}/victim2/state?tag=${m.t}`)).body) as { aborted: string | null };
    await waitFor(async () => (await state()).aborted ?? undefined, 3000, "the plugin to see the abort");
  });
});
test("gone/waiting-for-v1: the exchange is not left in flight", async () => {
  const m = written("gone/waiting-for-v1", "must");
  await guarded("gone/waiting-for-v1", async () => {
    await leave(`GET /victim/sleep/300/${m.t} HTTP/1.1\r\nHost: h\r\n\r\n`, pause(20));
    await waitFor(async () => ((await pluginHealth(d, "victim")).inFlight === 0 ? true : undefined), 3000, "no exchange in flight");
  });
});

// Slow clients, all at once ----------------------------------------------------------------------------

interface Slow {
  name: string;
  /** Drives the connection; resolves when it has nothing more to send. */
  drive: (s: Socket, m: Marks) => Promise<void>;
  /** Statuses of the responses, in order; a trailing 408 after them is allowed when `late408`. */
  statuses: number[];
  late408?: boolean;
  /** The daemon must have closed the connection within this many ms of the last response (or of the start, with none). */
  closeWithinMs: number;
  reach?: "must" | "may";
  check?: (bytes: number) => void;
}
interface SlowResult {
  statuses: number[];
  closedAfterMs: number | undefined;
  bytes: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const drip =
  (text: string, everyMs: number, piece = 1) =>
  async (s: Socket, m: Marks) => {
    const bytes = fill(text, m);
    for (let i = 0; i < bytes.length && !s.destroyed; i += piece) {
      s.write(bytes.slice(i, i + piece), "latin1");
      await sleep(everyMs);
    }
  };
const send = (text: string) => async (s: Socket, m: Marks) => void s.write(fill(text, m), "latin1");
const then = (a: Slow["drive"], b: Slow["drive"]) => async (s: Socket, m: Marks) => {
  await a(s, m);
  await b(s, m);
};
const HEAD_MS = (LIMITS.headS + 1.5) * 1000;
const GET_HEAD = `GET /victim/{t} HTTP/1.1\r\nHost: h\r\nX-Pad: ${"p".repeat(80)}\r\n\r\n`;
const SLOW: Slow[] = [
  { name: "head-dripped-1-byte-per-200ms", drive: drip(GET_HEAD, 200), statuses: [408], closeWithinMs: HEAD_MS },
  { name: "head-dripped-1-byte-per-500ms", drive: drip(GET_HEAD, 500), statuses: [408], closeWithinMs: HEAD_MS },
  {
    name: "head-dripped-a-line-per-300ms",
    drive: drip(GET_HEAD.replace("X-Pad", "X-A: 1\r\nX-B: 2\r\nX-C: 3\r\nX-Pad"), 300, 20),
    statuses: [408],
    closeWithinMs: HEAD_MS,
  },
  { name: "half-a-request-line-then-silence", drive: send("GET /victim/{t} HT"), statuses: [408], closeWithinMs: HEAD_MS },
  { name: "head-without-its-last-crlf", drive: send("GET /victim/{t} HTTP/1.1\r\nHost: h\r\n"), statuses: [408], closeWithinMs: HEAD_MS },
  { name: "empty-lines-dripped", drive: drip("\r\n".repeat(40), 100, 2), statuses: [], late408: true, closeWithinMs: HEAD_MS },
  { name: "silent-connection", drive: async () => {}, statuses: [], late408: true, closeWithinMs: HEAD_MS },
  {
    name: "head-slow-but-in-time-is-served",
    drive: drip("GET {echo} HTTP/1.1\r\nHost: h\r\n\r\n", 150, 12),
    statuses: [200],
    late408: true,
    reach: "must",
    closeWithinMs: (LIMITS.keepAliveS + 1.5) * 1000,
  },
  {
    name: "idle-keep-alive-closed",
    drive: send("GET {echo} HTTP/1.1\r\nHost: h\r\n\r\n"),
    statuses: [200],
    late408: true,
    reach: "must",
    closeWithinMs: (LIMITS.keepAliveS + 1.5) * 1000,
  },
  {
    name: "keep-alive-header-cannot-stretch-it",
    drive: send("GET {echo} HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nKeep-Alive: timeout=3600, max=100000\r\n\r\n"),
    statuses: [200],
    late408: true,
    reach: "must",
    closeWithinMs: (LIMITS.keepAliveS + 1.5) * 1000,
  },
  {
    name: "body-below-min-upload-rate-v1",
    drive: then(send("POST {echo} HTTP/1.1\r\nHost: h\r\nContent-Length: 60000\r\n\r\n"), drip("b".repeat(1000), 100, 10)),
    statuses: [408],
    closeWithinMs: (LIMITS.rateWindowS + 3) * 1000,
  },
  {
    name: "body-below-min-upload-rate-v2",
    drive: then(
      send("POST /victim2/upload?tag={t} HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n"),
      drip("b".repeat(1000), 100, 10),
    ),
    statuses: [408],
    reach: "may",
    closeWithinMs: (LIMITS.rateWindowS + 3) * 1000,
  },
  {
    name: "chunked-body-below-min-upload-rate",
    drive: then(
      send("POST {echo} HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"),
      drip("a\r\n0123456789\r\n".repeat(100), 100, 15),
    ),
    statuses: [408],
    closeWithinMs: (LIMITS.rateWindowS + 3) * 1000,
  },
  {
    name: "body-stalled",
    drive: send("POST {echo} HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\nabc"),
    statuses: [408],
    closeWithinMs: (LIMITS.idleS + 2.5) * 1000,
  },
  {
    name: "expect-100-then-no-body",
    drive: send("POST {echo} HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"),
    statuses: [100, 408],
    closeWithinMs: (LIMITS.idleS + 2.5) * 1000,
  },
  {
    name: "response-never-read-is-cut",
    drive: async (s, m) => {
      s.pause();
      s.write(fill("GET /victim2/download?bytes=67108864&tag={t} HTTP/1.1\r\nHost: h\r\n\r\n", m));
      await sleep((LIMITS.idleS + 2) * 1000);
      s.resume();
    },
    statuses: [200],
    reach: "may",
    closeWithinMs: (LIMITS.idleS + 4) * 1000,
    check: (bytes) => assert.ok(bytes < 64 * 1024 * 1024, `the whole body went out (${bytes} bytes) to a client that did not read`),
  },
];

/** One slow client, from connect until the daemon closes (bounded by `closeWithinMs` + 5 s). */
async function slowClient(c: Slow, m: Marks): Promise<SlowResult> {
  const s = connect(d.port, "127.0.0.1");
  s.on("error", () => {});
  await new Promise((r) => s.once("connect", r));
  const started = Date.now();
  let text = "";
  let bytes = 0;
  let lastResponseAt = started;
  s.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    if (text.length < 4096) text += chunk.toString("latin1", 0, Math.min(chunk.length, 4096));
    if (chunk.includes("HTTP/1.1 ")) lastResponseAt = Date.now();
  });
  const closed = new Promise<number>((r) => s.once("close", () => r(Date.now())));
  void c.drive(s, m);
  const limit = sleep(c.closeWithinMs + 5000).then(() => undefined);
  const closedAt = await Promise.race([closed, limit]);
  s.destroy();
  const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((x) => Number(x[1]));
  return { statuses, closedAfterMs: closedAt === undefined ? undefined : closedAt - lastResponseAt, bytes };
}

const slow = new Map<string, SlowResult>();
let slowWindow: { worstMs: number; failures: string[] } = { worstMs: 0, failures: [] };
test("slow clients, all at once", async () => {
  const base = await settledFootprint(d);
  await bystander.probed();
  bystander.window();
  const runs = SLOW.map(async (c) => slow.set(c.name, await slowClient(c, written(`slow/${c.name}`, c.reach))));
  await Promise.all(runs);
  await bystander.probed();
  slowWindow = bystander.window();
  await assertSettled(d, base, "slow clients");
});
for (const c of SLOW) {
  test(`slow/${c.name}`, () => {
    const r = slow.get(c.name);
    assert.ok(r, "ran");
    const expected = c.late408 && r.statuses.length === c.statuses.length + 1 ? [...c.statuses, 408] : c.statuses;
    assert.deepEqual(r.statuses, expected, `statuses ${r.statuses.join(", ")}`);
    assert.ok(
      r.closedAfterMs !== undefined && r.closedAfterMs <= c.closeWithinMs,
      `closed after ${r.closedAfterMs} ms (bound ${c.closeWithinMs} ms)`,
    );
    c.check?.(r.bytes);
    assert.deepEqual(slowWindow.failures, [], "the bystander plugin failed meanwhile");
    assert.ok(slowWindow.worstMs < 100, `the bystander plugin took ${slowWindow.worstMs.toFixed(1)} ms (limit 100 ms)`);
  });
}

// Connection floods ------------------------------------------------------------------------------------

interface Conn {
  socket: Socket;
  text: () => string;
  closed: Promise<void>;
}
function open(data?: string): Promise<Conn> {
  return new Promise((resolve) => {
    const socket = connect(d.port, "127.0.0.1");
    socket.on("error", () => {});
    let text = "";
    socket.on("data", (c: Buffer) => {
      text += c.toString("latin1");
    });
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.once("connect", () => {
      if (data) socket.write(data, "latin1");
      resolve({ socket, text: () => text, closed });
    });
  });
}
const refusedBy503 = (c: Conn) => c.text().startsWith("HTTP/1.1 503 ");
/**
 * An over-the-cap refusal as the README has it: 503 with Retry-After and the JSON body, then the
 * connection closed. Returns what is missing of "every response carries X-Request-Id", for the end.
 */
async function assertRefused(c: Conn): Promise<string[]> {
  await within(c.closed, 2000, "the refused connection to close");
  const text = c.text();
  assert.match(text, /^HTTP\/1\.1 503 /);
  assert.match(text, /\r\nRetry-After: \d+\r\n/i);
  assert.match(text, /\r\nContent-Type: application\/json; charset=utf-8\r\n/i);
  assert.ok(text.endsWith('{"error":"too many connections"}'), text);
  return /\r\nX-Request-Id: \S+\r\n/i.test(text) ? [] : ["a 503 over max_connections without X-Request-Id"];
}
const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, sleep(ms).then(() => Promise.reject(new Error(`timed out after ${ms} ms waiting for ${what}`)))]);

test("flood/busy: over max_connections the excess get 503 and close, the held ones and others are served, then it recovers", async () => {
  const m = written("flood/busy", "must");
  await guarded("flood/busy", async () => {
    const hogs = await Promise.all(
      Array.from({ length: LIMITS.maxConnections + 5 }, (_, i) => open(`GET /victim/sleep/2500/${m.t}-${i} HTTP/1.1\r\nHost: h\r\n\r\n`)),
    );
    await sleep(300);
    const held = hogs.filter((c) => !refusedBy503(c));
    assert.ok(held.length < LIMITS.maxConnections, `${held.length} connections held (cap ${LIMITS.maxConnections}, the bystander has one)`);
    assert.ok(held.length >= LIMITS.maxConnections - 10, `only ${held.length} connections held`);
    const extra = await Promise.all(Array.from({ length: 10 }, () => open(`GET ${m.echo} HTTP/1.1\r\nHost: h\r\n\r\n`)));
    const missing = new Set<string>();
    for (const c of [...extra, ...hogs.filter(refusedBy503)]) for (const p of await assertRefused(c)) missing.add(p);
    await waitFor(() => (held.every((c) => c.text().startsWith("HTTP/1.1 200 ")) ? true : undefined), 6000, "every held request answered");
    for (const c of hogs) c.socket.destroy();
    const again = await waitFor(
      async () => {
        const r = await rawRequest(d.port, `GET ${m.echo} HTTP/1.1\r\nHost: h\r\n\r\n`);
        return r.responses[0]?.status === 200 ? r : undefined;
      },
      3000,
      "a new connection served",
    );
    assert.equal(echoOf(again.responses[0] as (typeof again.responses)[0]).path, m.echo);
    assert.deepEqual([...missing], []);
  });
});

test("flood/idle: connections that never send a byte cannot hold the cap past head_timeout_seconds", async () => {
  const m = written("flood/idle", "must");
  await guarded("flood/idle", async () => {
    const idle = await Promise.all(Array.from({ length: LIMITS.maxConnections + 5 }, () => open()));
    await sleep(200);
    const extra = await open(`GET ${m.echo} HTTP/1.1\r\nHost: h\r\n\r\n`);
    const missing = await assertRefused(extra);
    await within(Promise.all(idle.map((c) => c.closed)), HEAD_MS + 1000, "the idle connections to be closed by the daemon");
    const r = await rawRequest(d.port, `GET ${m.echo} HTTP/1.1\r\nHost: h\r\n\r\n`);
    assert.equal(r.responses[0]?.status, 200);
    assert.deepEqual(missing, []);
  });
});

test("nothing reached a plugin it should not (written cases)", checkReached);
