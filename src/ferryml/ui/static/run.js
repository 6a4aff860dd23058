// A run's metric charts (live while it runs) and its artifact tree with previews.
import { api, el, pageData, showError } from "/static/ferry.js";
import { drawChart, fetchSeries } from "/static/charts.js";

const page = pageData();
const runId = page.run_id;
const charts = new Map(); // key -> {node, series, plot}
const controls = {
  x: document.getElementById("x-axis"),
  smoothing: document.getElementById("smoothing"),
  log: document.getElementById("log-scale"),
};
const POLL_MS = 3000;

function draw(key) {
  const chart = charts.get(key);
  const { series } = chart;
  if (!series || !series.value.length) {
    chart.body.replaceChildren(el("p", { class: "muted" }, "No finite values."));
    return;
  }
  const time = controls.x.value === "time";
  chart.plot?.destroy();
  chart.plot = drawChart(chart.body, {
    lines: [{ label: key, x: time ? series.time : series.step, y: series.value }],
    time,
    log: controls.log.checked,
    smoothing: Number(controls.smoothing.value),
  });
  chart.node.dataset.points = String(series.value.length);
  chart.node.dataset.total = String(series.total);
  chart.node.dataset.last = String(series.value[series.value.length - 1]);
  chart.node.dataset.drawnMs = String(Math.round(performance.now()));
  chart.caption.textContent = series.total > series.value.length
    ? `${series.total.toLocaleString()} points, ${series.value.length} drawn`
    : `${series.total.toLocaleString()} point${series.total === 1 ? "" : "s"}`;
}

async function loadSeries(key) {
  const chart = charts.get(key);
  chart.series = await fetchSeries(runId, key, { x: controls.x.value, points: page.chart_points });
  draw(key);
}

function addChart(key) {
  const body = el("div", { class: "plot" });
  const caption = el("span", { class: "muted" });
  const node = el("figure", { class: "chart", "data-key": key },
    el("figcaption", {}, el("strong", {}, key), " ", caption), body);
  document.getElementById("charts").append(node);
  document.getElementById("no-metrics").hidden = true;
  charts.set(key, { node, body, caption, series: null, plot: null });
}

async function loadAll() {
  try {
    await Promise.all([...charts.keys()].map(loadSeries));
  } catch (error) {
    showError("run-error", error);
  }
}

async function poll() {
  try {
    const run = await api(`/api/v1/runs/${encodeURIComponent(runId)}`);
    const status = document.getElementById("run-status");
    status.textContent = run.info.status;
    status.className = `status ${run.info.status.toLowerCase()}`;
    for (const key of Object.keys(run.data.metrics)) {
      if (!charts.has(key)) addChart(key);
    }
    await loadAll();
    if (run.info.status === "RUNNING") setTimeout(poll, POLL_MS);
  } catch (error) {
    showError("run-error", error);
  }
}

// -- artifacts ------------------------------------------------------------------------

const PREVIEW_BYTES = 2 * 1024 * 1024;
const IMAGE = /\.(png|jpe?g|gif|webp|svg)$/i;
const HTML = /\.html?$/i;
const TABLE = /\.(csv|tsv|parquet|pq)$/i;
const TEXT = /\.(txt|log|md|json|ya?ml|py|toml|cfg|ini|sh)$|(^|\/)(MLmodel|requirements[^/]*|[A-Z]+)$/;

function fileUrl(path) {
  return `/api/v1/runs/${encodeURIComponent(runId)}/file?${new URLSearchParams({ path })}`;
}

function tree(entries) {
  const root = { dirs: new Map(), files: [] };
  for (const entry of entries) {
    const parts = entry.path.split("/");
    let node = root;
    for (const part of parts.slice(0, -1)) {
      if (!node.dirs.has(part)) node.dirs.set(part, { dirs: new Map(), files: [] });
      node = node.dirs.get(part);
    }
    node.files.push({ name: parts[parts.length - 1], entry });
  }
  return root;
}

function treeList(node) {
  return el("ul", {},
    [...node.dirs].map(([name, child]) =>
      el("li", {}, el("details", {}, el("summary", {}, `${name}/`), treeList(child)))),
    node.files.map(({ name, entry }) =>
      el("li", {}, el("button", {
        type: "button", onclick: () => preview(entry), title: `${entry.size.toLocaleString()} bytes`,
      }, name))));
}

async function preview(entry) {
  const box = document.getElementById("artifact-preview");
  const url = fileUrl(entry.path);
  const heading = el("h3", {}, entry.path, " ", el("a", { href: url, download: entry.path.split("/").pop() }, "download"));
  box.replaceChildren(heading, el("p", { class: "muted" }, "Loading…"));
  try {
    let body;
    if (IMAGE.test(entry.path)) {
      body = el("img", { src: url, alt: entry.path });
    } else if (HTML.test(entry.path)) {
      body = el("iframe", { src: url, sandbox: "allow-scripts", title: entry.path });
    } else if (TABLE.test(entry.path)) {
      const q = new URLSearchParams({ path: entry.path, rows: "100" });
      const table = await api(`/api/v1/runs/${encodeURIComponent(runId)}/table?${q}`);
      body = el("table", { class: "grid" },
        el("caption", { class: "muted" }, `first ${table.rows.length} rows`),
        el("thead", {}, el("tr", {}, table.columns.map((c) => el("th", { scope: "col" }, c)))),
        el("tbody", {}, table.rows.map((r) => el("tr", {}, r.map((v) => el("td", {}, v ?? ""))))));
    } else if (entry.size <= PREVIEW_BYTES && (TEXT.test(entry.path) || entry.size < 64 * 1024)) {
      const response = await fetch(url, { credentials: "same-origin" });
      let text = await response.text();
      if (/\.json$/i.test(entry.path)) {
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as is */ }
      }
      body = el("pre", { class: "mono" }, text);
    } else {
      body = el("p", {}, "No preview for this file; download it.");
    }
    box.replaceChildren(heading, body);
  } catch (error) {
    box.replaceChildren(heading, el("p", { class: "error", role: "alert" }, error.message));
  }
}

async function loadArtifacts() {
  const nav = document.getElementById("artifact-tree");
  try {
    const entries = await api(`/api/v1/runs/${encodeURIComponent(runId)}/artifacts`);
    nav.replaceChildren(entries.length ? treeList(tree(entries)) : el("p", { class: "muted" }, "No artifacts."));
    const packages = entries.find((e) => e.path === "environment/packages.txt");
    const details = document.getElementById("packages");
    if (packages) {
      details.addEventListener("toggle", async () => {
        const pre = document.getElementById("packages-text");
        if (details.open && !pre.textContent) {
          pre.textContent = await (await fetch(fileUrl(packages.path))).text();
        }
      });
    } else {
      details.hidden = true;
    }
  } catch (error) {
    showError("run-error", error);
  }
}

// -- changes (writers) ----------------------------------------------------------------

document.getElementById("delete-run")?.addEventListener("click", async (event) => {
  const restore = event.currentTarget.textContent.startsWith("Restore");
  try {
    await api(`/api/v1/runs/${encodeURIComponent(runId)}`, {
      method: "PATCH", body: { lifecycle_stage: restore ? "active" : "deleted" },
    });
    location.reload();
  } catch (error) {
    showError("run-error", error);
  }
});

controls.x.addEventListener("change", loadAll);
controls.log.addEventListener("change", () => charts.forEach((_, key) => draw(key)));
controls.smoothing.addEventListener("input", () => {
  document.getElementById("smoothing-value").textContent = controls.smoothing.value;
  charts.forEach((_, key) => draw(key));
});
page.metrics.forEach(addChart);
loadAll().then(() => {
  if (page.status === "RUNNING") setTimeout(poll, POLL_MS);
});
loadArtifacts();
