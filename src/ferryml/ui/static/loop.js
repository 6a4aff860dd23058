// The loop's pages: forms that call the team server's API (promote, roll back, approve,
// label ...). A form's fields become the JSON body; data-type="number" fields are sent as
// numbers, data-type="json" ones parsed, data-type="list" ones split at commas.
import { api, showError } from "/static/ferry.js";

function value(field) {
  const raw = field.value.trim();
  if (field.dataset.type === "number") return raw === "" ? undefined : Number(raw);
  if (field.dataset.type === "list") return raw === "" ? [] : raw.split(",").map(parseScalar);
  if (field.dataset.type === "json") {
    if (raw === "") return undefined;
    try {
      return JSON.parse(raw);
    } catch {
      return parseScalar(raw);
    }
  }
  return raw;
}

/** A label typed by a person: a number or true/false when it reads as one, else text. */
export function parseScalar(raw) {
  const text = String(raw).trim();
  if (text !== "" && !Number.isNaN(Number(text))) return Number(text);
  if (text === "true" || text === "false") return text === "true";
  return text;
}

/** The JSON body of ``form``: fields named like ``weights.v1`` nest. */
export function bodyOf(form, submitter) {
  const body = {};
  const fields = [...form.querySelectorAll("input[name], select[name], textarea[name]")];
  if (submitter?.name) fields.push(submitter);
  for (const field of fields) {
    const v = value(field);
    if (v === undefined) continue;
    const path = field.name.split(".");
    let into = body;
    for (const part of path.slice(0, -1)) into = into[part] ??= {};
    into[path.at(-1)] = v;
  }
  return body;
}

for (const form of document.querySelectorAll("form.action[data-api]")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = form.querySelector(".error");
    const buttons = form.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    try {
      const body = bodyOf(form, event.submitter);
      // "{alias}" in the path is filled from the field of that name, which leaves the body.
      const path = form.dataset.api.replace(/\{(\w+)\}/g, (_, name) => {
        const part = encodeURIComponent(String(body[name] ?? ""));
        delete body[name];
        return part;
      });
      await api(path, { method: form.dataset.method || "POST", body });
      if (form.dataset.next) window.location.assign(form.dataset.next);
      else window.location.reload();
    } catch (e) {
      if (error) {
        error.hidden = false;
        error.textContent = e.message;
      } else showError("error", e);
      buttons.forEach((b) => (b.disabled = false));
    }
  });
}
