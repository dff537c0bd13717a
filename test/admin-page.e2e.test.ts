/**
 * The status page in a real browser (Debian's `chromium`, driven by playwright-core): it renders
 * every plugin, updates by itself when traffic flows and when a plugin crashes and comes back, its
 * buttons restart and stop plugins, and without the token it shows nothing but the token form.
 * Leaves a screenshot in test-output/admin-page.png for a person to look at.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { type Browser, chromium, type Locator, type Page } from "playwright-core";
import { FAST_SUPERVISOR, type Running, startPortico, until } from "./support/portico.js";
import { labSpec } from "./support/v2.js";

const TOKEN = "test-admin-token-0123456789abcdef";
const OUT = fileURLToPath(new URL("../test-output/", import.meta.url));
/** Where Debian's package `chromium` puts the browser. */
const CHROMIUM = ["/usr/bin/chromium", "/usr/lib/chromium/chromium"].find((p) => existsSync(p));

let p: Running;
let browser: Browser;
let page: Page;
/** Script errors and CSP violations on the page: there must be none. */
const problems: string[] = [];

before(async () => {
  assert.ok(CHROMIUM, "the status page test needs the Debian package `chromium` (sh scripts/install-system-deps.sh installs it)");
  p = await startPortico(
    [
      { id: "alpha", env: { FIXTURE_STDERR: "alpha: listening on stdio" } },
      { id: "crashy", env: { FIXTURE_STDERR: "crashy: ready for anything" } },
      labSpec("lab"),
    ],
    {
      admin: { enabled: true, token: TOKEN },
      // A restart delay long enough for the page to be seen saying `restarting`.
      supervisor: { ...FAST_SUPERVISOR, restartDelayMs: 1500, restartMaxDelayMs: 3000 },
    },
  );
  browser = await chromium.launch({ executablePath: CHROMIUM });
  page = await browser.newPage({ viewport: { width: 1320, height: 860 } });
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (m) => {
    if (m.text().includes("Content Security Policy")) problems.push(`CSP: ${m.text()}`);
  });
});

after(async () => {
  await browser?.close();
  await p?.close();
});

const card = (id: string) => page.locator(`[data-plugin="${id}"]`);
const field = (id: string, name: string) => card(id).locator(`[data-field="${name}"]`);
/** What an element says (the DOM's textContent: CSS's uppercasing left out). */
const text = async (l: Locator) => (await l.textContent()) ?? "";
const pidOf = (id: string) => p.portico.plugins.get(id)?.status().pid;

/** Waits until the card of `id` says `state` (the page updating by itself: no reload). */
async function cardState(id: string, state: string, timeout = 10_000): Promise<void> {
  await page.waitForSelector(`[data-plugin="${id}"][data-state="${state}"]`, { timeout });
}

test("without the token the page shows only the token form, and its API answers 401", async () => {
  await page.goto(`${p.url}/admin`);
  await page.waitForSelector("#auth:not([hidden])", { timeout: 10_000 });
  assert.match(await text(page.locator("#auth-reason")), /admin token/);
  assert.equal(await page.locator("[data-plugin]").count(), 0, "no plugin shown");
  const api = await page.evaluate(async () => {
    const r = await fetch("/admin/api/status");
    return { status: r.status, auth: r.headers.get("www-authenticate"), body: await r.json() };
  });
  assert.deepEqual(api, { status: 401, auth: 'Bearer realm="portico admin"', body: { error: "unauthorized" } });
  // A wrong token is refused too: the form comes back.
  await page.fill("#token", "not-the-token-at-all-0000");
  await page.click("#auth-form button");
  await page.waitForSelector("#auth:not([hidden])", { timeout: 10_000 });
  await until(async () => (await text(page.locator("#auth-reason"))).includes("refused"), 10_000, "the token to be refused");
  assert.equal(await page.locator("[data-plugin]").count(), 0);
});

test("with the token it renders every plugin: state, prefix, protocol, pid, stderr", async () => {
  await page.fill("#token", TOKEN);
  await page.click("#auth-form button");
  for (const id of ["alpha", "crashy", "lab"]) await cardState(id, "ready");
  assert.equal(await page.locator("[data-plugin]").count(), 3);
  assert.equal(await text(field("alpha", "prefix")), "/alpha");
  assert.equal(await text(field("alpha", "protocol")), "v1");
  assert.equal(await text(field("lab", "protocol")), "v2");
  assert.equal(await text(field("alpha", "state")), "ready");
  for (const id of ["alpha", "crashy", "lab"]) {
    assert.match(await text(field(id, "facts")), new RegExp(`pid ${pidOf(id)} · up \\d+s · 0 restarts`));
  }
  assert.match(await text(field("alpha", "stderr")), /alpha: listening on stdio/);
  assert.equal(await text(page.locator("#overall")), "ok");
});

test("a token in the address's #fragment opens the page too, and leaves the address bar", async () => {
  const other = await browser.newPage();
  try {
    await other.goto(`${p.url}/admin#token=${TOKEN}`);
    await other.waitForSelector('[data-plugin="alpha"][data-state="ready"]', { timeout: 10_000 });
    assert.equal(other.url(), `${p.url}/admin`);
    assert.equal(await other.locator("#auth").isHidden(), true);
  } finally {
    await other.close();
  }
});

test("traffic shows up by itself: requests per second, errors, latency, sparkline", async () => {
  // A bounded load loop, some of it answered 500 by the plugin: 2.5 s at most.
  const deadline = Date.now() + 2500;
  let sent = 0;
  while (Date.now() < deadline && sent < 2000) {
    const path = sent % 10 === 9 ? "/alpha/status/500" : "/alpha/echo";
    await (await fetch(`${p.url}${path}`)).arrayBuffer();
    sent++;
  }
  await until(
    async () => {
      const [rps = "", errors = "", p50 = "", p99 = ""] = await Promise.all(
        ["rps", "errors", "p50", "p99"].map((f) => text(field("alpha", f))),
      );
      return Number(rps) > 0 && /^\d/.test(errors) && errors !== "0.0%" && p50.endsWith("ms") && p99.endsWith("ms");
    },
    10_000,
    "alpha's figures to show the traffic",
  );
  const line = await field("alpha", "spark").locator("path.line").getAttribute("d");
  const ys = (line ?? "")
    .split(/[ML]/)
    .filter(Boolean)
    .map((pt) => Number(pt.split(",")[1]));
  assert.ok(ys.length === 60 && Math.min(...ys) < Math.max(...ys), `the sparkline rises with the traffic: ${line}`);
  assert.ok((await field("alpha", "spark").locator("rect.err").count()) > 0, "seconds with 5xx answers are marked");
  assert.equal(await text(field("crashy", "rps")), "0.0", "the other plugins' figures are their own");
});

test("a crash shows as restarting, then ready again with one restart and its last words", async () => {
  const before = pidOf("crashy");
  const r = await fetch(`${p.url}/crashy/crash`);
  assert.equal(r.status, 502);
  await cardState("crashy", "restarting");
  assert.match(await text(field("crashy", "exit")), /last exit: exited with code 3/);
  await cardState("crashy", "ready");
  assert.notEqual(pidOf("crashy"), before);
  await until(async () => (await text(field("crashy", "facts"))).includes("1 restart "), 10_000, "crashy's restart count");
  assert.match(await text(field("crashy", "stderr")), /fixture: crashing on purpose/);
});

test("the Restart button restarts the plugin: a new process, ready, one log line per state change", async () => {
  const before = pidOf("alpha");
  const mark = p.logs.length;
  await card("alpha").locator('button[data-action="restart"]').click();
  await until(
    async () =>
      (await card("alpha").getAttribute("data-state")) === "ready" && !(await text(field("alpha", "facts"))).includes(`pid ${before} `),
    15_000,
    "alpha ready with a new pid",
  );
  assert.notEqual(pidOf("alpha"), before);
  // The card can show the new process (the page's status stream) before the button's own request
  // has its answer: the toast comes with that answer.
  await until(async () => /alpha: restarted \(ready\)/.test(await text(page.locator("#toast"))), 10_000, "the restart's toast");
  const states = p.logs.slice(mark).filter((l) => l.plugin === "alpha" && l.previous !== undefined);
  assert.deepEqual(
    states.map((l) => `${l.previous}→${l.state}`),
    ["ready→stopping", "stopping→stopped", "stopped→starting", "starting→ready"],
  );
  assert.equal((await fetch(`${p.url}/alpha/echo`)).status, 200);
});

test("the Stop button stops a plugin (after a confirmation); its requests then get 503; screenshot", async () => {
  page.once("dialog", (d) => void d.accept());
  await card("lab").locator('button[data-action="stop"]').click();
  await cardState("lab", "stopped", 15_000);
  assert.equal((await fetch(`${p.url}/lab/pid`)).status, 503);
  assert.equal(await text(page.locator("#overall")), "degraded");
  // Some fresh traffic for the picture, then let the page catch up with it.
  for (let i = 0; i < 40; i++) await (await fetch(`${p.url}/${i % 4 ? "alpha/echo" : "crashy/echo"}`)).arrayBuffer();
  await page.waitForTimeout(1200);
  assert.equal(await text(card("lab").locator('button[data-action="restart"]')), "Start");
  assert.ok(await card("lab").locator('button[data-action="stop"]').isDisabled());
  await page.setViewportSize({ width: 1320, height: 440 });
  await page.locator("#toast").evaluate((e) => e.setAttribute("hidden", ""));
  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, "admin-page.png");
  await page.screenshot({ path: file });
  assert.ok(existsSync(file));
  assert.deepEqual(problems, [], "no script error, no CSP violation on the page");
});
