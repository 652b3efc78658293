// The recovery map: login, the live fleet, the panels. Test hooks: window.vgr.vehicles
// (vehicle id -> {lat, lon, time, risk_level} as last received), window.vgr.feed counters.

import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";
import { ApiError, get, post, query, setCsrf } from "./api.js";
import { FleetLayer } from "./fleetlayer.js";
import { wgs84ToGcj02 } from "./gcj02.js";
import { currentLanguage, onLanguage, otherLanguage, pickLanguage, setLanguage, t } from "./i18n.js";
import { LiveFeed } from "./live.js";
import { Overlays } from "./overlays.js";
import { Panels } from "./panels.js";
import { TrackPlayer } from "./track.js";

const $ = (sel) => document.querySelector(sel);
const body = document.body;
const settings = {
  tileUrl: body.dataset.tileUrl || "",
  tileCrs: body.dataset.tileCrs === "gcj02" ? "gcj02" : "wgs84",
  attribution: body.dataset.tileAttribution || "",
};
// GCJ-02 mode shifts what is drawn (tiles of Chinese providers are in GCJ-02); positions
// received and sent stay WGS-84. Without a tile server the boundaries are WGS-84: no shift.
const gcj = settings.tileUrl !== "" && settings.tileCrs === "gcj02";
const toDisplay = gcj ? wgs84ToGcj02 : (lat, lon) => [lat, lon];
const display = {
  point: (lat, lon) => toDisplay(lat, lon),
  coords: (c) => L.latLng(...toDisplay(c[1], c[0])),
};

const vgr = {
  vehicles: new Map(),
  feed: { positions: 0, alerts: 0, cases: 0, dropped: 0 },
  user: null,
};
window.vgr = vgr;

let map = null;
let fleet = null;
let overlays = null;
let player = null;
let panels = null;
let live = null;
let countFrame = 0;
const SIGNED_IN = "vgr.signedIn"; // a hint only: whether a session may be there to resume

function formatTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(currentLanguage(), { hour12: false });
}

function flash(message) {
  const box = $("#flash");
  box.textContent = message;
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => (box.hidden = true), 6000);
}

function updateCount() {
  if (countFrame) return;
  countFrame = requestAnimationFrame(() => {
    countFrame = 0;
    $("[data-testid=vehicle-count]").textContent = String(fleet ? fleet.count() : 0);
  });
}

function setLiveState(state) {
  const node = $("[data-testid=live-status]");
  node.textContent = state;
  node.dataset.state = state;
  node.title = t(`live.${state}`);
}

// ---------------------------------------------------------------- the feed
function onFrame(doc) {
  if (doc.type === "hello") return;
  if (doc.type !== "batch") return;
  if (doc.scope) {
    const allowed = new Set(doc.scope.vehicle_ids);
    for (const id of [...vgr.vehicles.keys()]) {
      if (!allowed.has(id)) {
        vgr.vehicles.delete(id);
        fleet.delete(id);
      }
    }
  }
  for (const p of doc.positions) {
    vgr.vehicles.set(p.vehicle_id, {
      lat: p.lat, lon: p.lon, time: p.time, risk_level: p.risk_level, risk_score: p.risk_score,
      speed_mps: p.speed_mps, course_deg: p.course_deg,
    });
    fleet.set(p.vehicle_id, p.lat, p.lon, p.risk_level);
  }
  for (const a of doc.alerts) panels.upsertAlert(a);
  for (const c of doc.cases) panels.onCaseChange(c);
  vgr.feed.positions += doc.positions.length;
  vgr.feed.alerts += doc.alerts.length;
  vgr.feed.cases += doc.cases.length;
  vgr.feed.dropped = doc.dropped;
  if (doc.alerts.length) panels.scheduleQueue();
  updateCount();
}

// ---------------------------------------------------------------- vehicles
async function openVehicle(id) {
  const vid = Number(id);
  fleet.select(vid);
  const here = vgr.vehicles.get(vid);
  const [doc] = await Promise.all([panels.openVehicle(vid, here), overlays.showVehicle(vid)]);
  return doc;
}

function focusVehicle(id) {
  const here = vgr.vehicles.get(Number(id));
  if (here) map.setView(toDisplay(here.lat, here.lon), Math.max(map.getZoom(), 14));
}

async function search(text) {
  const q = text.trim();
  if (!q) return;
  if (/^\d+$/.test(q) && (vgr.vehicles.has(Number(q)) || q.length < 10)) {
    await openVehicle(Number(q));
    focusVehicle(Number(q));
    return;
  }
  let doc = null;
  try {
    doc = await get(`/v1/vehicles?${query({ q: q.toUpperCase(), limit: 5 })}`);
  } catch (err) {
    flash(t("error.action", { code: err.code || String(err) }));
    return;
  }
  const first = doc?.items?.[0];
  if (!first) {
    flash(t("search.none", { q }));
    return;
  }
  await openVehicle(first.id);
  focusVehicle(first.id);
}

// ---------------------------------------------------------------- map
function buildMap() {
  const renderer = L.canvas({ padding: 0.2 });
  map = L.map("map", { preferCanvas: true, renderer, zoomControl: true, worldCopyJump: false,
    attributionControl: Boolean(settings.tileUrl) }).setView([31.23, 121.47], 6);
  fleet = new FleetLayer(toDisplay).addTo(map);
  const control = L.control.layers(null, null, { collapsed: true }).addTo(map);
  overlays = new Overlays(map, renderer, display, settings);
  overlays.start(control).catch((err) => console.warn("overlays", err));
  player = new TrackPlayer(map, renderer, display, {
    panel: $("#track-panel"), slider: $("[data-testid=track-slider]"),
    play: $("[data-testid=track-play]"), speed: $("[data-testid=track-speed]"),
    time: $("[data-testid=track-time]"), close: $("#track-close"), summary: $("#track-summary"),
  }, formatTime);
  map.on("click", (e) => {
    const id = fleet.nearest(e.containerPoint, 10);
    if (id !== null) openVehicle(id);
  });
  showMode();
}

function showMode() {
  $("#mode").textContent = settings.tileUrl ? (gcj ? "GCJ-02" : "WGS-84") : t("map.offline");
}

// ---------------------------------------------------------------- session
async function startSession(user, csrf) {
  vgr.user = user;
  setCsrf(csrf);
  localStorage.setItem(SIGNED_IN, "1");
  $("#login").hidden = true;
  $("#app").hidden = false;
  $("#whoami").textContent = `${user.username} (${t(`role.${user.role}`)})`;
  body.dataset.role = user.role;
  if (!map) buildMap();
  map.invalidateSize();
  panels.loadAlerts();
  panels.loadQueue();
  panels.loadCases();
  live.start();
}

function endSession() {
  live.stop();
  localStorage.removeItem(SIGNED_IN);
  vgr.user = null;
  vgr.vehicles.clear();
  if (fleet) fleet.clear();
  updateCount();
  $("#app").hidden = true;
  $("#login").hidden = false;
}

async function login(ev) {
  ev.preventDefault();
  const err = $("[data-testid=login-error]");
  err.hidden = true;
  const bodyDoc = {
    tenant: $("#login-tenant").value.trim(),
    username: $("#login-username").value.trim(),
    password: $("#login-password").value,
  };
  try {
    const doc = await post("/v1/auth/login", bodyDoc);
    $("#login-password").value = "";
    await startSession(doc.user, doc.csrf_token);
  } catch (e) {
    err.textContent = e instanceof ApiError && e.code === "too_many_attempts"
      ? t("login.throttled") : t("login.failed");
    err.hidden = false;
  }
}

async function logout() {
  try {
    await post("/v1/auth/logout", {});
  } catch {
    // the session may have ended already
  }
  endSession();
}

async function main() {
  await setLanguage(pickLanguage());
  $("[data-testid=lang-switch]").textContent = t(`lang.${otherLanguage()}`);
  onLanguage(() => {
    $("[data-testid=lang-switch]").textContent = t(`lang.${otherLanguage()}`);
    showMode();
    if (vgr.user) $("#whoami").textContent = `${vgr.user.username} (${t(`role.${vgr.user.role}`)})`;
    if (panels) {
      panels.renderAlerts();
      if (vgr.user) {
        panels.loadQueue();
        panels.loadCases();
      }
    }
  });
  $("[data-testid=lang-switch]").addEventListener("click", () => setLanguage(otherLanguage()));
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", logout);
  $("[data-testid=vehicle-search]").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter") search(ev.target.value);
  });
  panels = new Panels({
    role: () => vgr.user?.role || "",
    formatTime, flash,
    openVehicle: (id) => openVehicle(id),
    focus: focusVehicle,
    position: (id) => vgr.vehicles.get(Number(id)) || null,
    openTrack: (id) => player.open(id).catch((err) => flash(t("error.action", { code: err.code || String(err) }))),
    onVehicleClosed: () => {
      fleet.select(null);
      overlays.clearVehicle();
    },
  });
  $("[data-testid=chase-button]").addEventListener("click", () => panels.askChase());
  live = new LiveFeed({ onFrame, onState: setLiveState, onSessionEnded: endSession });
  setLiveState("off");
  if (localStorage.getItem(SIGNED_IN) !== "1") return; // no session to resume: no 401 noise
  try {
    const me = await get("/v1/auth/me");
    if (me) await startSession(me.user, me.csrf_token);
  } catch {
    localStorage.removeItem(SIGNED_IN); // the session ended: the form stays
  }
}

main();
