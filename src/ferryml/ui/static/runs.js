// The runs table: the server filters, sorts and pages; the page shows one page of rows,
// children folded under their parent. Its state (filter, order, offset, columns) lives in
// the URL, so a view can be shared.
import {
  api, el, formatDuration, formatNumber, formatTime, pageData, shortId, showError,
} from "/static/ferry.js";

const PAGE = 100;
const DEFAULT_COLUMNS = 5; // of each kind, until the reader picks
const FIRST_ROWS = 40; // more than a screen holds
const page = pageData();
const table = document.getElementById("runs");
const filterInput = document.getElementById("filter");
const selected = new Set();
let keys = { params: [], metrics: [], tags: [] };
let keysLoaded = false;
let drawnColumns = "";
let nextOffset = null;
let lastRuns = null;
let inflight = null;
let version = 0;
let renders = 0;

function state() {
  const q = new URLSearchParams(location.search);
  return {
    filter: q.get("filter") ?? "",
    order: q.get("order") ?? "attributes.start_time DESC",
    offset: Number(q.get("offset") ?? 0) || 0,
    columns: q.getAll("col"),
  };
}

function setState(changes, { push = true } = {}) {
  const next = { ...state(), ...changes };
  const q = new URLSearchParams();
  if (next.filter) q.set("filter", next.filter);
  q.set("order", next.order);
  if (next.offset) q.set("offset", String(next.offset));
  for (const c of next.columns) q.append("col", c);
  const url = `${location.pathname}?${q}`;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
  load();
}

function quoted(key) {
  return "`" + key.replaceAll("`", "") + "`";
}

function chosenColumns() {
  const { columns } = state();
  if (columns.length) return columns;
  // Until the experiment's keys arrive, the keys of the runs on the page: the rows and
  // their sortable columns show without waiting for a second request.
  const known = keysLoaded ? keys : pageKeys(lastRuns ?? []);
  return [
    ...known.metrics.slice(0, DEFAULT_COLUMNS).map((k) => `metrics.${k}`),
    ...known.params.slice(0, DEFAULT_COLUMNS).map((k) => `params.${k}`),
  ];
}

function pageKeys(runs) {
  const metrics = new Set();
  const params = new Set();
  for (const run of runs) {
    for (const k of Object.keys(run.data.metrics)) metrics.add(k);
    for (const k of Object.keys(run.data.params)) params.add(k);
  }
  const sorted = (set) => [...set].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { metrics: sorted(metrics), params: sorted(params) };
}

function splitColumn(column) {
  const dot = column.indexOf(".");
  return [column.slice(0, dot), column.slice(dot + 1)];
}

const FIXED = [
  { label: "Run", order: "attributes.run_name" },
  { label: "Status", order: "attributes.status" },
  { label: "Started", order: "attributes.start_time" },
  { label: "Duration", order: null },
  { label: "User", order: "attributes.user" },
  { label: "Commit", order: null },
];

function sortButton(label, orderKey) {
  if (!orderKey) return label;
  const { order } = state();
  const [current, direction] = order.split(/\s+(?=ASC$|DESC$)/);
  const active = current === orderKey;
  const nextDirection = active && direction !== "ASC" ? "ASC" : "DESC";
  return el(
    "button",
    {
      type: "button",
      class: "sort",
      title: `Sort by ${label}`,
      onclick: () => setState({ order: `${orderKey} ${nextDirection}`, offset: 0 }),
    },
    label,
    active ? (direction === "ASC" ? " ▲" : " ▼") : "",
  );
}

function ariaSort(orderKey) {
  if (!orderKey) return undefined;
  const [current, direction] = state().order.split(/\s+(?=ASC$|DESC$)/);
  if (current !== orderKey) return undefined;
  return direction === "ASC" ? "ascending" : "descending";
}

function renderHead(columns) {
  const head = el(
    "tr",
    {},
    el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Select")),
    FIXED.map((c) => el("th", { scope: "col", "aria-sort": ariaSort(c.order) }, sortButton(c.label, c.order))),
    columns.map((column) => {
      const [kind, key] = splitColumn(column);
      const orderKey = `${kind}.${quoted(key)}`;
      return el(
        "th",
        { scope: "col", class: kind, "aria-sort": ariaSort(orderKey) },
        el("span", { class: "kind" }, kind.slice(0, -1)),
        sortButton(key, orderKey),
      );
    }),
  );
  table.tHead.replaceChildren(head);
}

function valueOf(run, column) {
  const [kind, key] = splitColumn(column);
  const value = run.data[kind]?.[key];
  return kind === "tags" ? value ?? "" : formatNumber(value);
}

function runRow(run, columns, { child = false, children = 0 } = {}) {
  const info = run.info;
  const id = info.run_id;
  const box = el("input", {
    type: "checkbox",
    "aria-label": `Select run ${info.run_name || id}`,
    checked: selected.has(id),
    onchange: (event) => {
      if (event.target.checked) selected.add(id);
      else selected.delete(id);
      updateCompare();
    },
  });
  const fold = children
    ? el("button", {
        type: "button",
        class: "fold",
        "aria-expanded": "false",
        "aria-label": `Show ${children} child runs`,
        onclick: (event) => toggleChildren(id, event.currentTarget),
      }, `▸ ${children}`)
    : null;
  const end = info.end_time ?? (info.status === "RUNNING" ? Date.now() : null);
  const commit = run.data.tags["ferry.git.commit"] ?? "";
  return el(
    "tr",
    { "data-run": id, "data-parent": child ? info.parent_run_id : undefined, hidden: child },
    el("td", {}, box),
    el("td", { class: child ? "child" : undefined }, fold, " ",
      el("a", { href: `/runs/${encodeURIComponent(id)}` }, info.run_name || shortId(id))),
    el("td", {}, el("span", { class: `status ${info.status.toLowerCase()}` }, info.status)),
    el("td", {}, formatTime(info.start_time)),
    el("td", { class: "num" }, end === null ? "" : formatDuration(end - info.start_time)),
    el("td", {}, info.user),
    el("td", { class: "mono" }, commit.slice(0, 8)),
    columns.map((c) => el("td", { class: c.startsWith("tags.") ? undefined : "num" }, valueOf(run, c))),
  );
}

function toggleChildren(id, button) {
  const open = button.getAttribute("aria-expanded") !== "true";
  button.setAttribute("aria-expanded", String(open));
  button.textContent = `${open ? "▾" : "▸"} ${button.textContent.slice(2)}`;
  for (const row of table.tBodies[0].querySelectorAll(`tr[data-parent="${CSS.escape(id)}"]`)) {
    row.hidden = !open;
  }
}

function renderRows(runs) {
  const columns = chosenColumns();
  drawnColumns = columns.join("\n");
  renderHead(columns);
  const onPage = new Set(runs.map((r) => r.info.run_id));
  const children = new Map();
  for (const run of runs) {
    const parent = run.info.parent_run_id;
    if (parent && onPage.has(parent)) {
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(run);
    }
  }
  const drawn = []; // [run, options] in table order
  for (const run of runs) {
    const parent = run.info.parent_run_id;
    if (parent && onPage.has(parent)) continue; // drawn under its parent
    const kids = children.get(run.info.run_id) ?? [];
    drawn.push([run, { children: kids.length }]);
    for (const kid of kids) drawn.push([kid, { child: true }]);
  }
  const body = table.tBodies[0];
  const render = ++renders;
  if (!drawn.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 7 + columns.length }, "No runs match.")));
    return;
  }
  // The rows a screen shows first; the rest in the next task, so a re-sort or a filter
  // shows without waiting for rows below the fold.
  const rows = (part) => part.map(([run, options]) => runRow(run, columns, options));
  body.replaceChildren(...rows(drawn.slice(0, FIRST_ROWS)));
  if (drawn.length > FIRST_ROWS) {
    setTimeout(() => {
      if (render === renders) body.append(...rows(drawn.slice(FIRST_ROWS)));
    }, 0);
  }
}

function updateCompare() {
  const button = document.getElementById("compare");
  button.disabled = selected.size < 2;
  button.textContent = selected.size >= 2 ? `Compare ${selected.size} runs` : "Compare selected";
  const remove = document.getElementById("delete");
  if (remove) remove.disabled = selected.size === 0;
}

async function deleteSelected() {
  const ids = [...selected];
  if (!confirm(`Mark ${ids.length} run(s) deleted? They can be restored until ferry gc.`)) return;
  try {
    for (const id of ids) {
      await api(`/api/v1/runs/${encodeURIComponent(id)}`, {
        method: "PATCH", body: { lifecycle_stage: "deleted" },
      });
      selected.delete(id);
    }
    updateCompare();
    load();
  } catch (error) {
    showError("search-error", error);
  }
}

async function load() {
  const { filter, order, offset } = state();
  filterInput.value = filter;
  inflight?.abort();
  const controller = new AbortController();
  inflight = controller;
  table.setAttribute("aria-busy", "true");
  try {
    const result = await api("/api/v1/runs/search", {
      method: "POST",
      body: {
        experiment_ids: [page.experiment_id],
        filter,
        order_by: [order, "attributes.start_time DESC"],
        max_results: PAGE,
        offset,
      },
      signal: controller.signal,
    });
    showError("search-error", null);
    lastRuns = result.runs;
    renderRows(result.runs);
    nextOffset = result.next_offset;
    const shown = result.runs.length;
    document.getElementById("rows-shown").textContent = shown
      ? `Runs ${offset + 1}–${offset + shown}${nextOffset === null ? "" : " (more)"}`
      : "";
    document.getElementById("previous").disabled = offset === 0;
    document.getElementById("next").disabled = nextOffset === null;
  } catch (error) {
    if (error.name === "AbortError") return;
    showError("search-error", error);
    table.tBodies[0].replaceChildren();
    document.getElementById("rows-shown").textContent = "";
  } finally {
    if (inflight === controller) {
      table.removeAttribute("aria-busy");
      table.dataset.version = String(++version);
    }
  }
}

function renderColumnChoice() {
  const chosen = new Set(chosenColumns());
  const box = document.getElementById("column-choice");
  const groups = [["params", "Params"], ["metrics", "Metrics"], ["tags", "Tags"]].map(([kind, label]) =>
    el("fieldset", {}, el("legend", {}, label),
      keys[kind].length ? keys[kind].map((key) => {
        const column = `${kind}.${key}`;
        return el("label", {}, el("input", {
          type: "checkbox",
          checked: chosen.has(column),
          onchange: () => {
            const now = new Set(chosenColumns());
            if (now.has(column)) now.delete(column);
            else now.add(column);
            setState({ columns: [...now] });
          },
        }), ` ${key}`);
      }) : el("span", { class: "muted" }, "none")));
  box.replaceChildren(...groups);
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  setState({ filter: filterInput.value.trim(), offset: 0 });
});
document.getElementById("previous").addEventListener("click", () =>
  setState({ offset: Math.max(0, state().offset - PAGE) }));
document.getElementById("next").addEventListener("click", () => {
  if (nextOffset !== null) setState({ offset: nextOffset });
});
document.getElementById("compare").addEventListener("click", () => {
  const q = new URLSearchParams();
  for (const id of selected) q.append("run", id);
  location.href = `/compare?${q}`;
});
document.getElementById("delete")?.addEventListener("click", deleteSelected);
window.addEventListener("popstate", load);

// The experiment's keys only when the reader opens the column choice: the first rows, a
// re-sort or a filter do not share the server with them.
function loadKeys() {
  api(`/api/v1/experiments/${encodeURIComponent(page.experiment_id)}/keys`)
    .then((found) => {
      keys = found;
      keysLoaded = true;
      renderColumnChoice();
      // Drawn again only if the experiment's keys choose other columns than the page's did.
      if (lastRuns !== null && chosenColumns().join("\n") !== drawnColumns) renderRows(lastRuns);
    })
    .catch((error) => showError("search-error", error));
}

const columnChoice = document.querySelector("details.columns");
columnChoice.addEventListener("toggle", () => {
  if (columnChoice.open && !keysLoaded) loadKeys();
});
load();
