// The data cockpit page: GET /v1/cockpit for the caller's tenant, drawn as numbers, SVG charts
// and tables, refreshed every 30 s while the page is visible. The session is the map's: without
// one (401) the page sends the browser to the map's sign-in at "/".

import { barChart, lineChart, PALETTE } from "./charts.js";
import { currentLanguage, otherLanguage, pickLanguage, setLanguage, t } from "./i18n.js";

const REFRESH_MS = 30_000;
const $ = (sel) => document.querySelector(sel);
const state = { doc: null, refreshes: 0, timer: null, loading: false };
window.vgrCockpit = state; // for tests and the screenshot script

function text(node, value) {
  node.textContent = value;
  return node;
}

function cell(row, value, cls) {
  const td = row.insertCell();
  if (cls) td.className = cls;
  text(td, value);
  return td;
}

function percent(rate) {
  return rate === null || rate === undefined ? "-" : `${(rate * 100).toFixed(1)}%`;
}

function millis(ms) {
  if (ms === null || ms === undefined) return "-";
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`;
}

function number(n) {
  return new Intl.NumberFormat(currentLanguage()).format(n);
}

function kpi(testid, value, raw) {
  const node = $(`[data-testid=${testid}]`);
  text(node, value);
  node.dataset.value = String(raw ?? "");
}

function renderFleet(doc) {
  const f = doc.fleet;
  kpi("cockpit-fleet-size", number(f.vehicles), f.vehicles);
  text($("#fleet-detail"), t("fleet.detail", { devices: f.devices, online: f.online_devices }));
  kpi("cockpit-online-rate", percent(f.online_rate), f.online_rate);
  text($("#online-detail"), t("fleet.onlineDetail",
    { online: f.online_vehicles, vehicles: f.vehicles, reporting: f.reporting_vehicles }));
}

function renderFixes(doc) {
  const x = doc.fixes;
  kpi("cockpit-fixes-per-minute", number(x.last_minute), x.last_minute);
  text($("#fixes-detail"), t("fixes.detail", { avg: x.per_minute, total: number(x.total) }));
  const times = x.series.map((b) => new Date(b.t));
  lineChart($("#fixes-chart"), times,
    [{ name: t("fixes.series"), color: PALETTE[0], values: x.series.map((b) => b.per_minute) }]);
}

function renderAlerts(doc) {
  const a = doc.alerts;
  kpi("cockpit-open-alerts", number(a.unresolved), a.unresolved);
  const opened = a.opened_in_window.reduce((sum, r) => sum + r.count, 0);
  text($("#alerts-detail"), t("alerts.detail", { open: a.open, ack: a.acknowledged, opened }));
  const rules = [...new Set(a.series.flatMap((p) => Object.keys(p.by_rule)))].sort();
  const series = rules.map((rule, i) => ({
    name: rule, color: PALETTE[i % PALETTE.length],
    values: a.series.map((p) => p.by_rule[rule] || 0),
  }));
  lineChart($("#alerts-chart"), a.series.map((p) => new Date(p.t)), series);
  const legend = $("#alerts-legend");
  legend.replaceChildren(...series.map((s) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color; // CSSOM, allowed by the CSP (unlike style attributes)
    item.append(swatch, document.createTextNode(s.name));
    return item;
  }));
  const body = $("#alerts-table tbody");
  body.replaceChildren();
  for (const c of a.by_rule_severity) {
    const row = body.insertRow();
    row.dataset.rule = c.rule;
    row.dataset.severity = c.severity;
    cell(row, c.rule);
    cell(row, c.severity, `sev sev-${c.severity}`);
    cell(row, number(c.open), "num");
    cell(row, number(c.acknowledged), "num");
  }
  if (!a.by_rule_severity.length) cell(body.insertRow(), t("none")).colSpan = 4;
}

function renderRisk(doc) {
  const r = doc.risk;
  barChart($("#risk-chart"), r.buckets.map((b) => ({ label: String(b.lower), value: b.count })),
    { color: PALETTE[1] });
  text($("#risk-detail"), t("risk.detail", { scored: r.scored, unscored: r.unscored }));
  const body = $("#top-table tbody");
  body.replaceChildren();
  for (const v of doc.top_risky) {
    const row = body.insertRow();
    row.dataset.vehicleId = String(v.vehicle_id);
    row.dataset.testid = "cockpit-risky-vehicle";
    cell(row, v.vin).title = `#${v.vehicle_id}`;
    cell(row, v.plate || "-");
    cell(row, v.score.toFixed(1), `num band-${v.band}`);
    cell(row, v.reasons.map((x) => x.rule).join(", ") || "-");
    cell(row, number(v.open_alerts), "num");
  }
  if (!doc.top_risky.length) cell(body.insertRow(), t("none")).colSpan = 5;
}

function renderWebhooks(doc) {
  const w = doc.webhooks;
  const chips = [
    ["succeeded", w.succeeded], ["failed", w.failed], ["dead", w.dead], ["pending", w.pending],
  ].map(([name, n]) => {
    const chip = text(document.createElement("span"), `${t(`state.${name}`)} ${number(n)}`);
    chip.className = `chip chip-${name}`;
    chip.dataset.state = name;
    chip.dataset.value = String(n);
    return chip;
  });
  chips.push(text(document.createElement("span"), t("hooks.backlog", { n: w.backlog })));
  chips.push(text(document.createElement("span"),
    t("hooks.latency", { p50: millis(w.delivery_p50_ms), p95: millis(w.delivery_p95_ms) })));
  $("#hooks-summary").replaceChildren(...chips);
  const body = $("#hooks-table tbody");
  body.replaceChildren();
  for (const e of w.endpoints) {
    const row = body.insertRow();
    row.dataset.endpointId = e.endpoint_id;
    cell(row, e.description || e.endpoint_id).title = e.endpoint_id;
    cell(row, number(e.succeeded), "num");
    cell(row, number(e.failed), "num");
    cell(row, number(e.dead), e.dead ? "num bad" : "num");
    cell(row, number(e.pending), "num");
    cell(row, `${millis(e.delivery_p50_ms)} / ${millis(e.delivery_p95_ms)}`, "num");
  }
  if (!w.endpoints.length) cell(body.insertRow(), t("none")).colSpan = 6;
}

function render(doc) {
  text($("#tenant"), doc.tenant_id);
  renderFleet(doc);
  renderFixes(doc);
  renderAlerts(doc);
  renderRisk(doc);
  renderWebhooks(doc);
  const updated = $("#updated");
  updated.dateTime = doc.generated_at;
  text(updated, new Date(doc.generated_at).toLocaleTimeString(currentLanguage()));
  const main = $("#cockpit");
  main.dataset.window = doc.window; // tests wait on these (no eval under the page's CSP)
  main.dataset.refreshes = String(state.refreshes);
  main.hidden = false;
}

function showError(message) {
  const box = $("#error");
  box.hidden = !message;
  text(box, message || "");
}

function signIn() {
  window.location.assign(`/?next=${encodeURIComponent("/cockpit")}`);
}

async function load() {
  if (state.loading) return;
  state.loading = true;
  try {
    const windowName = $("#window").value;
    const resp = await fetch(`/v1/cockpit?window=${encodeURIComponent(windowName)}`,
      { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (resp.status === 401) return signIn();
    const doc = await resp.json().catch(() => null);
    if (resp.status === 403) return showError(t("error.forbidden"));
    if (!resp.ok || !doc) {
      return showError(t("error.load", { message: doc?.error?.message || resp.statusText }));
    }
    state.doc = doc;
    state.refreshes += 1;
    showError("");
    render(doc);
  } catch (err) {
    showError(t("error.load", { message: String(err.message || err) }));
  } finally {
    state.loading = false;
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = setInterval(() => {
    if (!document.hidden) load();
  }, REFRESH_MS);
}

function start() {
  setLanguage(pickLanguage());
  const langButton = $("#lang");
  text(langButton, t("switchTo"));
  langButton.addEventListener("click", () => {
    setLanguage(otherLanguage());
    text(langButton, t("switchTo"));
    if (state.doc) render(state.doc);
  });
  const select = $("#window");
  const wanted = new URLSearchParams(window.location.search).get("window");
  if ([...select.options].some((o) => o.value === wanted)) select.value = wanted;
  select.addEventListener("change", () => {
    const url = new URL(window.location.href);
    url.searchParams.set("window", select.value);
    window.history.replaceState(null, "", url);
    load();
    schedule();
  });
  window.addEventListener("resize", () => {
    if (state.doc) render(state.doc); // charts are drawn to their box's width
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) load();
  });
  load();
  schedule();
}

start();
