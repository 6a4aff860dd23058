// Runs compared: one chart per metric with a line per run, and parallel coordinates of
// the params against a chosen metric.
import { el, formatNumber, pageData, showError } from "/static/ferry.js";
import { color, drawChart, fetchSeries } from "/static/charts.js";

const page = pageData();
const runs = page.runs;
const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metrics)))].sort();
const xAxis = document.getElementById("x-axis");
const logScale = document.getElementById("log-scale");
const charts = new Map();
const SVG = "http://www.w3.org/2000/svg";

async function drawKey(key) {
  const chart = charts.get(key);
  const time = xAxis.value === "time";
  const withKey = runs.filter((r) => key in r.metrics);
  const series = await Promise.all(
    withKey.map((r) => fetchSeries(r.id, key, { x: xAxis.value, points: 600 })));
  chart.plot?.destroy();
  chart.plot = drawChart(chart.body, {
    lines: series.map((s, i) => ({ label: withKey[i].name, x: time ? s.time : s.step, y: s.value })),
    time,
    log: logScale.checked,
  });
  chart.node.dataset.lines = String(series.length);
}

async function drawCharts() {
  const grid = document.getElementById("charts");
  for (const key of keys) {
    if (!charts.has(key)) {
      const body = el("div");
      const node = el("figure", { class: "chart", "data-key": key },
        el("figcaption", {}, el("strong", {}, key)), body);
      grid.append(node);
      charts.set(key, { node, body, plot: null });
    }
  }
  try {
    await Promise.all(keys.map(drawKey));
  } catch (error) {
    showError("compare-error", error);
  }
}

// -- parallel coordinates ---------------------------------------------------------------

function axisOf(values) {
  const numbers = values.filter((v) => v !== undefined).map(Number);
  if (numbers.length && numbers.every(Number.isFinite)) {
    const lo = Math.min(...numbers);
    const hi = Math.max(...numbers);
    return { pos: (v) => (v === undefined ? null : hi === lo ? 0.5 : (Number(v) - lo) / (hi - lo)),
      ticks: [[hi, 0], [lo, 1]].map(([v, at]) => [formatNumber(v), at]) };
  }
  const levels = [...new Set(values.filter((v) => v !== undefined).map(String))].sort();
  return { pos: (v) => (v === undefined ? null : levels.length === 1 ? 0.5 : levels.indexOf(String(v)) / (levels.length - 1)),
    ticks: levels.map((l, i) => [l, levels.length === 1 ? 0.5 : 1 - i / (levels.length - 1)]) };
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function drawParallel(metric) {
  const box = document.getElementById("parallel");
  const params = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const columns = [...params.map((p) => ({ label: p, value: (r) => r.params[p] })),
    { label: metric, value: (r) => r.metrics[metric] }];
  const width = Math.max(480, box.clientWidth || 800);
  const height = 280;
  const top = 24;
  const bottom = 20;
  const gap = columns.length > 1 ? (width - 120) / (columns.length - 1) : 0;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}` });
  const axes = columns.map((c) => axisOf(runs.map(c.value)));
  const y = (at) => top + (1 - at) * (height - top - bottom);
  columns.forEach((c, i) => {
    const x = 60 + i * gap;
    root.append(svg("line", { x1: x, x2: x, y1: top, y2: height - bottom, stroke: "#8c959f" }));
    root.append(svg("text", { x, y: 14, "text-anchor": "middle", "font-weight": i === columns.length - 1 ? 700 : 400 }, c.label));
    for (const [label, at] of axes[i].ticks.slice(0, 12)) {
      root.append(svg("text", { x: x + 4, y: y(1 - at) + 4 }, label));
    }
  });
  const metricAxis = axes[axes.length - 1];
  runs.forEach((r) => {
    const points = columns.map((c, i) => [60 + i * gap, axes[i].pos(c.value(r))]).filter(([, p]) => p !== null);
    if (!points.length) return;
    const shade = metricAxis.pos(r.metrics[metric]);
    const stroke = shade === null ? "#8c959f" : `hsl(${Math.round(220 - 200 * shade)}, 70%, 42%)`;
    const d = points.map(([x, p], i) => `${i ? "L" : "M"}${x},${y(p)}`).join(" ");
    const line = svg("path", { d, fill: "none", stroke, "stroke-width": 2, class: "line" });
    line.append(svg("title", {}, `${r.name}: ${metric} = ${formatNumber(r.metrics[metric])}`));
    root.append(line);
  });
  box.replaceChildren(root);
  box.setAttribute("aria-label", `Parallel coordinates of ${params.length} params against ${metric}`);
}

const choice = document.getElementById("parallel-metric");
for (const key of keys) choice.append(el("option", { value: key }, key));
choice.addEventListener("change", () => drawParallel(choice.value));
if (keys.length) drawParallel(keys[0]);
xAxis.addEventListener("change", drawCharts);
logScale.addEventListener("change", drawCharts);
drawCharts();
