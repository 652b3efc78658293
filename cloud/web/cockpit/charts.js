// Small SVG charts drawn without a library: a line chart of one or more series over time,
// and a bar chart. Every element is created with the DOM API (no innerHTML), so data never
// becomes markup, and presentation attributes (not style attributes) keep the page's CSP.

const NS = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2",
  "#db2777", "#65a30d", "#475569", "#ea580c"];
const PAD = { left: 40, right: 10, top: 10, bottom: 22 };

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// The drawing is as wide as its box (so text is not stretched), 600 units when not laid out.
function frame(box, height) {
  const width = Math.max(Math.round(box.clientWidth) || 600, 200);
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, role: "img" });
  box.replaceChildren(svg);
  return { svg, width };
}

// A "nice" axis maximum: 1, 2 or 5 times a power of ten, at least 1.
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (value <= step * power) return step * power;
  return 10 * power;
}

function yAxis(svg, max, width, height) {
  const plotH = height - PAD.top - PAD.bottom;
  for (const f of [0, 0.5, 1]) {
    const y = PAD.top + plotH * (1 - f);
    svg.append(el("line", { x1: PAD.left, x2: width - PAD.right, y1: y, y2: y, class: "grid" }));
    const label = Number.isInteger(max * f) ? max * f : (max * f).toFixed(1);
    svg.append(el("text", { x: PAD.left - 4, y: y + 4, "text-anchor": "end", class: "axis" }, label));
  }
}

function clock(date) {
  return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// series: [{name, color, values: [number]}] over the shared times (Date objects).
export function lineChart(box, times, series, { height = 180 } = {}) {
  const { svg, width } = frame(box, height);
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  yAxis(svg, max, width, height);
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const x = (i) => PAD.left + (times.length > 1 ? (plotW * i) / (times.length - 1) : plotW / 2);
  const y = (v) => PAD.top + plotH * (1 - v / max);
  const last = times.length - 1;
  for (const [i, anchor] of [[0, "start"], [Math.floor(last / 2), "middle"], [last, "end"]]) {
    if (times[i]) {
      svg.append(el("text", { x: x(i), y: height - 6, "text-anchor": anchor, class: "axis" },
        clock(times[i])));
    }
  }
  for (const s of series) {
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const line = el("polyline", { points, fill: "none", stroke: s.color, "stroke-width": 2 });
    line.append(el("title", {}, s.name));
    svg.append(line);
  }
  return svg;
}

// bars: [{label, value}]
export function barChart(box, bars, { height = 180, color = PALETTE[0] } = {}) {
  const { svg, width } = frame(box, height);
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  yAxis(svg, max, width, height);
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const slot = plotW / Math.max(bars.length, 1);
  bars.forEach((b, i) => {
    const h = (plotH * b.value) / max;
    const x = PAD.left + i * slot + slot * 0.1;
    const rect = el("rect", { x, y: PAD.top + plotH - h, width: slot * 0.8, height: h, fill: color });
    rect.append(el("title", {}, `${b.label}: ${b.value}`));
    svg.append(rect);
    svg.append(el("text", { x: x + slot * 0.4, y: height - 6, "text-anchor": "middle", class: "axis" },
      b.label));
  });
  return svg;
}
