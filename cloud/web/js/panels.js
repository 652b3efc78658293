// The side panels: alert feed (with acknowledge), recovery queue, vehicle detail, case view
// (status changes; chase mode for admins and recovery agents, after a confirmation).
// Text goes in with textContent only: nothing from the API is ever parsed as HTML.

import { ApiError, get, post, query } from "./api.js";
import { t } from "./i18n.js";

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else if (k === "onclick") node.addEventListener("click", v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function fmtNumber(v, digits = 0) {
  return typeof v === "number" ? v.toFixed(digits) : "–";
}

export class Panels {
  constructor(ctx) {
    this.ctx = ctx; // {role(), formatTime, openVehicle(id), focus(id), flash(msg), onCase}
    this.alerts = new Map(); // id -> alert doc
    this.alertList = document.querySelector("[data-testid=alert-feed] ul");
    this.queueList = document.querySelector("[data-testid=queue-panel] ul");
    this.caseList = document.querySelector("[data-testid=case-list] ul");
    this.casesByVehicle = new Map(); // vehicle id -> its case being worked
    this.detail = document.querySelector("[data-testid=vehicle-detail]");
    this.caseView = document.querySelector("[data-testid=case-view]");
    this.dialog = document.getElementById("chase-dialog");
    this.queueTimer = 0;
    this.currentVehicle = null;
    this.currentCase = null;
    this.chaseOn = false;
    document.getElementById("chase-cancel").addEventListener("click", () => this.dialog.close());
    document.getElementById("chase-confirm").addEventListener("click", () => this._chase());
    document.getElementById("case-close").addEventListener("click", () => this.closeCase());
    document.getElementById("detail-close").addEventListener("click", () => this.closeVehicle());
  }

  // ---------------------------------------------------------------- alerts
  async loadAlerts() {
    let doc = null;
    try {
      doc = await get(`/v1/alerts?${query({ status: "open", limit: 200 })}`);
    } catch (err) {
      this.ctx.flash(t("error.load", { what: t("alerts.title"), code: err.code || "" }));
    }
    this.alerts.clear();
    for (const a of doc?.items || []) this.alerts.set(a.id, a);
    this.renderAlerts();
  }

  upsertAlert(a) {
    const old = this.alerts.get(a.id);
    this.alerts.set(a.id, { ...(old || {}), ...a });
    this.renderAlerts();
  }

  renderAlerts() {
    const items = [...this.alerts.values()]
      .filter((a) => a.status !== "resolved")
      .sort((x, y) => String(y.opened_at).localeCompare(String(x.opened_at)) || y.id - x.id)
      .slice(0, 300);
    const nodes = items.map((a) => this._alertItem(a));
    this.alertList.replaceChildren(...nodes);
    document.getElementById("alert-count").textContent = String(items.length);
  }

  _alertItem(a) {
    const ack = el("button", {
      type: "button",
      class: "small",
      "data-testid": "ack-button",
      disabled: a.status !== "open",
      text: a.status === "open" ? t("alerts.ack") : t("alerts.acknowledged"),
      onclick: (ev) => {
        ev.stopPropagation();
        this.acknowledge(a.id);
      },
    });
    return el(
      "li",
      {
        class: `alert sev-${a.severity}`,
        "data-testid": "alert-item",
        "data-alert-id": a.id,
        "data-rule": a.rule,
        "data-vehicle-id": a.vehicle_id,
        "data-status": a.status,
        onclick: () => this.ctx.openVehicle(a.vehicle_id),
      },
      el("span", { class: "rule", text: t(`rule.${a.rule}`) }),
      el("span", { class: "meta", text: `#${a.vehicle_id} · ${this.ctx.formatTime(a.opened_at)}` }),
      el("span", { class: "msg", text: a.message || "" }),
      ack,
    );
  }

  async acknowledge(id) {
    try {
      const doc = await post(`/v1/alerts/${id}/ack`, {});
      this.upsertAlert(doc || { id, status: "acknowledged" });
    } catch (err) {
      if (err instanceof ApiError && err.code === "invalid_transition") {
        this.upsertAlert({ id, status: "acknowledged" });
      } else {
        this.ctx.flash(t("error.action", { code: err.code || String(err) }));
      }
    }
  }

  // ---------------------------------------------------------------- queue
  scheduleQueue() {
    if (this.queueTimer) return;
    this.queueTimer = setTimeout(() => {
      this.queueTimer = 0;
      this.loadQueue();
      this.loadCases();
    }, 2000);
  }

  async loadQueue() {
    let doc = null;
    let failed = false;
    try {
      doc = await get(`/v1/recovery/queue?${query({ limit: 50 })}`);
    } catch (err) {
      failed = true;
      console.warn("queue", err.code || err);
    }
    const items = doc?.items || [];
    const nodes = items.map((q) => {
      const v = q.vehicle || { id: q.vehicle_id };
      const label = v.plate || v.vin || `#${v.id}`;
      return el(
        "li",
        {
          class: `queue band-${q.band || "unknown"}`,
          "data-testid": "queue-item",
          "data-vehicle-id": v.id,
          "data-case-id": q.case?.id,
          onclick: () => {
            this.ctx.openVehicle(v.id);
            if (q.case?.id) this.openCase(q.case.id);
          },
        },
        el("span", { class: "rank", text: String(q.rank ?? "") }),
        el("span", { class: "label", text: label }),
        el("span", { class: "score", text: fmtNumber(q.score) }),
        el("span", {
          class: "meta",
          text: q.case ? t(`case.status.${q.case.status}`) : t("queue.nocase"),
        }),
      );
    });
    if (!nodes.length) {
      nodes.push(el("li", { class: "empty", text: failed || !doc ? t("panel.unavailable") : t("queue.empty") }));
    }
    this.queueList.replaceChildren(...nodes);
  }

  // ---------------------------------------------------------------- cases
  async loadCases() {
    let doc = null;
    try {
      doc = await get(`/v1/cases?${query({ limit: 200 })}`);
    } catch (err) {
      console.warn("cases", err.code || err);
    }
    const items = (doc?.items || []).filter((c) => c.status !== "closed");
    this.casesByVehicle = new Map(items.map((c) => [c.vehicle_id, c.id]));
    const nodes = items.map((c) => el(
      "li",
      {
        class: `case-item status-${c.status}`,
        "data-testid": "case-item",
        "data-case-id": c.id,
        "data-vehicle-id": c.vehicle_id,
        onclick: () => {
          this.ctx.openVehicle(c.vehicle_id);
          this.openCase(c.id);
        },
      },
      el("span", { class: "label", text: `#${c.id} ${c.plate || c.vin || ""}` }),
      el("span", { class: "meta", text: `${t(`case.status.${c.status}`)}${c.assignee ? ` · ${c.assignee}` : ""}` }),
    ));
    if (!nodes.length) {
      nodes.push(el("li", { class: "empty", text: doc ? t("cases.empty") : t("panel.unavailable") }));
    }
    this.caseList.replaceChildren(...nodes);
  }

  // ---------------------------------------------------------------- vehicle detail
  async openVehicle(id, live) {
    this.currentVehicle = id;
    this.detail.hidden = false;
    this.detail.dataset.vehicleId = String(id);
    const body = this.detail.querySelector(".body");
    body.replaceChildren(el("p", { class: "muted", text: t("panel.loading") }));
    let doc = null;
    let error = null;
    try {
      doc = await get(`/v1/vehicles/${id}`);
    } catch (err) {
      error = err;
    }
    if (this.currentVehicle !== id) return null;
    if (error && error.status === 404) {
      body.replaceChildren(el("p", { class: "error", text: t("vehicle.notfound") }));
      return null;
    }
    const rows = [];
    const title = doc ? doc.plate || doc.label || doc.vin : `#${id}`;
    this.detail.querySelector(".title").textContent = `${t("vehicle.title")} ${title}`;
    const risk = doc?.risk || (live ? { score: live.risk_score, level: live.risk_level, reasons: [] } : null);
    rows.push(el("div", { class: `risk band-${risk?.level || "unknown"}` },
      el("span", { text: `${t("vehicle.risk")}: ` }),
      el("strong", { "data-testid": "risk-score", text: fmtNumber(risk?.score) }),
      el("span", { class: "level", text: risk?.level ? ` ${t(`level.${risk.level}`)}` : "" })));
    if (risk?.reasons?.length) {
      rows.push(el("ul", { class: "reasons" }, ...risk.reasons.map((r) =>
        el("li", { text: typeof r === "string" ? r : r.text || r.code || r.rule || JSON.stringify(r) }))));
    }
    if (doc) {
      rows.push(el("dl", {},
        el("dt", { text: "VIN" }), el("dd", { text: doc.vin || "–" }),
        el("dt", { text: t("vehicle.plate") }), el("dd", { text: doc.plate || "–" }),
        el("dt", { text: t("vehicle.alerts") }), el("dd", { text: String(doc.open_alerts ?? "–") })));
      const loan = doc.loan;
      rows.push(el("h4", { text: t("vehicle.loan") }));
      rows.push(loan
        ? el("dl", {},
          el("dt", { text: t("loan.contract") }), el("dd", { text: loan.contract || loan.contract_id || "–" }),
          el("dt", { text: t("loan.status") }), el("dd", { text: t(`loan.status.${loan.status}`) }),
          el("dt", { text: t("loan.overdue") }), el("dd", { text: String(loan.overdue_days ?? "–") }),
          el("dt", { text: t("loan.exposure") }), el("dd", { text: fmtNumber(loan.exposure ?? loan.outstanding, 2) }))
        : el("p", { class: "muted", text: t("loan.none") }));
      rows.push(el("h4", { text: t("vehicle.devices") }));
      const table = el("table", { class: "devices" }, el("tr", {},
        el("th", { text: t("device.id") }), el("th", { text: t("device.kind") }),
        el("th", { text: t("device.online") }), el("th", { text: t("device.health") })));
      for (const d of doc.devices || []) {
        const health = [];
        if (d.battery !== undefined && d.battery !== null) health.push(`${t("device.battery")} ${d.battery}`);
        if (d.main_power !== undefined && d.main_power !== null) health.push(`${t("device.power")} ${d.main_power}`);
        if (d.authorized === false) health.push(t("device.unauthorized"));
        if (d.revoked) health.push(t("device.revoked"));
        if (d.last_seen) health.push(this.ctx.formatTime(d.last_seen));
        table.append(el("tr", { "data-testid": "device-row", "data-device-id": d.id },
          el("td", { text: d.id }), el("td", { text: t(`device.kind.${d.kind}`) }),
          el("td", { class: d.online ? "ok" : "bad", text: d.online ? t("device.yes") : t("device.no") }),
          el("td", { text: health.join(" · ") || "–" })));
      }
      rows.push(table);
    } else {
      rows.push(el("p", { class: "muted", text: t("panel.unavailable") }));
    }
    if (live) {
      rows.push(el("p", { class: "muted", text: `${t("vehicle.last")}: ${this.ctx.formatTime(live.time)} (${live.lat.toFixed(5)}, ${live.lon.toFixed(5)})` }));
    }
    const actions = el("div", { class: "actions" },
      el("button", { type: "button", "data-testid": "track-open", text: t("track.open"),
        onclick: () => this.ctx.openTrack(id) }),
      el("button", { type: "button", text: t("vehicle.focus"), onclick: () => this.ctx.focus(id) }));
    const caseId = this.casesByVehicle.get(id);
    if (caseId) {
      actions.append(el("button", { type: "button", "data-testid": "case-open", "data-case-id": caseId,
        text: t("case.open"), onclick: () => this.openCase(caseId) }));
    }
    rows.push(actions);
    body.replaceChildren(...rows);
    return doc;
  }

  closeVehicle() {
    this.currentVehicle = null;
    this.detail.hidden = true;
    this.detail.removeAttribute("data-vehicle-id");
    this.ctx.onVehicleClosed();
  }

  // ---------------------------------------------------------------- case view
  async openCase(id) {
    this.currentCase = id;
    this.caseView.hidden = false;
    this.caseView.dataset.caseId = String(id);
    let doc = null;
    try {
      doc = await get(`/v1/cases/${id}`);
    } catch (err) {
      this.ctx.flash(t("error.load", { what: t("case.title"), code: err.code || "" }));
    }
    if (this.currentCase !== id) return;
    this.renderCase(doc, id);
  }

  renderCase(doc, id) {
    const c = doc?.case || doc || { id, status: null };
    this.caseDoc = doc;
    this.caseVehicle = c.vehicle_id ?? null;
    this.caseView.querySelector(".title").textContent = `${t("case.title")} #${id}`;
    const status = this.caseView.querySelector("[data-testid=case-status]");
    status.textContent = c.status ? t(`case.status.${c.status}`) : "–";
    status.dataset.status = c.status || "";
    this.caseView.querySelector(".assignee").textContent = c.assignee ? `${t("case.assignee")}: ${c.assignee}` : "";
    if (c.status === "chasing") this.chaseOn = true;
    else if (c.status && c.status !== "chasing" && this.chaseCase !== id) this.chaseOn = false;
    this.chaseCase = id;
    this._renderChase();
    const targets = doc?.allowed || [];
    const buttons = targets.filter((s) => s !== "chasing").map((s) =>
      el("button", { type: "button", class: "small", "data-testid": "case-transition", "data-to": s,
        text: t(`case.to.${s}`), onclick: () => this.transition(id, s) }));
    this.caseView.querySelector(".transitions").replaceChildren(...buttons);
    const history = (doc?.history || []).slice(-8).reverse().map((h) =>
      el("li", { text: `${this.ctx.formatTime(h.time)} ${h.actor}: ${h.from_status || ""} → ${h.to_status || h.action}` }));
    this.caseView.querySelector(".history").replaceChildren(...history);
  }

  closeCase() {
    this.currentCase = null;
    this.caseView.hidden = true;
    this.caseView.removeAttribute("data-case-id");
  }

  onCaseChange(change) {
    if (this.currentCase === change.id) this.openCase(change.id);
    this.scheduleQueue();
  }

  async transition(id, to) {
    const note = this.caseView.querySelector(".note").value.slice(0, 500);
    try {
      const body = { to, note };
      const here = this.ctx.position(this.caseVehicle);
      if (to === "located" && here) Object.assign(body, { lat: here.lat, lon: here.lon }); // WGS-84
      const doc = await post(`/v1/cases/${id}/transition`, body);
      this.caseView.querySelector(".note").value = "";
      this.renderCase(doc, id);
      this.scheduleQueue();
    } catch (err) {
      this.ctx.flash(t("error.action", { code: err.code || String(err) }));
    }
  }

  _canChase() {
    return ["admin", "recovery"].includes(this.ctx.role());
  }

  _renderChase() {
    const button = this.caseView.querySelector("[data-testid=chase-button]");
    const state = this.caseView.querySelector("[data-testid=chase-state]");
    const allowed = this._canChase();
    button.hidden = !allowed;
    button.disabled = !allowed || this.caseVehicle === null;
    button.textContent = this.chaseOn ? t("chase.stop") : t("chase.start");
    state.dataset.chase = this.chaseOn ? "on" : "off";
    state.textContent = this.chaseOn ? t("chase.on") : t("chase.off");
  }

  askChase() {
    if (!this._canChase() || this.caseVehicle === null) return;
    const turnOn = !this.chaseOn;
    this.dialog.dataset.on = String(turnOn);
    this.dialog.querySelector(".question").textContent = turnOn
      ? t("chase.confirm.on", { vehicle: this.caseVehicle }) : t("chase.confirm.off", { vehicle: this.caseVehicle });
    this.dialog.showModal();
  }

  async _chase() {
    const on = this.dialog.dataset.on === "true";
    const minutes = Number(document.getElementById("chase-minutes").value) || 30;
    this.dialog.close();
    try {
      const doc = await post(`/v1/vehicles/${this.caseVehicle}/chase`, on ? { on, minutes } : { on });
      if (doc === null) throw new ApiError(404, "not_found", "chase route not available");
      this.chaseOn = doc.on ?? on;
      this._renderChase();
      if (this.currentCase) this.openCase(this.currentCase);
    } catch (err) {
      this.ctx.flash(t("error.action", { code: err.code || String(err) }));
    }
  }
}
