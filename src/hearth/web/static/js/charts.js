// Small SVG charts built with the DOM (no library, no innerHTML): a scatter plot with a highlighted front
// (the planner's cost/latency Pareto chart) and line charts (the bench's latency and throughput against
// load). Each chart is an <svg role="img"> with a title, and every point carries a <title> of its own.
const NS = "http://www.w3.org/2000/svg";
const W = 640;
const H = 320;
const PAD = { left: 72, right: 16, top: 28, bottom: 48 };
const SERIES = 5; // colours s0…s4 in app.css (classes: the CSP allows no inline styles)

function svgEl(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** About five round tick values covering [lo, hi]. */
function ticks(lo, hi) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => raw <= s);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

const short = (v) => (Math.abs(v) >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : Math.abs(v) >= 1e4 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(2)}`);

function frame(title, xs, ys, xLabel, yLabel) {
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title, class: "chart" });
  svg.append(svgEl("title", {}, title));
  const [x0, x1] = [Math.min(0, ...xs), Math.max(...xs) * 1.05 || 1];
  const [y0, y1] = [Math.min(0, ...ys), Math.max(...ys) * 1.1 || 1];
  const sx = (v) => PAD.left + ((v - x0) / (x1 - x0)) * (W - PAD.left - PAD.right);
  const sy = (v) => H - PAD.bottom - ((v - y0) / (y1 - y0)) * (H - PAD.top - PAD.bottom);
  const axes = svgEl("g", { class: "axes" });
  for (const t of ticks(x0, x1)) {
    axes.append(svgEl("line", { x1: sx(t), x2: sx(t), y1: PAD.top, y2: H - PAD.bottom, class: "grid" }));
    axes.append(svgEl("text", { x: sx(t), y: H - PAD.bottom + 16, "text-anchor": "middle" }, short(t)));
  }
  for (const t of ticks(y0, y1)) {
    axes.append(svgEl("line", { x1: PAD.left, x2: W - PAD.right, y1: sy(t), y2: sy(t), class: "grid" }));
    axes.append(svgEl("text", { x: PAD.left - 6, y: sy(t) + 4, "text-anchor": "end" }, short(t)));
  }
  axes.append(svgEl("text", { x: (PAD.left + W - PAD.right) / 2, y: H - 8, "text-anchor": "middle", class: "label" }, xLabel));
  axes.append(svgEl("text", { x: 14, y: (PAD.top + H - PAD.bottom) / 2, "text-anchor": "middle", class: "label", transform: `rotate(-90 14 ${(PAD.top + H - PAD.bottom) / 2})` }, yLabel));
  svg.append(axes);
  return { svg, sx, sy };
}

/** points: [{x, y, label, highlight}]; the highlighted ones are joined by a line, in x order. */
export function scatterChart(points, { title, xLabel, yLabel }) {
  const { svg, sx, sy } = frame(title, points.map((p) => p.x), points.map((p) => p.y), xLabel, yLabel);
  const front = points.filter((p) => p.highlight).sort((a, b) => a.x - b.x);
  if (front.length > 1) {
    svg.append(svgEl("polyline", { points: front.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" "), class: "front" }));
  }
  for (const p of points) {
    const dot = svgEl("circle", { cx: sx(p.x), cy: sy(p.y), r: p.highlight ? 6 : 4, class: p.highlight ? "dot front-dot" : "dot" });
    dot.append(svgEl("title", {}, p.label));
    svg.append(dot);
  }
  svg.append(legend([["cheapest for its latency (front)", "front-dot"], ["other options", "dot"]]));
  return svg;
}

/** series: [{name, points: [{x, y, label?}]}], one colour each, with a legend. */
export function lineChart(series, { title, xLabel, yLabel }) {
  const all = series.flatMap((s) => s.points);
  const { svg, sx, sy } = frame(title, all.map((p) => p.x), all.map((p) => p.y), xLabel, yLabel);
  series.forEach((s, i) => {
    const colour = `s${i % SERIES}`;
    const pts = [...s.points].sort((a, b) => a.x - b.x);
    if (pts.length > 1) {
      svg.append(svgEl("polyline", { points: pts.map((p) => `${sx(p.x)},${sy(p.y)}`).join(" "), class: `line ${colour}` }));
    }
    for (const p of pts) {
      const dot = svgEl("circle", { cx: sx(p.x), cy: sy(p.y), r: 4, class: colour });
      dot.append(svgEl("title", {}, p.label ?? `${s.name}: ${short(p.y)} at ${short(p.x)}`));
      svg.append(dot);
    }
  });
  svg.append(legend(series.map((s, i) => [s.name, `s${i % SERIES}`])));
  return svg;
}

function legend(items) {
  const g = svgEl("g", { class: "legend" });
  let x = PAD.left;
  for (const [name, cls] of items) {
    g.append(svgEl("circle", { cx: x + 5, cy: 12, r: 5, class: cls }));
    g.append(svgEl("text", { x: x + 14, y: 16 }, name));
    x += 24 + name.length * 7;
  }
  return g;
}
