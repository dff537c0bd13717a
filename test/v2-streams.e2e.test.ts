/**
 * Protocol v2 end to end, in-process portico and real plugin processes on 127.0.0.1: responses
 * streamed as produced (SSE), the client's disconnect reaching the plugin's `request.signal`,
 * time-to-first-byte and idle timeouts, a plugin dying or resetting mid-body, a handler that
 * throws, and v1 and v2 plugins served side by side. Timing is asserted by orderings against the
 * plugin's own timestamps and loose ratios, never by tight absolute numbers.
 */
import assert from "node:assert/strict";
import { get as httpGet, request as httpRequest } from "node:http";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { defined } from "./support/assert.js";
import { type Running, startPortico, until } from "./support/portico.js";
import { fetchRaw, getJson, labSpec, MiB, streamGet, within } from "./support/v2.js";

const HELLO_PY = fileURLToPath(new URL("../examples/plugins/hello-python/plugin.py", import.meta.url));

let p: Running;
before(async () => {
  p = await startPortico([
    labSpec("lab"),
    // Time to first byte 1 s.
    labSpec("labt", "timeout_seconds = 1"),
    // Idle timeout 1 s, first byte 10 s.
    labSpec("labi", "timeout_seconds = 10\nidle_timeout_seconds = 1"),
    // The one that gets killed.
    labSpec("labd"),
    // nexo's protocol (v1), plain Python.
    { id: "hello_python", prefix: "/py", command: "python3", args: ["-u", HELLO_PY] },
  ]);
});
after(() => p?.close());

const stderrLines = () => p.logs.filter((l) => l.stream === "stderr").map((l) => String(l.msg));

test("SSE: events arrive one by one, the first long before the plugin made the last", async () => {
  const n = 8;
  const started = Date.now();
  const arrivals: { at: number; id: number; t: number }[] = [];
  const outcome = await new Promise<{ status: number; type: string | undefined; te: string | undefined }>((resolve, reject) => {
    const req = httpGet(`${p.url}/lab/sse?n=${n}&ms=150`, { agent: false }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        const at = Date.now();
        text += chunk;
        for (let cut = text.indexOf("\n\n"); cut >= 0; cut = text.indexOf("\n\n")) {
          const event = text.slice(0, cut);
          text = text.slice(cut + 2);
          const data = /^data: (.*)$/m.exec(event)?.[1];
          assert.ok(data, `event without data: ${JSON.stringify(event)}`);
          const { i, t } = JSON.parse(data) as { i: number; t: number };
          arrivals.push({ at, id: i, t });
        }
      });
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, type: res.headers["content-type"], te: res.headers["transfer-encoding"] }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    setTimeout(() => req.destroy(new Error("SSE took over 15 s")), 15_000).unref();
  });
  assert.equal(outcome.status, 200);
  assert.equal(outcome.type, "text/event-stream");
  assert.equal(outcome.te, "chunked");
  assert.deepEqual(
    arrivals.map((a) => a.id),
    Array.from({ length: n }, (_, i) => i),
  );
  for (let i = 1; i < n; i++) {
    const prev = defined(arrivals[i - 1], `event ${i - 1}`);
    const cur = defined(arrivals[i], `event ${i}`);
    assert.ok(cur.at >= prev.at, `event ${i} arrived before event ${i - 1}`);
    // Causality check on the plugin's stamps: it made them ≥ 150 ms apart.
    assert.ok(cur.t > prev.t, `event ${i} was made before event ${i - 1}`);
  }
  const first = defined(arrivals[0], "event 0");
  const last = defined(arrivals[n - 1], `event ${n - 1}`);
  // The heart of it: the client had event 0 before the plugin even produced event n-1 (nothing
  // in between held the events back), and well within the first half of the whole exchange.
  assert.ok(first.at < last.t, `first event arrived at ${first.at}, after the last was produced at ${last.t}`);
  assert.ok(first.at - started < (last.at - started) / 2, `first event after ${first.at - started} ms of ${last.at - started} ms`);
  // And the events were spread out on arrival, not delivered in one burst at the end.
  assert.ok(last.at - first.at >= (n - 1) * 150 * 0.5, `events arrived within ${last.at - first.at} ms`);
});

test("the client's disconnect reaches the plugin's request.signal", async () => {
  const tag = `hold-${Date.now()}`;
  await new Promise<void>((resolve, reject) => {
    const req = httpGet(`${p.url}/lab/hold?tag=${tag}`, { agent: false }, (res) => {
      assert.equal(res.statusCode, 200);
      // Mid-stream: after the first chunk, the client vanishes.
      res.once("data", () => {
        req.destroy();
        resolve();
      });
    });
    req.on("error", (err) => {
      if (!req.destroyed) reject(err);
    });
  });
  await until(() => stderrLines().some((l) => l === `lab: aborted ${tag} AbortError`), 5000, "the plugin's abort line in portico's log");
  const s = await getJson<{ aborted: string }>(`${p.url}/lab/state?tag=${tag}`);
  assert.equal(s.aborted, "AbortError");
  // The stream is gone on both sides: nothing left in flight.
  await until(async () => (await healthOf("lab")).inFlight === 0, 5000, "lab to have no stream in flight");
});

interface PluginHealth {
  id: string;
  state: string;
  pid: number | null;
  restarts: number;
  inFlight: number;
  protocol?: number;
}
async function healthOf(id: string): Promise<PluginHealth> {
  const h = await getJson<{ plugins: PluginHealth[] }>(`${p.url}/health`);
  const found = h.plugins.find((x) => x.id === id);
  assert.ok(found, `${id} in /health`);
  return found;
}

test("the client's disconnect before the response head reaches the plugin too", async () => {
  const tag = `early-${Date.now()}`;
  const req = httpGet(`${p.url}/lab/never?tag=${tag}`, { agent: false });
  req.on("error", () => {});
  // The stream is open on the plugin's side once portico counts it in flight.
  await until(async () => (await healthOf("lab")).inFlight > 0, 5000, "the request to reach the plugin");
  req.destroy();
  await until(() => stderrLines().includes(`lab: aborted ${tag} AbortError`), 5000, "the plugin's abort line");
  await until(async () => (await healthOf("lab")).inFlight === 0, 5000, "lab to have no stream in flight");
});

test("time to first byte: a plugin that never answers gets the client a 504 with the seed's body", async () => {
  const tag = `never-${Date.now()}`;
  const t0 = Date.now();
  const r = await fetchRaw(`${p.url}/labt/never?tag=${tag}`);
  const took = Date.now() - t0;
  assert.equal(r.status, 504);
  assert.equal(r.body.toString(), '{"error":"plugin gateway timeout"}');
  assert.ok(took >= 900 && took < 8000, `504 after ${took} ms (timeout_seconds = 1)`);
  // portico reset the stream with "timeout": the handler's signal says so.
  await until(() => stderrLines().includes(`lab: aborted ${tag} TimeoutError`), 5000, "the plugin to see the timeout");
});

test("idle timeout cuts a stalled upload", async () => {
  const tag = `stalled-${Date.now()}`;
  const total = 2 * MiB;
  const t0 = Date.now();
  const result = await within(
    new Promise<{ status?: number; body?: string; error?: string }>((resolve) => {
      const req = httpRequest(
        `${p.url}/labi/upload?tag=${tag}`,
        { method: "POST", agent: false, headers: { "content-type": "application/octet-stream", "content-length": String(total) } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode, body }));
          res.on("error", (err) => resolve({ status: res.statusCode, error: err.message }));
        },
      );
      req.on("error", (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message }));
      // Half the body, then nothing: the request is never completed.
      req.write(Buffer.alloc(total / 2, 0x61));
    }),
    "the stalled upload to be cut",
    10_000,
  );
  const took = Date.now() - t0;
  // Cut by the 1 s idle timeout, not the 10 s time-to-first-byte one.
  assert.ok(took >= 900 && took < 8000, `cut after ${took} ms`);
  // portico answers 408 while it can; a client still writing may see the connection close instead.
  if (result.status !== undefined) {
    assert.equal(result.status, 408, JSON.stringify(result));
    assert.equal(result.body, '{"error":"request timeout"}');
  } else {
    assert.ok(result.error, "the client saw neither an answer nor an error");
  }
  // The plugin's body stream failed (it had received the first half, not all of it).
  await until(() => stderrLines().some((l) => l.startsWith(`lab: upload ${tag} failed after`)), 5000, "the plugin's upload to fail");
  const line = stderrLines().find((l) => l.startsWith(`lab: upload ${tag} failed after`));
  assert.ok(line);
  const got = Number(/after (\d+) bytes/.exec(line)?.[1]);
  assert.ok(got > 0 && got <= total / 2, line);
});

test("idle timeout cuts a response that stalls after its head", async () => {
  const tag = `stall-${Date.now()}`;
  const t0 = Date.now();
  const out = await streamGet(`${p.url}/labi/stall?tag=${tag}`, 10_000);
  const took = Date.now() - t0;
  assert.equal(out.status, 200);
  assert.equal(out.body.toString(), "first\n");
  assert.equal(out.complete, false, "a cut stream must not look complete");
  assert.ok(out.truncated, "the client must see the transfer cut short");
  assert.ok(took >= 900 && took < 8000, `cut after ${took} ms`);
  await until(() => stderrLines().includes(`lab: aborted ${tag} TimeoutError`), 5000, "the plugin to see the timeout");
});

test("a first byte slower than idle_timeout_seconds but within timeout_seconds is not cut", async () => {
  // labi: timeout_seconds = 10, idle_timeout_seconds = 1. The wait for the head is the former's.
  const t0 = Date.now();
  const r = await fetchRaw(`${p.url}/labi/late?ms=2500`);
  assert.equal(r.status, 200, r.body.toString());
  assert.equal(r.body.toString(), "late\n");
  assert.ok(Date.now() - t0 >= 2400);
});

test("an SSE stream with heartbeats outlives idle_timeout_seconds", async () => {
  const t0 = Date.now();
  // 10 heartbeats 300 ms apart: 3 s in all, three times the 1 s idle timeout.
  const out = await streamGet(`${p.url}/labi/heartbeat?n=10&ms=300`, 15_000);
  const took = Date.now() - t0;
  assert.equal(out.status, 200);
  assert.ok(out.complete && !out.truncated, `heartbeat stream cut: ${out.error}`);
  assert.ok(took >= 2500, `lived ${took} ms`);
  const text = out.body.toString();
  assert.equal((text.match(/^: beat \d+$/gm) ?? []).length, 10);
  assert.ok(text.endsWith("data: done\n\n"));
});

test("plugin dies mid-stream: the client sees a truncated transfer, portico restarts the plugin", async () => {
  const before = await healthOf("labd");
  assert.equal(before.state, "ready");
  const out = await streamGet(`${p.url}/labd/die`, 10_000);
  assert.equal(out.status, 200);
  assert.equal(out.headers["transfer-encoding"], "chunked");
  assert.match(out.body.toString(), /^chunk 0\nchunk 1\nchunk 2\n$/);
  assert.equal(out.complete, false, "a cut chunked body must not look complete");
  assert.ok(out.truncated, "the client must be able to tell the body was cut");
  await until(
    async () => {
      const h = await healthOf("labd");
      return h.state === "ready" && h.restarts > before.restarts && h.pid !== before.pid;
    },
    10_000,
    "labd to be restarted",
  );
  const again = await getJson<{ pid: number }>(`${p.url}/labd/pid`);
  assert.notEqual(again.pid, before.pid);
  // The daemon itself never stopped serving.
  assert.equal((await fetchRaw(`${p.url}/health`)).status, 200);
});

test("plugin resets mid-body (its body stream fails): truncated transfer, plugin stays up", async () => {
  const pid = (await healthOf("lab")).pid;
  const out = await streamGet(`${p.url}/lab/reset`, 10_000);
  assert.equal(out.status, 200);
  assert.equal(out.body.toString(), "chunk 0\nchunk 1\n");
  assert.equal(out.complete, false);
  assert.ok(out.truncated);
  assert.equal((await healthOf("lab")).pid, pid);
  assert.equal((await fetchRaw(`${p.url}/lab/pid`)).status, 200);
});

test("a response that breaks its own Content-Length is cut, never passed on as complete", async () => {
  const short = await streamGet(`${p.url}/lab/cl-lie?cl=20&send=10`);
  assert.equal(short.status, 200);
  assert.equal(short.headers["content-length"], "20");
  assert.equal(short.complete, false);
  assert.ok(short.truncated);
  assert.ok(short.body.length <= 10);

  // Over-long: never more than announced, and the client can tell it was cut.
  const long = await streamGet(`${p.url}/lab/cl-lie?cl=10&send=20`);
  assert.equal(long.status, 200);
  assert.ok(long.body.length <= 10);
  assert.equal(long.complete, false);
  assert.ok(long.truncated);
  assert.equal((await fetchRaw(`${p.url}/lab/pid`)).status, 200);
});

test("a plugin answering before it read the upload: the client gets the answer, no stream lingers", async () => {
  for (const size of [100, MiB, 16 * MiB]) {
    const r = await fetchRaw(
      `${p.url}/lab/early`,
      { method: "POST", body: Buffer.alloc(size, 1), headers: { "content-type": "application/octet-stream" } },
      30_000,
    );
    assert.equal(r.status, 413);
    assert.deepEqual(JSON.parse(r.body.toString()), { error: "not reading that" });
    await until(async () => (await healthOf("lab")).inFlight === 0, 5000, `no stream left in flight after a ${size}-byte upload`);
  }
});

test("many exchanges at once on one plugin stay apart", async () => {
  const n = 32;
  const results = await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const body = Buffer.alloc(64 * 1024 + i * 4099, i);
      const r = await fetchRaw(
        `${p.url}/lab/echo?tag=x${i}`,
        { method: "POST", body, headers: { "content-type": "application/octet-stream" } },
        30_000,
      );
      return { i, r, body };
    }),
  );
  for (const { i, r, body } of results) {
    assert.equal(r.status, 200);
    const prefix = Buffer.from(`x${i}:`);
    assert.ok(r.body.subarray(0, prefix.length).equals(prefix), `exchange ${i} got another's answer`);
    assert.ok(r.body.subarray(prefix.length).equals(body), `exchange ${i}: body differs`);
  }
  await until(async () => (await healthOf("lab")).inFlight === 0, 5000, "every stream to be over");
});

test("a handler that throws before responding: 500 from the SDK", async () => {
  const r = await fetchRaw(`${p.url}/lab/throw`);
  assert.equal(r.status, 500);
  assert.equal(r.body.toString(), "internal error\n");
  assert.ok(r.headers["x-request-id"]);
  await until(() => stderrLines().some((l) => l.includes("handler failed on purpose")), 5000, "the SDK's report on stderr");
});

test("v1 and v2 plugins side by side: both served, each on its own protocol", async () => {
  const health = await getJson<{ status: string; plugins: PluginHealth[] }>(`${p.url}/health`);
  const py = health.plugins.find((x) => x.id === "hello_python");
  const lab = health.plugins.find((x) => x.id === "lab");
  assert.equal(py?.state, "ready");
  assert.equal(lab?.state, "ready");
  assert.equal(py?.protocol, 1, "hello-python says nothing in initialize: v1");
  assert.equal(lab?.protocol, 2, "the SDK takes portico's offer: v2");

  const [v1, v2] = await Promise.all([fetchRaw(`${p.url}/py/`), streamGet(`${p.url}/lab/download?bytes=${32 * MiB}&tag=side`)]);
  assert.equal(v1.status, 200);
  assert.ok(v1.body.length > 0);
  // 32 MiB streamed chunked, no Content-Length: only v2 can do that (v1 buffers, and bodies over
  // ~750 KiB don't survive nexo's frame limit).
  assert.equal(v2.status, 200);
  assert.equal(v2.headers["transfer-encoding"], "chunked");
  assert.equal(v2.body.length, 32 * MiB);
  assert.ok(v2.complete);
});

// A v1 plugin's requests go through the same daemon while v2 streams are open on another.
test("a v1 request is answered while a v2 stream is held open", async () => {
  const tag = `held-${Date.now()}`;
  const req = httpGet(`${p.url}/lab/hold?tag=${tag}`, { agent: false });
  try {
    await within(
      new Promise<void>((resolve, reject) => {
        req.on("response", (res) => res.once("data", () => resolve()));
        req.on("error", reject);
      }),
      "the held stream to start",
    );
    const r = await fetchRaw(`${p.url}/py/`);
    assert.equal(r.status, 200);
  } finally {
    req.destroy();
  }
  await until(() => stderrLines().includes(`lab: aborted ${tag} AbortError`), 5000, "the held stream to be cancelled");
});

test("a whole body of known length (string, bytes, ArrayBuffer, Blob) goes out with Content-Length at any size", async () => {
  for (const kind of ["string", "bytes", "buffer", "blob"]) {
    for (const bytes of [1, 100 * 1024, 3 * MiB]) {
      const r = await fetchRaw(`${p.url}/lab/whole?kind=${kind}&bytes=${bytes}`);
      const what = `${kind}, ${bytes} bytes`;
      assert.equal(r.status, 200, what);
      assert.equal(r.headers["content-length"], String(bytes), what);
      assert.equal(r.headers["transfer-encoding"], undefined, what);
      assert.equal(r.body.length, bytes, what);
    }
  }
  // HEAD announces the length GET would send, and sends nothing.
  const head = await fetchRaw(`${p.url}/lab/whole?kind=blob&bytes=200000`, { method: "HEAD" });
  assert.equal(head.headers["content-length"], "200000");
  assert.equal(head.body.length, 0);
});
