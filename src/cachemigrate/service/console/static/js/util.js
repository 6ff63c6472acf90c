// DOM helpers (text only: nothing from the API is ever parsed as HTML), formats, the dialog.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k === "data") Object.assign(node.dataset, v);
    else if (k === "for") node.htmlFor = v;
    else if (k === "checked") node.defaultChecked = node.checked = Boolean(v); // a form reset keeps it
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

let uid = 0;
// A labelled form control: returns [wrapper, control].
export function field(label, control, hint) {
  if (!control.id) control.id = `f${++uid}`;
  const parts = [h("label", { for: control.id, text: label }), control];
  if (hint) {
    const hid = `${control.id}-hint`;
    control.setAttribute("aria-describedby", hid);
    parts.push(h("small", { id: hid, class: "hint", text: hint }));
  }
  return h("div", { class: "field" }, parts);
}

export function select(options, value) {
  const s = h("select");
  for (const [v, label] of options) s.append(h("option", { value: v, text: label }));
  if (value !== undefined) s.value = value;
  return s;
}

// A message region next to an action: errors as alerts, results as status.
export function messages() {
  const box = h("div", { class: "messages", "aria-live": "polite" });
  box.show = (text, kind = "error") => {
    box.replaceChildren(h("p", { class: `msg ${kind}`, role: kind === "error" ? "alert" : "status", text }));
  };
  box.clear = () => box.replaceChildren();
  return box;
}

// Runs fn on a button's click with the button busy and errors shown in box.
export async function act(button, box, fn) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  box.clear();
  try {
    const ok = await fn();
    if (typeof ok === "string") box.show(ok, "ok");
  } catch (err) {
    box.show(err.text || err.message);
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

const nf = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
export const num = (v) => (v === null || v === undefined || v === "" || Number.isNaN(Number(v)) ? "–" : nf.format(Number(v)));

export function bytes(v) {
  const n = Number(v);
  if (!Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${nf.format(i ? Number(x.toFixed(1)) : x)} ${units[i]}`;
}

export const TYPES = {
  "online_migration:incremental_migration": "Online, full + incremental",
  "online_migration:full_amount_migration": "Online, full",
  "backupfile_import:full_amount_migration": "Backup import",
};
export const typeOf = (t) =>
  TYPES[`${t.migration_type}:${t.migration_method}`] ||
  (t.migration_type === "online_migration" ? "Online (not configured)" : t.migration_type);

export const STATUSES = [
  "CREATING", "RUNNING", "MIGRATING", "FULLMIGRATING", "INCRMIGEATING", "TERMINATING", "TERMINATED",
  "SUCCESS", "FAILED", "MIGRATION_FAILED",
];
export const EXECUTING = new Set(["MIGRATING", "FULLMIGRATING", "INCRMIGEATING"]);

export function badge(status) {
  const kind = EXECUTING.has(status) ? "run" : status === "SUCCESS" ? "ok" : /FAIL/.test(status) ? "bad" : "idle";
  return h("span", { class: `badge ${kind}`, data: { status }, text: status });
}

export const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC") : "–");

// The confirmation dialog: resolves to the form's values (an object) or null when cancelled.
export function confirm({ title, body, ok, danger = false }) {
  const dlg = document.getElementById("confirm");
  const form = dlg.querySelector("form");
  document.getElementById("confirm-title").textContent = title;
  const holder = document.getElementById("confirm-body");
  holder.replaceChildren(...(Array.isArray(body) ? body : [body]).map((b) => (typeof b === "string" ? h("p", { text: b }) : b)));
  const okBtn = document.getElementById("confirm-ok");
  okBtn.textContent = ok;
  okBtn.className = danger ? "danger" : "primary";
  return new Promise((resolve) => {
    dlg.addEventListener(
      "close",
      () => {
        if (dlg.returnValue !== "ok") return resolve(null);
        const values = {};
        for (const c of holder.querySelectorAll("input, select, textarea")) {
          values[c.name] = c.type === "checkbox" ? c.checked : c.value;
        }
        resolve(values);
      },
      { once: true },
    );
    dlg.returnValue = "";
    form.reset();
    dlg.showModal();
    const first = holder.querySelector("input, select, textarea");
    (first || okBtn).focus();
  });
}

// To a route (the same one again re-renders it).
export function go(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}
