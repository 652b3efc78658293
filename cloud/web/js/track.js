// Track playback: the vehicle's path of the last hours, stay points marked, and a cursor
// moved by a time slider or played at 1x-60x (simulated seconds per real second).

import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";
import { get, query } from "./api.js";
import { t } from "./i18n.js";

const HOURS = 24;
const MAX_POINTS = 5000;

export class TrackPlayer {
  constructor(map, renderer, display, els, formatTime) {
    this.map = map;
    this.renderer = renderer;
    this.display = display;
    this.els = els; // {panel, slider, play, speed, time, close, summary}
    this.formatTime = formatTime;
    this.layer = L.layerGroup().addTo(map);
    this.points = [];
    this.times = [];
    this.playing = false;
    this.frame = 0;
    this.last = 0;
    this.cursor = null;
    els.slider.addEventListener("input", () => {
      this._pause();
      this._show(Number(els.slider.value));
    });
    els.play.addEventListener("click", () => (this.playing ? this._pause() : this._play()));
    els.close.addEventListener("click", () => this.close());
  }

  async open(vehicleId) {
    this.close();
    const to = new Date();
    const from = new Date(to.getTime() - HOURS * 3600 * 1000);
    const params = query({ from: from.toISOString(), to: to.toISOString(), max_points: MAX_POINTS });
    const doc = await get(`/v1/vehicles/${vehicleId}/track?${params}`);
    this.els.panel.hidden = false;
    this.els.panel.dataset.vehicleId = String(vehicleId);
    this.points = doc?.points || [];
    this.times = this.points.map((p) => Date.parse(p.t) / 1000);
    if (!doc) {
      this.els.summary.textContent = t("track.unavailable");
    } else {
      this.els.summary.textContent = t("track.summary", {
        points: this.points.length,
        stays: (doc.stays || []).length,
      });
    }
    const slider = this.els.slider;
    if (this.points.length < 1) {
      slider.min = "0";
      slider.max = "0";
      slider.value = "0";
      slider.disabled = true;
      this.els.play.disabled = true;
      this.els.time.textContent = "–";
      return;
    }
    slider.disabled = false;
    this.els.play.disabled = false;
    const start = this.times[0];
    slider.min = "0";
    slider.max = String(Math.max(0, Math.round(this.times[this.times.length - 1] - start)));
    slider.step = "1";
    slider.value = "0";
    const path = this.points.map((p) => this.display.point(p.lat, p.lon));
    L.polyline(path, { renderer: this.renderer, color: "#1565c0", weight: 3, opacity: 0.8 })
      .addTo(this.layer);
    for (const s of doc.stays || []) {
      L.circleMarker(this.display.point(s.lat, s.lon), {
        renderer: this.renderer, radius: 7, color: "#4e342e", weight: 2, fillColor: "#ffcc80",
        fillOpacity: 0.95,
      })
        .bindTooltip(t("track.stay", {
          start: this.formatTime(s.start), minutes: Math.round((s.duration_s || 0) / 60),
        }))
        .addTo(this.layer);
    }
    this.cursor = L.circleMarker(path[0], {
      renderer: this.renderer, radius: 8, color: "#0d47a1", weight: 3, fillColor: "#ffffff",
      fillOpacity: 1,
    }).addTo(this.layer);
    this.map.fitBounds(L.latLngBounds(path).pad(0.1));
    this._show(0);
  }

  close() {
    this._pause();
    this.layer.clearLayers();
    this.cursor = null;
    this.points = [];
    this.times = [];
    this.els.panel.hidden = true;
  }

  _speed() {
    return Number(this.els.speed.value) || 1;
  }

  _play() {
    if (!this.points.length) return;
    if (Number(this.els.slider.value) >= Number(this.els.slider.max)) this._show(0);
    this.playing = true;
    this.els.play.dataset.playing = "true";
    this.els.play.textContent = t("track.pause");
    this.last = performance.now();
    const step = (now) => {
      if (!this.playing) return;
      const advance = ((now - this.last) / 1000) * this._speed();
      this.last = now;
      const offset = Math.min(Number(this.els.slider.max), Number(this.els.slider.value) + advance);
      this._show(offset);
      if (offset >= Number(this.els.slider.max)) {
        this._pause();
        return;
      }
      this.frame = requestAnimationFrame(step);
    };
    this.frame = requestAnimationFrame(step);
  }

  _pause() {
    this.playing = false;
    cancelAnimationFrame(this.frame);
    this.els.play.dataset.playing = "false";
    this.els.play.textContent = t("track.play");
  }

  // Put the cursor at `offset` seconds after the first point (interpolated between fixes).
  _show(offset) {
    if (!this.points.length) return;
    this.els.slider.value = String(offset);
    const when = this.times[0] + offset;
    let hi = this.times.findIndex((x) => x >= when);
    if (hi < 0) hi = this.times.length - 1;
    const lo = Math.max(0, hi - 1);
    const a = this.points[lo];
    const b = this.points[hi];
    const span = this.times[hi] - this.times[lo];
    const f = span > 0 ? Math.min(1, Math.max(0, (when - this.times[lo]) / span)) : 1;
    const lat = a.lat + (b.lat - a.lat) * f;
    const lon = a.lon + (b.lon - a.lon) * f;
    if (this.cursor) this.cursor.setLatLng(this.display.point(lat, lon));
    this.els.time.textContent = this.formatTime(new Date(when * 1000).toISOString());
    this.els.time.dataset.time = new Date(when * 1000).toISOString();
  }
}
