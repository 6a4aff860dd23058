// Metric charts drawn by uPlot from series the server has downsampled (LTTB).
import uPlot from "/static/vendor/uPlot.esm.js";
import { api } from "/static/ferry.js";

const COLORS = ["#0b5cad", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

export function color(i) {
  return COLORS[i % COLORS.length];
}

/** A metric's points, at most about ``points`` of them, keeping its shape. */
export async function fetchSeries(runId, key, { x = "step", points = 1000, signal } = {}) {
  const q = new URLSearchParams({ key, x, points: String(points) });
  return api(`/api/v1/runs/${encodeURIComponent(runId)}/series?${q}`, { signal });
}

/** Exponential moving average with TensorBoard's debiasing; ``weight`` in [0, 1). */
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) { out[i] = v; continue; }
    last = last * weight + (1 - weight) * v;
    n++;
    out[i] = last / (1 - weight ** n);
  }
  return out;
}

/** Draws lines (``lines``: [{label, x, y}], x ascending) on one chart in ``node``. */
export function drawChart(node, { lines, time = false, log = false, smoothing = 0, height = 240 }) {
  const xs = lines.map((l) => (time ? l.x.map((t) => t / 1000) : l.x));
  const ys = lines.map((l) => {
    const y = smooth(l.y, smoothing);
    return log ? y.map((v) => (v !== null && v > 0 ? v : null)) : y;
  });
  const data = lines.length === 1
    ? [xs[0], ys[0]]
    : uPlot.join(xs.map((x, i) => [x, ys[i]]));
  const opts = {
    width: Math.max(320, node.clientWidth || 480),
    height,
    scales: { x: { time }, y: log ? { distr: 3 } : {} },
    axes: [{ stroke: "#57606a" }, { stroke: "#57606a", size: 60 }],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
    series: [
      { label: time ? "time" : "step" },
      ...lines.map((l, i) => ({ label: l.label, stroke: color(i), width: 1.5, spanGaps: true })),
    ],
  };
  node.replaceChildren();
  return new uPlot(opts, data, node);
}
