// A deployment's figures per route, polled from the team server every 2 s.
import { api, el, formatNumber, pageData, showError } from "/static/ferry.js";

const SPAN_S = 300;
const BUCKETS = 30;

function spark(buckets) {
  // each slice's requests, the failed share drawn in red on top
  const peak = Math.max(1e-9, ...buckets.map((b) => b.rate));
  const w = 4;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", String(buckets.length * w));
  svg.setAttribute("height", "20");
  svg.setAttribute("class", "bars");
  svg.setAttribute("role", "img");
  const failed = buckets.reduce((sum, b) => sum + b.errors, 0);
  svg.setAttribute("aria-label", `requests per second, peak ${formatNumber(peak)}; ${failed} failed`);
  const bar = (x, top, height, kind) => {
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", String(x));
    rect.setAttribute("y", String(top));
    rect.setAttribute("width", String(w - 1));
    rect.setAttribute("height", String(height));
    if (kind) rect.setAttribute("class", kind);
    svg.append(rect);
  };
  buckets.forEach((b, i) => {
    const h = b.requests ? Math.max(1, Math.round((b.rate / peak) * 18)) : 0;
    const bad = b.errors ? Math.min(h, Math.max(1, Math.round((h * b.errors) / b.requests))) : 0;
    bar(i * w, 20 - h + bad, h - bad, null);
    if (bad) bar(i * w, 20 - h, bad, "failed");
  });
  return svg;
}

function errorsText(found) {
  if (!found.errors) return "0";
  const parts = [];
  if (found.errors_4xx) parts.push(`4xx ${found.errors_4xx}`);
  if (found.errors_5xx) parts.push(`5xx ${found.errors_5xx}`);
  return `${found.errors} (${parts.join(", ")})`;
}

function figure(cell, key, found) {
  cell.classList.remove("failing");
  if (key === "spark") {
    cell.replaceChildren(found ? spark(found.buckets) : "");
  } else if (key === "last_error") {
    cell.textContent = found?.last_error ?? "";
    cell.title = found?.last_error ?? "";
  } else if (key === "errors") {
    cell.textContent = found ? errorsText(found) : "0";
    cell.classList.toggle("failing", Boolean(found?.errors));
  } else if (key === "error_rate") {
    cell.textContent = found?.requests ? `${formatNumber(Number((found.error_rate * 100).toPrecision(3)))}%` : "–";
    cell.classList.toggle("failing", Boolean(found?.errors));
  } else if (!found || found[key] === null) {
    cell.textContent = key === "requests" || key === "rate" ? "0" : "–";
  } else {
    const v = found[key];
    cell.textContent = key.endsWith("_ms") ? `${formatNumber(v.toPrecision(3))} ms` : formatNumber(key === "rate" ? Number(v.toPrecision(3)) : v);
  }
}

function show(routes) {
  const byName = new Map(routes.map((r) => [r.route, r]));
  for (const row of document.querySelectorAll("#routes tr[data-route]")) {
    const found = byName.get(row.dataset.route);
    if (row.dataset.route === "") row.hidden = !found;  // refused before routing: shown once any was
    for (const cell of row.querySelectorAll("[data-figure]")) figure(cell, cell.dataset.figure, found);
  }
  document.getElementById("updated").replaceChildren(el("time", {}, new Date().toLocaleTimeString()));
}

async function poll() {
  const name = encodeURIComponent(pageData().deployment);
  try {
    show(await api(`/api/v1/deployments/${name}/traffic?span_s=${SPAN_S}&buckets=${BUCKETS}`));
    showError("live-error", null);
  } catch (e) {
    showError("live-error", e);
  }
}

poll();
setInterval(poll, 2000);
