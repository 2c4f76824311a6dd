// Small DOM helpers: build elements without innerHTML (nothing from the API is ever parsed
// as markup), format ages and times.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  el.replaceChildren();
  return el;
}

let nextId = 0;
export function uniqueId(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

export function age(timestamp, now = Date.now()) {
  if (!timestamp) return "";
  const seconds = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours}h`;
  return `${Math.floor(hours / 24)}d`;
}

export function timeText(timestamp) {
  if (!timestamp) return "";
  const date = new Date(timestamp);
  return Number.isNaN(date.getTime()) ? String(timestamp) : date.toLocaleString();
}

export function href(...parts) {
  return "#/" + parts.map((p) => encodeURIComponent(p)).join("/");
}

export function phaseOf(resource) {
  // The table's state column: status.phase when the kind has one, else the Ready condition.
  const status = resource.status || {};
  if (typeof status.phase === "string" && status.phase) return status.phase;
  const ready = (status.conditions || []).find((c) => c.type === "Ready");
  if (ready) return ready.status === "True" ? "Ready" : `Not ready${ready.reason ? ": " + ready.reason : ""}`;
  return "";
}

export function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => (v === "" ? k : `${k}=${v}`)).join(", ");
}

export function nextFrame() {
  return new Promise((resolve) => requestAnimationFrame(() => resolve()));
}

// A performance mark once what was just put in the page has been laid out and painted (the
// second frame starts after the first was painted), for bench/console.py to read.
export async function markPainted(name) {
  await nextFrame();
  await nextFrame();
  performance.mark(name);
}
