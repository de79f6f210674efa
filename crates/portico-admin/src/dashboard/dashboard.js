// Portico's dashboard. It reads two things from the admin API, with the admin token kept in
// this tab's sessionStorage and sent as `Authorization: Bearer` (never in a URL):
// `/admin/v1/overview` (what the data plane serves now) and `/metrics` (the Prometheus
// exposition). Rates and latencies over the last minutes are differences between the
// exposition's counters now and at the oldest scrape kept (at most WINDOW_MS old), the way
// Prometheus computes `increase` and `histogram_quantile`; before a second scrape they are
// the counts since the process started. Everything shown is written with textContent.
"use strict";

const KEY = "portico.admin.token";
const WINDOW_MS = 5 * 60 * 1000;
const REFRESH_MS = (() => {
  const asked = Number(new URLSearchParams(location.search).get("refresh"));
  return asked >= 200 ? asked : 2000;
})();

let history = []; // [{t, series}], oldest first
let timer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

function fill(tableId, rows, empty) {
  const body = $(tableId).tBodies[0];
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const cols = $(tableId).tHead ? $(tableId).tHead.rows[0].cells.length : 2;
    body.append(el("tr", {}, el("td", { colspan: cols, class: "muted" }, empty)));
  }
}

// The Prometheus text format: one sample per line, `name{label="value",…} value`.
function parseMetrics(text) {
  const series = new Map();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) {
        labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
      }
    }
    series.set(m[1] + (m[2] || ""), { name: m[1], labels, value: Number(m[4]) });
  }
  return series;
}

// What a counter grew by over the window (a counter that went down was reset: all of it).
function increase(key, now, base) {
  const v = now.get(key).value;
  const b = base ? base.get(key) : undefined;
  if (!b || b.value > v) return v;
  return v - b.value;
}

function samples(now, base, name, match) {
  const out = [];
  for (const [key, s] of now) {
    if (s.name !== name) continue;
    if (match && !Object.entries(match).every(([k, v]) => s.labels[k] === v)) continue;
    out.push({ labels: s.labels, value: s.value, increase: increase(key, now, base) });
  }
  return out;
}

// The q-quantile of a histogram's buckets (cumulative, by `le`), interpolated within the
// bucket it falls in, as histogram_quantile does.
function quantile(q, buckets) {
  const sorted = buckets
    .map((b) => ({ le: b.labels.le === "+Inf" ? Infinity : Number(b.labels.le), n: b.increase }))
    .sort((a, b) => a.le - b.le);
  if (sorted.length === 0) return null;
  const total = sorted[sorted.length - 1].n;
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevN = 0;
  for (const b of sorted) {
    if (b.n >= rank) {
      if (b.le === Infinity) return prevLe;
      const inBucket = b.n - prevN;
      return inBucket > 0 ? prevLe + (b.le - prevLe) * ((rank - prevN) / inBucket) : b.le;
    }
    prevLe = b.le;
    prevN = b.n;
  }
  return prevLe;
}

function ms(seconds) {
  if (seconds === null) return "–";
  const v = seconds * 1000;
  return v < 10 ? v.toFixed(2) + " ms" : v < 1000 ? v.toFixed(0) + " ms" : (v / 1000).toFixed(2) + " s";
}

function span(msec) {
  const s = Math.round(msec / 1000);
  return s < 60 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
}

function mix(byClass, total) {
  const bar = el("div", { class: "mix", title: "" });
  const parts = [];
  for (const c of ["2", "3", "4", "5", "1"]) {
    const n = byClass[c] || 0;
    if (n === 0) continue;
    bar.append(el("span", { class: "c" + c }));
    bar.lastChild.style.width = ((100 * n) / total).toFixed(1) + "%";
    parts.push(c + "xx " + n);
  }
  bar.title = parts.join(", ");
  return el("div", {}, bar, el("div", { class: "legend", "data-mix": "" }, parts.join(" · ") || "no requests"));
}

function renderRoutes(overview, now, base) {
  const names = overview.routes.map((r) => r.name);
  const rows = overview.routes.map((r) => routeRow(r.name, r, now, base));
  // Requests no route took.
  const unrouted = samples(now, base, "portico_requests_total", { route: "" });
  if (unrouted.some((s) => s.increase > 0) && !names.includes("")) {
    rows.push(routeRow("", { name: "(no route)", path: "", methods: "", answer: "404 / 405" }, now, base));
  }
  fill("routes", rows, "no routes");
}

function routeRow(name, r, now, base) {
  const requests = samples(now, base, "portico_requests_total", { route: name });
  const byClass = {};
  let total = 0;
  for (const s of requests) {
    const c = s.labels.status.charAt(0);
    byClass[c] = (byClass[c] || 0) + s.increase;
    total += s.increase;
  }
  const buckets = samples(now, base, "portico_request_duration_seconds_bucket", { route: name });
  return el(
    "tr",
    { "data-route": r.name },
    el("td", {}, r.name),
    el("td", {}, el("code", {}, r.path)),
    el("td", { class: "muted" }, r.methods),
    el("td", { class: "muted" }, r.answer),
    el("td", { class: "n total" }, total),
    el("td", {}, mix(byClass, total)),
    el("td", { class: "n p50" }, ms(quantile(0.5, buckets))),
    el("td", { class: "n p99" }, ms(quantile(0.99, buckets))),
  );
}

function renderApis(overview) {
  fill(
    "apis",
    overview.apis.map((a) =>
      el(
        "tr",
        { "data-api": a.name },
        el("td", {}, a.name),
        el("td", {}, el("code", {}, a.base_path)),
        el(
          "td",
          {},
          ...a.versions.map((v) => {
            let text = v.id + " " + v.state;
            if (v.sunset) text += " (sunset " + v.sunset.slice(0, 10) + ")";
            const state = v.maintenance && v.maintenance.now ? "maintenance" : v.state;
            if (state === "maintenance") text += " · in maintenance";
            return el("span", { class: "badge " + state }, text);
          }),
        ),
      ),
    ),
    "no APIs",
  );
}

function renderUpstreams(overview, now, base) {
  const rows = [];
  for (const u of overview.upstreams) {
    for (const t of u.targets) {
      const sent = samples(now, base, "portico_upstream_requests_total", { upstream: u.name, target: t.target });
      const n = sent.reduce((a, s) => a + s.increase, 0);
      rows.push(
        el(
          "tr",
          { "data-target": t.target },
          el("td", {}, u.name),
          el("td", {}, el("code", {}, t.target)),
          el("td", {}, el("span", { class: "badge " + (t.healthy ? "up" : "down") }, t.healthy ? "up" : "down")),
          el("td", { class: "n" }, n),
        ),
      );
    }
  }
  fill("upstreams", rows, "no upstreams");
}

function renderLimits(now, base) {
  const rows = [];
  for (const s of samples(now, base, "portico_rate_limit_rejections_total")) {
    rows.push(el("tr", { "data-limit": s.labels.limit }, el("td", {}, "rate"), el("td", {}, s.labels.route), el("td", {}, s.labels.limit), el("td", { class: "n" }, s.increase)));
  }
  for (const s of samples(now, base, "portico_concurrency_rejections_total")) {
    rows.push(el("tr", { "data-limit": s.labels.limit }, el("td", {}, "concurrency"), el("td", {}, ""), el("td", {}, s.labels.limit), el("td", { class: "n" }, s.increase)));
  }
  fill("limits", rows, "nothing rejected");
}

function renderJobs(now) {
  fill(
    "jobs",
    samples(now, null, "portico_jobs_total").map((s) => el("tr", {}, el("td", {}, s.labels.state), el("td", { class: "n" }, s.value))),
    "no jobs on this node",
  );
}

function renderReloads(overview) {
  fill(
    "reloads",
    overview.reloads
      .slice()
      .reverse()
      .map((r) => el("tr", {}, el("td", {}, r.time.replace("T", " ").replace(/\.\d+Z$/, "Z")), el("td", {}, el("span", { class: "badge " + r.result }, r.result)))),
    "none yet",
  );
}

function renderProcess(now) {
  const one = (name) => {
    const s = samples(now, null, name);
    return s.length ? s[0].value : null;
  };
  const rows = [];
  for (const s of samples(now, null, "portico_connections")) {
    rows.push(["open " + s.labels.protocol + " connections", s.value]);
  }
  const rss = one("process_resident_memory_bytes");
  if (rss !== null) rows.push(["resident memory", (rss / 1048576).toFixed(1) + " MiB"]);
  const fds = one("process_open_fds");
  if (fds !== null) rows.push(["open files", fds]);
  const cpu = one("process_cpu_seconds_total");
  if (cpu !== null) rows.push(["CPU time", cpu.toFixed(1) + " s"]);
  const start = one("process_start_time_seconds");
  if (start !== null) rows.push(["up for", span(Date.now() - start * 1000)]);
  fill("process", rows.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { class: "n" }, v))), "");
}

async function get(path, token) {
  const resp = await fetch(path, { headers: { Authorization: "Bearer " + token }, cache: "no-store" });
  if (resp.status === 401) throw new Error("unauthorized");
  if (!resp.ok) throw new Error(path + ": " + resp.status);
  return resp;
}

async function refresh() {
  const token = sessionStorage.getItem(KEY);
  if (!token) return signedOut();
  try {
    const [overview, text] = await Promise.all([
      get("/admin/v1/overview", token).then((r) => r.json()),
      get("/metrics", token).then((r) => r.text()),
    ]);
    const t = Date.now();
    history.push({ t, series: parseMetrics(text) });
    history = history.filter((h) => t - h.t <= WINDOW_MS || h === history[history.length - 1]);
    const now = history[history.length - 1].series;
    const base = history.length > 1 ? history[0].series : null;
    $("window").textContent = base ? "last " + span(t - history[0].t) : "since the start";
    renderRoutes(overview, now, base);
    renderApis(overview);
    renderUpstreams(overview, now, base);
    renderLimits(now, base);
    renderJobs(now);
    renderReloads(overview);
    renderProcess(now);
    $("state").textContent = "refreshed " + new Date(t).toLocaleTimeString();
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) {
    if (e.message === "unauthorized") {
      sessionStorage.removeItem(KEY);
      return signedOut("The token was refused.");
    }
    $("state").textContent = "cannot reach Portico: " + e.message;
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

function signedOut(why) {
  clearTimeout(timer);
  history = [];
  $("board").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  $("state").textContent = "signed out";
  $("window").textContent = "";
  $("refused").hidden = !why;
  $("refused").textContent = why || "";
}

function signedIn() {
  $("signin").hidden = true;
  $("board").hidden = false;
  $("signout").hidden = false;
  $("refused").hidden = true;
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    try {
      await get("/admin/v1/overview", token);
    } catch (e) {
      return signedOut(e.message === "unauthorized" ? "The token was refused." : "Cannot reach Portico: " + e.message);
    }
    sessionStorage.setItem(KEY, token);
    signedIn();
  });
  $("signout").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    signedOut();
  });
  if (sessionStorage.getItem(KEY)) signedIn();
  else signedOut();
});
