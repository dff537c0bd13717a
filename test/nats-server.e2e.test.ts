/**
 * Proves test/support/nats-server.ts against real nats-server processes and a real client
 * (@nats-io/transport-node): config options reach the server, no-responders, restart on the same
 * port with client reconnection, user/password auth, and a routed 3-node cluster.
 */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type NatsServer, startNatsCluster, startNatsServer } from "./support/nats-server.js";

const servers: NatsServer[] = [];
const clients: NatsConnection[] = [];

after(async () => {
  await Promise.all(clients.map((c) => c.close().catch(() => {})));
  await Promise.all(servers.map((s) => s.stop()));
});

/** A tracked client (closed in `after`), with a bounded connect. */
async function client(opts: Parameters<typeof connect>[0]): Promise<NatsConnection> {
  const nc = await connect({ timeout: 2000, ...opts });
  clients.push(nc);
  return nc;
}

/** p, or a rejection if it has not settled within ms (the timer is cleared either way). */
function within<T>(ms: number, p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** The next message on a fresh subscription (bounded). */
function nextMessage(nc: NatsConnection, subject: string, ms = 5000) {
  const sub = nc.subscribe(subject, { max: 1 });
  const first = (async () => {
    for await (const m of sub) return m;
    throw new Error(`subscription to ${subject} ended without a message`);
  })();
  return within(ms, first, `a message on ${subject}`).finally(() => sub.unsubscribe());
}

test("a single server accepts a client and reports the configured max_payload", { timeout: 15_000 }, async () => {
  const srv = await startNatsServer({ maxPayload: 65536 });
  servers.push(srv);
  assert.equal(srv.url, `nats://127.0.0.1:${srv.port}`);
  const nc = await client({ servers: srv.url });
  assert.equal(nc.info?.max_payload, 65536);

  // Publish with a reply subject to a subject nobody listens on: the server answers 503 (no responders).
  const reply = nc.subscribe("test.reply", { max: 1 });
  const answered = (async () => {
    for await (const m of reply) return m;
    throw new Error("reply subscription ended without a message");
  })();
  await nc.flush();
  nc.publish("test.nobody-listens", "hello", { reply: "test.reply" });
  const msg = await within(5000, answered, "no-responders status");
  assert.equal(msg.headers?.code, 503);
});

test("restart() keeps the port and a reconnecting client comes back by itself", { timeout: 20_000 }, async () => {
  const srv = await startNatsServer();
  servers.push(srv);
  const { port, pid } = srv;
  const nc = await client({ servers: srv.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
  const reconnected = (async () => {
    for await (const s of nc.status()) if (s.type === "reconnect") return;
  })();

  await srv.restart();
  assert.equal(srv.port, port);
  assert.equal(srv.url, `nats://127.0.0.1:${port}`);
  assert.notEqual(srv.pid, pid, "a new process");
  await within(5000, reconnected, "client reconnect");

  // And it works again end to end after the reconnect.
  const got = nextMessage(nc, "test.after-restart");
  await nc.flush();
  nc.publish("test.after-restart", "again");
  assert.equal((await got).string(), "again");
});

test("user/password auth refuses a client without credentials and accepts one with them", { timeout: 15_000 }, async () => {
  const srv = await startNatsServer({ user: "alice", pass: "s3cret" });
  servers.push(srv);
  await assert.rejects(client({ servers: srv.url }), /authorization/i);
  await assert.rejects(client({ servers: srv.url, user: "alice", pass: "wrong" }), /authorization/i);
  const nc = await client({ servers: srv.url, user: "alice", pass: "s3cret" });
  await nc.flush();
  assert.equal(nc.isClosed(), false);
});

test("a 3-node cluster carries a message from a client on node 0 to a subscriber on node 2", { timeout: 30_000 }, async () => {
  const cluster = await startNatsCluster(3);
  servers.push(...cluster);
  assert.equal(cluster.length, 3);
  assert.equal(new Set(cluster.map((s) => s.port)).size, 3, "distinct client ports");
  const [first, , last] = cluster as [NatsServer, NatsServer, NatsServer];
  const sub = await client({ servers: last.url });
  const pub = await client({ servers: first.url });
  assert.notEqual(sub.info?.server_id, pub.info?.server_id, "two different servers");

  const got = nextMessage(sub, "test.cluster");
  await sub.flush();
  // Interest from the fresh subscription takes a moment to reach node 0 over the route: republish until it lands.
  let landed = false;
  void got.then(
    () => {
      landed = true;
    },
    () => {},
  );
  for (let i = 0; i < 50 && !landed; i++) {
    pub.publish("test.cluster", "across");
    await sleep(100);
  }
  assert.equal((await got).string(), "across");
});
