// Every vehicle on one canvas: no DOM node per vehicle, one redraw per animation frame
// however many positions arrive in between, points grouped by risk colour so a frame is
// a handful of fill() calls even for 10,000 vehicles. Clicks are hit-tested in pixels.

import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";

export const RISK_COLOURS = {
  critical: "#c62828",
  high: "#ef6c00",
  medium: "#f9a825",
  low: "#2e7d32",
  unknown: "#607d8b",
};

export const FleetLayer = L.Layer.extend({
  initialize(toDisplay) {
    this._toDisplay = toDisplay; // (lat, lon) -> [lat, lon] as drawn (GCJ-02 mode shifts)
    this._points = new Map(); // vehicle id -> {lat, lon, level}
    this._frame = 0;
    this._selected = null;
    this._onFrame = () => {
      this._frame = 0;
      this._draw();
    };
  },

  onAdd(map) {
    this._canvas = L.DomUtil.create("canvas", "vgr-fleet");
    map.getPanes().overlayPane.appendChild(this._canvas);
    map.on("moveend resize viewreset zoomend", this._reset, this);
    map.on("zoomstart", this._hide, this);
    this._reset();
  },

  onRemove(map) {
    map.off("moveend resize viewreset zoomend", this._reset, this);
    map.off("zoomstart", this._hide, this);
    L.DomUtil.remove(this._canvas);
    if (this._frame) cancelAnimationFrame(this._frame);
    this._frame = 0;
  },

  count() {
    return this._points.size;
  },

  set(id, lat, lon, level) {
    this._points.set(id, { lat, lon, level: level || "unknown" });
    this.redraw();
  },

  delete(id) {
    if (this._points.delete(id)) this.redraw();
  },

  clear() {
    this._points.clear();
    this.redraw();
  },

  select(id) {
    this._selected = id;
    this.redraw();
  },

  setDisplay(toDisplay) {
    this._toDisplay = toDisplay;
    this.redraw();
  },

  redraw() {
    if (this._map && !this._frame) this._frame = requestAnimationFrame(this._onFrame);
  },

  // The vehicle drawn nearest to a container point, within maxPx pixels, or null.
  nearest(point, maxPx = 8) {
    let best = null;
    let bestD = maxPx * maxPx;
    for (const [id, p] of this._points) {
      const [lat, lon] = this._toDisplay(p.lat, p.lon);
      const c = this._map.latLngToContainerPoint([lat, lon]);
      const d = (c.x - point.x) ** 2 + (c.y - point.y) ** 2;
      if (d <= bestD) {
        best = id;
        bestD = d;
      }
    }
    return best;
  },

  _hide() {
    this._canvas.classList.add("vgr-hidden");
  },

  _reset() {
    const map = this._map;
    const size = map.getSize();
    const ratio = window.devicePixelRatio || 1;
    L.DomUtil.setPosition(this._canvas, map.containerPointToLayerPoint([0, 0]));
    this._canvas.width = Math.round(size.x * ratio);
    this._canvas.height = Math.round(size.y * ratio);
    this._canvas.style.width = `${size.x}px`;
    this._canvas.style.height = `${size.y}px`;
    this._canvas.classList.remove("vgr-hidden");
    this._draw();
  },

  _draw() {
    const map = this._map;
    if (!map) return;
    const ctx = this._canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const w = this._canvas.width / ratio;
    const h = this._canvas.height / ratio;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const radius = map.getZoom() >= 12 ? 6 : map.getZoom() >= 8 ? 4.5 : 3;
    const groups = new Map();
    for (const [id, p] of this._points) {
      const [lat, lon] = this._toDisplay(p.lat, p.lon);
      const c = map.latLngToContainerPoint([lat, lon]);
      if (c.x < -radius || c.y < -radius || c.x > w + radius || c.y > h + radius) continue;
      const level = p.level in RISK_COLOURS ? p.level : "unknown";
      if (!groups.has(level)) groups.set(level, []);
      groups.get(level).push(c.x, c.y);
      if (id === this._selected) this._selectedPoint = c;
    }
    ctx.lineWidth = 1;
    ctx.strokeStyle = "rgba(255,255,255,0.9)";
    for (const level of ["unknown", "low", "medium", "high", "critical"]) {
      const xy = groups.get(level);
      if (!xy) continue;
      ctx.beginPath();
      for (let i = 0; i < xy.length; i += 2) {
        ctx.moveTo(xy[i] + radius, xy[i + 1]);
        ctx.arc(xy[i], xy[i + 1], radius, 0, 2 * Math.PI);
      }
      ctx.fillStyle = RISK_COLOURS[level];
      ctx.fill();
      if (radius > 3) ctx.stroke();
    }
    const sel = this._selected !== null ? this._points.get(this._selected) : null;
    if (sel) {
      const [lat, lon] = this._toDisplay(sel.lat, sel.lon);
      const c = map.latLngToContainerPoint([lat, lon]);
      ctx.beginPath();
      ctx.arc(c.x, c.y, radius + 5, 0, 2 * Math.PI);
      ctx.lineWidth = 3;
      ctx.strokeStyle = "#1565c0";
      ctx.stroke();
    }
  },
});
