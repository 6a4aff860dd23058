// A deployment's figures per route, polled from the team server every 2 s.
import { api, el, formatNumber, pageData, showError } from "/static/ferry.js";

const SPAN_S = 300;
const BUCKETS = 30;

function spark(buckets) {
  const peak = Math.max(1e-9, ...buckets.map((b) => b.rate));
  const w = 4;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("width", String(buckets.length * w));
  svg.setAttribute("height", "20");
  svg.setAttribute("class", "bars");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `requests per second, peak ${formatNumber(peak)}`);
  buckets.forEach((b, i) => {
    const h = Math.round((b.rate / peak) * 18);
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.setAttribute("x", String(i * w));
    rect.setAttribute("y", String(20 - h));
    rect.setAttribute("width", String(w - 1));
    rect.setAttribute("height", String(h));
    svg.append(rect);
  });
  return svg;
}

function show(routes) {
  const byName = new Map(routes.map((r) => [r.route, r]));
  for (const row of document.querySelectorAll("#routes tr[data-route]")) {
    const found = byName.get(row.dataset.route);
    for (const cell of row.querySelectorAll("[data-figure]")) {
      const key = cell.dataset.figure;
      if (key === "spark") {
        cell.replaceChildren(found ? spark(found.buckets) : "");
      } else if (!found || found[key] === null) {
        cell.textContent = key === "requests" || key === "rate" ? "0" : "–";
      } else {
        const v = found[key];
        cell.textContent = key.endsWith("_ms") ? `${formatNumber(v.toPrecision(3))} ms` : formatNumber(key === "rate" ? Number(v.toPrecision(3)) : v);
      }
    }
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
