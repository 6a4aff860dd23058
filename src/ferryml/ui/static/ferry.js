// What every page's script shares: the page's data, the JSON API, formatting, elements.

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

let cachedPage = null;

/** The data the server rendered into the page (who is looking, ids). */
export function pageData() {
  if (cachedPage === null) {
    cachedPage = JSON.parse(document.getElementById("page-data").textContent);
  }
  return cachedPage;
}

/** Calls the team server's JSON API with the session cookie; throws ApiError with the
 * server's one-line message when it refuses. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-Ferry-UI"] = "1";
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    signal,
  });
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = parseJson(await response.text());
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const message = payload?.error?.message ?? `${response.status} ${response.statusText}`;
    throw new ApiError(message, response.status);
  }
  return payload;
}

/** JSON as the server writes it, where a metric may be NaN or infinite: those bare words
 * (outside strings) become the strings "NaN", "Infinity", "-Infinity", which the pages
 * show as they are. */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch (error) {
    const spelled = text.replace(/"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)/g, (m, bare) => (bare ? `"${bare}"` : m));
    if (spelled === text) throw error;
    return JSON.parse(spelled);
  }
}

/** An element: el("a", {href: "/x", class: "y"}, "text", child). */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatTime(ms) {
  if (ms === null || ms === undefined) return "";
  const d = new Date(Number(ms));
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

export function formatNumber(value) {
  if (value === null || value === undefined || value === "") return "";
  const n = Number(value);
  if (!Number.isFinite(n)) return String(value);
  if (Number.isInteger(n) && Math.abs(n) < 1e15) return String(n);
  const a = Math.abs(n);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? n.toExponential(4) : String(Number(n.toPrecision(6)));
}

/** Shows an error's message in the element with id ``id`` (a role="alert" paragraph). */
export function showError(id, error) {
  const node = document.getElementById(id);
  if (!node) return;
  if (error === null) {
    node.hidden = true;
    node.textContent = "";
  } else {
    node.hidden = false;
    node.textContent = error instanceof Error ? error.message : String(error);
  }
}

export function shortId(id) {
  return String(id).slice(0, 8);
}

// Times rendered by the server as milliseconds, shown in the reader's time zone.
for (const node of document.querySelectorAll("time[data-ms]")) {
  node.textContent = formatTime(node.dataset.ms);
  node.setAttribute("datetime", new Date(Number(node.dataset.ms)).toISOString());
}
