// What is drawn besides the vehicles: the basemap (tiles, or the imported boundaries when
// no tile server is configured, so the map works offline), region boundaries, risk POIs
// in view, and the open vehicle's resident areas, recent stays and policy areas.

import * as L from "/static/vendor/leaflet/leaflet-src.esm.js";
import { get, query } from "./api.js";
import { t } from "./i18n.js";

const POI_MIN_ZOOM = 9;

export class Overlays {
  constructor(map, renderer, display, settings) {
    this.map = map;
    this.renderer = renderer;
    this.display = display; // {point(lat, lon) -> [lat, lon], coords(c) -> LatLng}
    this.settings = settings;
    this.boundaries = L.layerGroup();
    this.pois = L.layerGroup();
    this.vehicle = L.layerGroup().addTo(map);
    this.loadedLevels = new Set();
    this.poiTimer = 0;
  }

  async start(control) {
    if (this.settings.tileUrl) {
      L.tileLayer(this.settings.tileUrl, {
        attribution: this.settings.attribution,
        maxZoom: 19,
        subdomains: "abc",
      }).addTo(this.map);
      control.addOverlay(this.boundaries, t("layer.boundaries"));
    } else {
      this.boundaries.addTo(this.map); // the base layer
      control.addOverlay(this.boundaries, t("layer.boundaries"));
    }
    control.addOverlay(this.pois, t("layer.pois"));
    control.addOverlay(this.vehicle, t("layer.vehicle"));
    this.map.on("zoomend", () => this._boundaryLevel());
    this.map.on("moveend", () => this._schedulePois());
    this.map.on("overlayadd", (e) => {
      if (e.layer === this.pois) this._schedulePois();
    });
    await this._loadBoundaries("province");
    this._boundaryLevel();
  }

  _geo(doc, style) {
    return L.geoJSON(doc, {
      renderer: this.renderer,
      coordsToLatLng: (c) => this.display.coords(c),
      style,
      interactive: false,
    });
  }

  async _loadBoundaries(level) {
    if (this.loadedLevels.has(level)) return;
    this.loadedLevels.add(level);
    let doc = null;
    try {
      doc = await get(`/v1/regions/basemap?${query({ level })}`);
    } catch (err) {
      console.warn("boundaries not available", err.code || err);
    }
    if (!doc) return;
    const province = level === "province";
    this._geo(doc, {
      color: province ? "#5c6b7a" : "#9aa7b4",
      weight: province ? 1.4 : 0.7,
      fillColor: "#eef1f4",
      fillOpacity: province && !this.settings.tileUrl ? 0.6 : 0,
    }).addTo(this.boundaries);
  }

  _boundaryLevel() {
    if (this.map.getZoom() >= 7) this._loadBoundaries("city");
  }

  _schedulePois() {
    clearTimeout(this.poiTimer);
    this.poiTimer = setTimeout(() => this._loadPois(), 300);
  }

  async _loadPois() {
    if (!this.map.hasLayer(this.pois) || this.map.getZoom() < POI_MIN_ZOOM) {
      this.pois.clearLayers();
      return;
    }
    const b = this.map.getBounds(); // drawn coordinates; close enough to pick POIs in view
    const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5));
    let doc = null;
    try {
      doc = await get(`/v1/pois?${query({ bbox: bbox.join(",") })}`);
    } catch (err) {
      console.warn("POIs not available", err.code || err);
    }
    this.pois.clearLayers();
    for (const poi of doc?.items || []) {
      const at = this.display.point(poi.lat, poi.lon);
      L.circle(at, {
        renderer: this.renderer,
        radius: poi.radius_m || 150,
        color: "#6a1b9a",
        weight: 1,
        fillOpacity: 0.15,
      })
        .bindTooltip(`${poi.name} (${t(`poi.${poi.category}`)})`)
        .addTo(this.pois);
    }
  }

  // The open vehicle's resident areas, recent stays and policy areas.
  async showVehicle(vehicleId) {
    this.vehicle.clearLayers();
    const [places, policy] = await Promise.all([
      get(`/v1/vehicles/${vehicleId}/places`).catch(() => null),
      get(`/v1/vehicles/${vehicleId}/policy`).catch(() => null),
    ]);
    if (policy && policy.type === "FeatureCollection") {
      this._geo(policy, (f) => {
        const forbidden = f?.properties?.role === "forbidden";
        return {
          color: forbidden ? "#c62828" : "#2e7d32",
          weight: 1.5,
          dashArray: forbidden ? "4 4" : null,
          fillOpacity: 0.08,
        };
      }).addTo(this.vehicle);
    }
    for (const r of places?.resident || []) {
      L.circle(this.display.point(r.lat, r.lon), {
        renderer: this.renderer,
        radius: r.radius_m || 300,
        color: "#1565c0",
        weight: 2,
        fillOpacity: 0.1,
      })
        .bindTooltip(t(`place.${r.kind || "resident"}`))
        .addTo(this.vehicle);
    }
    for (const s of places?.recent_stays || []) {
      L.circleMarker(this.display.point(s.lat, s.lon), {
        renderer: this.renderer,
        radius: 5,
        color: "#37474f",
        weight: 1,
        fillColor: "#b0bec5",
        fillOpacity: 0.9,
      })
        .bindTooltip(t("place.stay"))
        .addTo(this.vehicle);
    }
    return { places, policy };
  }

  clearVehicle() {
    this.vehicle.clearLayers();
  }
}
