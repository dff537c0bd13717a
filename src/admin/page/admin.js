// portico's status page: reads /admin/api/events (server-sent events, read with fetch so that a
// bearer token can go with it) and draws one card per plugin. No framework, no build step.

const TOKEN_KEY = "portico-admin-token";
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

// A token in the address's fragment (#token=…) never reaches a server or a log: taken, then dropped.
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";
function tokenFromAddress() {
  if (!location.hash.startsWith("#token=")) return false;
  token = decodeURIComponent(location.hash.slice(7));
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", location.pathname);
  return true;
}
tokenFromAddress();
const authHeaders = () => (token ? { Authorization: `Bearer ${token}` } : {});

/** Turns element creation into one call: el("div", "class", child, "text"…). */
function el(tag, className, ...children) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  for (const c of children) e.append(c);
  return e;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
const fmtRate = (r) => (r >= 10 ? String(Math.round(r)) : r.toFixed(1));
const fmtPercent = (r) => (r === null ? "—" : `${(r * 100).toFixed(r > 0 && r < 0.01 ? 2 : 1)}%`);
function fmtMs(ms) {
  if (ms === null) return "—";
  if (ms < 1) return `${Number(ms.toPrecision(2))} ms`;
  if (ms < 1000) return `${Math.round(ms * 10) / 10} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A minute of requests per second as an area, with a red tick under each second that had 5xx answers. */
function drawSpark(svg, history, errors) {
  const w = 300;
  const h = 44;
  const n = history.length;
  const max = Math.max(1, ...history);
  const x = (i) => (n > 1 ? (i / (n - 1)) * w : 0);
  const y = (v) => h - 4 - (v / max) * (h - 8);
  let line = "";
  history.forEach((v, i) => {
    line += `${i ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
  });
  svg.querySelector(".line").setAttribute("d", line);
  svg.querySelector(".area").setAttribute("d", `${line}L${w},${h}L0,${h}Z`);
  const ticks = svg.querySelector(".errs");
  ticks.replaceChildren();
  errors.forEach((v, i) => {
    if (!v) return;
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("class", "err");
    r.setAttribute("x", (x(i) - 1.5).toFixed(1));
    r.setAttribute("y", String(h - 3));
    r.setAttribute("width", "3");
    r.setAttribute("height", "3");
    ticks.append(r);
  });
}

function figure(key, label) {
  const v = el("span", "v", "—");
  v.dataset.field = key;
  return el("div", "figure", v, el("span", "k", label));
}

function newCard(id) {
  const card = el("article", "card");
  card.dataset.plugin = id;
  const state = el("span", "pill");
  state.dataset.field = "state";
  const prefix = el("span", "prefix");
  prefix.dataset.field = "prefix";
  const proto = el("span", "proto");
  proto.dataset.field = "protocol";
  const facts = el("div", "facts");
  facts.dataset.field = "facts";
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 300 44");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.dataset.field = "spark";
  for (const cls of ["area", "line"]) {
    const p = document.createElementNS(SVG, "path");
    p.setAttribute("class", cls);
    svg.append(p);
  }
  const errs = document.createElementNS(SVG, "g");
  errs.setAttribute("class", "errs");
  svg.append(errs);
  const figures = el(
    "div",
    "figures",
    figure("rps", "req/s"),
    figure("errors", "errors"),
    figure("p50", "p50"),
    figure("p99", "p99"),
    figure("inflight", "in flight"),
  );
  const exit = el("div", "exit");
  exit.dataset.field = "exit";
  const stderr = el("pre", "stderr");
  stderr.dataset.field = "stderr";
  const restart = el("button", "", "Restart");
  restart.type = "button";
  restart.dataset.action = "restart";
  restart.dataset.field = "restart";
  const stop = el("button", "danger", "Stop");
  stop.type = "button";
  stop.dataset.action = "stop";
  restart.addEventListener("click", () => act(id, "restart", restart));
  stop.addEventListener("click", () => {
    if (confirm(`Stop ${id}? Its requests get 503 until it is restarted.`)) act(id, "stop", stop);
  });
  card.append(
    el("div", "head", el("h2", "", id), state, prefix, proto),
    facts,
    svg,
    figures,
    exit,
    stderr,
    el("div", "actions", restart, stop),
  );
  return card;
}

function factsOf(p) {
  const parts = [];
  if (p.replicas?.length) {
    parts.push(`on ${p.replicas.map((r) => `${r.name || r.host}${r.pid ? ` (pid ${r.pid})` : ""}`).join(", ")}`);
  } else {
    parts.push(`pid ${p.pid ?? "—"}`);
  }
  parts.push(`up ${fmtDuration(p.uptimeSeconds)}`);
  parts.push(`${p.restarts} restart${p.restarts === 1 ? "" : "s"}`);
  parts.push(`${p.traffic.requests} request${p.traffic.requests === 1 ? "" : "s"}`);
  return parts.join(" · ");
}

function set(card, field, text) {
  const e = card.querySelector(`[data-field="${field}"]`);
  if (e.textContent !== text) e.textContent = text;
  return e;
}

function render(status) {
  const overall = $("overall");
  overall.dataset.status = status.portico.status;
  overall.textContent = status.portico.status;
  const n = status.plugins.length;
  const hosts = status.portico.hosts;
  $("meta").textContent =
    `${status.portico.role} · pid ${status.portico.pid} · up ${fmtDuration(status.portico.uptimeSeconds)} · ${n} plugin${n === 1 ? "" : "s"}` +
    (hosts ? ` · ${hosts.length} host${hosts.length === 1 ? "" : "s"}` : "");
  const list = $("plugins");
  const seen = new Set();
  for (const p of status.plugins) {
    seen.add(p.id);
    let card = list.querySelector(`[data-plugin="${CSS.escape(p.id)}"]`);
    if (!card) {
      card = newCard(p.id);
      list.append(card);
    }
    card.dataset.state = p.state;
    set(card, "state", p.state).dataset.state = p.state;
    set(card, "prefix", p.prefix ?? "(no route)");
    set(card, "protocol", typeof p.protocol === "number" ? `v${p.protocol}` : (p.protocol ?? "v–"));
    set(card, "facts", factsOf(p));
    const t = p.traffic;
    set(card, "rps", fmtRate(t.rps));
    set(card, "errors", fmtPercent(t.errorRate));
    set(card, "p50", fmtMs(t.p50Ms));
    set(card, "p99", fmtMs(t.p99Ms));
    set(card, "inflight", String(p.inFlight));
    set(card, "exit", p.state === "ready" || !p.lastExit ? "" : `last exit: ${p.lastExit}`);
    const stderr = card.querySelector('[data-field="stderr"]');
    const text = p.stderr === null ? "(stderr stays on its NATS host)" : p.stderr.slice(-8).join("\n");
    if (stderr.textContent !== text) {
      stderr.textContent = text;
      stderr.scrollTop = stderr.scrollHeight;
    }
    drawSpark(card.querySelector('[data-field="spark"]'), t.history, t.errorHistory);
    for (const b of card.querySelectorAll("button")) b.hidden = !p.local;
    const stopped = p.state === "stopped";
    set(card, "restart", stopped ? "Start" : "Restart");
    card.querySelector('[data-action="stop"]').disabled = stopped || p.state === "stopping";
  }
  for (const card of [...list.children]) if (!seen.has(card.dataset.plugin)) card.remove();
  $("empty").hidden = n > 0;
}

let toastTimer;
function toast(text) {
  const t = $("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    t.hidden = true;
  }, 4000);
}

async function act(id, action, button) {
  button.disabled = true;
  try {
    const res = await fetch(`/admin/api/plugins/${encodeURIComponent(id)}/${action}`, { method: "POST", headers: authHeaders() });
    const body = await res.json().catch(() => ({}));
    if (res.status === 401) return askToken("The token was refused.");
    if (!res.ok) return toast(`${action} ${id}: ${body.error ?? res.status}`);
    toast(`${id}: ${action === "restart" ? "restarted" : "stopped"} (${body.plugin?.state})`);
  } catch (err) {
    toast(`${action} ${id}: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

function setConn(state, text) {
  const c = $("conn");
  c.dataset.conn = state;
  c.textContent = text;
}

let waitingForToken = null;
function askToken(reason) {
  $("auth-reason").textContent = reason;
  $("auth").hidden = false;
  $("plugins").replaceChildren();
  setConn("offline", "needs a token");
  $("token").focus();
  return new Promise((resolve) => {
    waitingForToken = resolve;
  });
}
function tokenGiven() {
  $("auth").hidden = true;
  waitingForToken?.();
  waitingForToken = null;
}
$("auth-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  tokenGiven();
});
// An address with #token=… opened in a tab that has the page already.
window.addEventListener("hashchange", () => {
  if (tokenFromAddress()) tokenGiven();
});

/** Reads the event stream for as long as it lasts; reconnects after a pause when it ends. */
async function follow() {
  for (;;) {
    try {
      const res = await fetch("/admin/api/events", { headers: authHeaders(), cache: "no-store" });
      if (res.status === 401) {
        await askToken(token ? "The token was refused. Enter the admin token." : "This portico asks for its admin token.");
        continue;
      }
      if (!res.ok) throw new Error(`${res.status} ${(await res.json().catch(() => ({}))).error ?? ""}`);
      setConn("live", "live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart())
            .join("\n");
          if (data) render(JSON.parse(data));
        }
      }
      setConn("offline", "disconnected; retrying…");
    } catch (err) {
      setConn("offline", `offline (${err.message}); retrying…`);
    }
    await new Promise((r) => setTimeout(r, 1500));
  }
}

follow();
