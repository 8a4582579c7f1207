// Small line charts drawn as SVG: time on x, one series on y, with the axes' ends labelled.
// A chart also says its last value in text, for those who do not see it.

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 200;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };

function svg(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * A line chart of `points` ([{t: Date, y: number}]), `label` its accessible name,
 * `format(y)` how a value is written, `xFormat(t)` how an instant is written.
 */
export function lineChart(points, { label, format, xFormat }) {
  const root = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    class: "chart",
    role: "img",
    "aria-label": label,
    preserveAspectRatio: "none",
  });
  root.appendChild(svg("title", {}, label));
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  root.appendChild(svg("rect", { x: PAD.left, y: PAD.top, width: plotW, height: plotH, class: "chart-frame" }));
  if (points.length === 0) {
    root.appendChild(svg("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "chart-empty" }, "아직 자료가 없습니다"));
    return root;
  }
  const t0 = points[0].t.getTime();
  const t1 = Math.max(points[points.length - 1].t.getTime(), t0 + 1);
  const yMax = Math.max(...points.map((p) => p.y), 0) || 1;
  const x = (t) => PAD.left + ((t.getTime() - t0) / (t1 - t0)) * plotW;
  const y = (v) => PAD.top + plotH - (v / yMax) * plotH;
  for (const fraction of [0.5, 1]) {
    const gy = PAD.top + plotH - fraction * plotH;
    root.appendChild(svg("line", { x1: PAD.left, x2: PAD.left + plotW, y1: gy, y2: gy, class: "chart-grid" }));
    root.appendChild(svg("text", { x: PAD.left - 6, y: gy + 4, "text-anchor": "end", class: "chart-axis" }, format(yMax * fraction)));
  }
  root.appendChild(svg("text", { x: PAD.left - 6, y: PAD.top + plotH + 4, "text-anchor": "end", class: "chart-axis" }, format(0)));
  root.appendChild(svg("text", { x: PAD.left, y: HEIGHT - 8, "text-anchor": "start", class: "chart-axis" }, xFormat(points[0].t)));
  root.appendChild(svg("text", { x: PAD.left + plotW, y: HEIGHT - 8, "text-anchor": "end", class: "chart-axis" }, xFormat(points[points.length - 1].t)));
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.y).toFixed(1)}`).join(" ");
  root.appendChild(svg("polyline", { points: points.length === 1 ? `${line} ${line}` : line, class: "chart-line" }));
  const last = points[points.length - 1];
  root.appendChild(svg("circle", { cx: x(last.t), cy: y(last.y), r: 3.5, class: "chart-dot" }));
  return root;
}
