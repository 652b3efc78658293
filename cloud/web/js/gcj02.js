// WGS-84 -> GCJ-02, for display on tiles of Chinese map providers only.
// Positions stay WGS-84 everywhere else (API, storage, rules); this shifts what is drawn.
// The published forward formula on the Krasovsky 1940 ellipsoid, applied inside the
// mainland bounding box used by cloud/refdata/gcj02.py (outside it nothing moves).

const A = 6378245.0; // Krasovsky 1940 semi-major axis (m)
const EE = 0.00669342162296594323; // its first eccentricity squared
const BOX = { minLon: 72.004, minLat: 0.8293, maxLon: 137.8347, maxLat: 55.8271 };

function waves(v, a, b) {
  return ((a * Math.sin(v * Math.PI) + b * Math.sin((v / 3) * Math.PI)) * 2) / 3;
}

// [dLat, dLon] in degrees to add to a WGS-84 point.
function shift(lat, lon) {
  const x = lon - 105.0;
  const y = lat - 35.0;
  const root = Math.sqrt(Math.abs(x));
  const common = ((20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI)) * 2) / 3;
  const north = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root + common +
    waves(y, 20, 40) +
    ((160 * Math.sin((y / 12) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30)) * 2) / 3;
  const east = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root + common +
    waves(x, 20, 40) +
    ((150 * Math.sin((x / 12) * Math.PI) + 300 * Math.sin((x / 30) * Math.PI)) * 2) / 3;
  const phi = (lat * Math.PI) / 180;
  const w2 = 1 - EE * Math.sin(phi) ** 2;
  const w = Math.sqrt(w2);
  const meridional = (A * (1 - EE)) / (w2 * w);
  const normal = A / w;
  return [(north * 180) / (meridional * Math.PI), (east * 180) / (normal * Math.cos(phi) * Math.PI)];
}

export function inOffsetArea(lat, lon) {
  return lon >= BOX.minLon && lon <= BOX.maxLon && lat >= BOX.minLat && lat <= BOX.maxLat;
}

export function wgs84ToGcj02(lat, lon) {
  if (!inOffsetArea(lat, lon)) return [lat, lon];
  const [dLat, dLon] = shift(lat, lon);
  return [lat + dLat, lon + dLon];
}
