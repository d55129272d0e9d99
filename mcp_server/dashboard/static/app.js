// genroute dashboard: plain JavaScript, no build step, no third-party code. Every request goes to this server;
// the session is an HttpOnly cookie, so nothing here ever holds the key after signing in.
"use strict";

const POLL_MS = 4000;
const SPEND_EVERY = 5; // polls between two spend refreshes (the chart changes slowly)
const COLORS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f"];
const $ = (id) => document.getElementById(id);
let me = null;
let polls = 0;
let timer = null;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

const usd = (value) => "$" + Number(value || 0).toFixed(value && value < 0.01 ? 6 : 2);
const age = (seconds) => seconds < 90 ? `${Math.round(seconds)} s` : seconds < 5400 ? `${Math.round(seconds / 60)} min` : `${(seconds / 3600).toFixed(1)} h`;
const time = (iso) => new Date(iso).toLocaleString();

async function getJSON(path) {
  const response = await fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) throw Object.assign(new Error("signed out"), { signedOut: true });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

async function post(path, body) {
  return fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body || {}),
  });
}

function showLogin(message) {
  clearTimeout(timer);
  me = null;
  $("main").hidden = true;
  $("who").hidden = true;
  $("sign-out").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function signIn(event) {
  event.preventDefault();
  const field = $("key");
  const response = await post("/dashboard/login", { key: field.value });
  field.value = "";
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    showLogin((body.error && body.error.message) || `Sign-in failed (HTTP ${response.status}).`);
    return;
  }
  await start();
}

async function signOut() {
  await post("/dashboard/logout");
  showLogin("Signed out.");
}

function drawChart(spend) {
  const chart = $("chart");
  const legend = $("legend");
  chart.replaceChildren();
  legend.replaceChildren();
  const width = 600, height = 160, pad = 18;
  chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const models = Object.keys(spend.by_model);
  const totals = spend.days.map((_, i) => models.reduce((sum, m) => sum + spend.by_model[m][i], 0));
  const top = Math.max(...totals, 1e-9);
  const step = width / spend.days.length;
  models.forEach((model, index) => {
    legend.append(el("li", { "data-color": String(index % COLORS.length) }, el("span", { class: `swatch c${index % COLORS.length}` }), model));
  });
  spend.days.forEach((day, i) => {
    let y = height;
    models.forEach((model, index) => {
      const value = spend.by_model[model][i];
      if (!value) return;
      const h = (value / top) * (height - pad);
      y -= h;
      const rect = svg("rect", { x: i * step + 1, y, width: Math.max(step - 2, 1), height: h, fill: COLORS[index % COLORS.length] });
      rect.append(svg("title"));
      rect.firstChild.textContent = `${day} ${model}: ${usd(value)}`;
      chart.append(rect);
    });
  });
  const scale = svg("text", { x: 4, y: 12, fill: "#6b7280", "font-size": 11 });
  scale.textContent = `${usd(top)} / day`;
  const span = svg("text", { x: width - 4, y: 12, fill: "#6b7280", "font-size": 11, "text-anchor": "end" });
  span.textContent = `${spend.days[0]} to ${spend.days[spend.days.length - 1]}`;
  if (models.length) chart.append(scale, span);
  if (!models.length) {
    const text = svg("text", { x: width / 2, y: height / 2, "text-anchor": "middle", fill: "#888" });
    text.textContent = "No spend in the last 30 days";
    chart.append(text);
  }
}

function renderSpend(spend) {
  const budget = spend.budget;
  const limit = budget.limit_usd;
  const mine = me.admin ? "" : " (your calls)";
  $("month-spend").textContent = limit === null
    ? `${spend.month}: ${usd(spend.spent_usd)} spent${mine}; no monthly budget set.`
    : `${spend.month}: ${usd(spend.spent_usd)} spent${mine}; server budget ${usd(limit)}, ${usd(budget.remaining_usd)} left.`;
  const share = limit ? Math.min(100, (100 * (budget.spent_usd + budget.reserved_usd)) / limit) : 0;
  $("budget-bar").style.width = `${share}%`; // CSSOM, not an inline style attribute: allowed by the CSP
  $("budget-bar").className = share > 90 ? "high" : "";
  drawChart(spend);
}

function renderCalls(calls) {
  $("calls-body").replaceChildren(...calls.map((c) => el("tr", { class: `call ${c.outcome === "ok" ? "ok" : "failed"}` },
    el("td", { text: time(c.at) }), el("td", { text: c.tool }), el("td", { text: c.model }), el("td", { text: c.caller }),
    el("td", { text: c.outcome }), el("td", { text: `${Math.round(c.latency_ms)} ms` }), el("td", { class: "cost", text: usd(c.cost_usd) }))));
}

function mediaLink(id, label) {
  return el("a", { href: `/dashboard/file/${encodeURIComponent(id)}`, target: "_blank", rel: "noopener", class: "open" }, label);
}

function renderJobs(jobs) {
  $("jobs-body").replaceChildren(...jobs.map((j) => el("tr", { class: `job ${j.status}` },
    el("td", { text: j.id.slice(0, 12) }), el("td", { text: j.model }), el("td", { text: j.caller }), el("td", { text: j.status }),
    el("td", { text: j.progress === null ? "" : `${Math.round(j.progress)}%` }), el("td", { text: age(j.age_s) }),
    el("td", {}, j.video ? mediaLink(j.video, "open video") : (j.error || "")))));
}

function renderMedia(items) {
  const grid = $("gallery-grid");
  const shown = new Set([...grid.children].map((node) => node.dataset.id));
  const wanted = items.map((m) => m.id);
  if (wanted.length === shown.size && wanted.every((id) => shown.has(id))) return; // keep players playing
  grid.replaceChildren(...items.map((m) => {
    const src = `/dashboard/file/${encodeURIComponent(m.id)}`;
    let body;
    if (m.kind === "video") body = el("video", { src, controls: "", preload: "metadata", class: "player" });
    else if (m.kind === "audio") body = el("audio", { src, controls: "", preload: "none", class: "player" });
    else body = mediaLink(m.id, el("img", { src: `/dashboard/thumb/${encodeURIComponent(m.id)}`, alt: m.id, class: "thumb", loading: "lazy" }));
    return el("figure", { "data-id": m.id, class: m.kind }, body, el("figcaption", { text: `${m.model} · ${m.caller} · ${time(m.created_at)}` }));
  }));
}

function renderHealth(providers) {
  $("health-list").replaceChildren(...providers.map((p) => {
    const state = p.state === "ok" ? "ok" : p.state === "cooling_down" ? "cooling" : "failing";
    const detail = `${p.failures_last_minute}/${p.calls_last_minute} failed in the last minute`;
    return el("li", { class: `provider ${state}` }, el("strong", { text: p.provider }), ` ${state} · ${detail}`,
      p.last_error ? el("div", { class: "error", text: `last error: ${p.last_error}` }) : "");
  }));
}

function renderKeys(keys) {
  $("keys-body").replaceChildren(...keys.map((k) => el("tr", { class: "key" },
    el("td", { text: k.name }), el("td", { text: k.admin ? "yes" : "" }),
    el("td", { text: k.rate_limit_per_min === null ? "default" : k.rate_limit_per_min === 0 ? "unlimited" : `${k.rate_limit_per_min}/min` }),
    el("td", { text: String(k.month_requests) }), el("td", { text: usd(k.month_spend_usd) }),
    el("td", { text: k.last_used_at ? time(k.last_used_at) : "never" }))));
}

function callQuery() {
  const params = new URLSearchParams();
  for (const [name, id] of [["model", "f-model"], ["caller", "f-caller"], ["outcome", "f-outcome"]]) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

async function poll() {
  clearTimeout(timer);
  try {
    const tasks = [
      getJSON(`/dashboard/api/calls${callQuery()}`).then(renderCalls),
      getJSON("/dashboard/api/jobs").then(renderJobs),
      getJSON("/dashboard/api/media").then(renderMedia),
      getJSON("/dashboard/api/health").then(renderHealth),
    ];
    if (polls % SPEND_EVERY === 0) tasks.push(getJSON("/dashboard/api/spend").then(renderSpend));
    if (me.admin) tasks.push(getJSON("/dashboard/api/keys").then(renderKeys));
    await Promise.all(tasks);
    polls += 1;
    $("status").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = String(polls);
  } catch (error) {
    if (error.signedOut) return showLogin("Your session ended: sign in again.");
    $("status").textContent = `Update failed: ${error.message}; retrying.`;
  }
  timer = setTimeout(poll, POLL_MS);
}

async function start() {
  try {
    me = await getJSON("/dashboard/api/me");
  } catch (error) {
    return showLogin(error.signedOut ? "" : error.message);
  }
  $("login").hidden = true;
  $("main").hidden = false;
  $("who").hidden = false;
  $("who").textContent = `${me.name}${me.admin ? " (admin)" : ""}`;
  $("sign-out").hidden = !me.auth;
  for (const node of document.querySelectorAll(".admin-only")) node.hidden = !me.admin;
  polls = 0;
  await poll();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); poll(); });
  for (const id of ["f-model", "f-caller", "f-outcome"]) $(id).addEventListener("change", poll);
  start();
});
