// The service's public HTTP API, as the console uses it: every request carries the token
// (when one is set) and the kind's API version (when its default one is deprecated), and
// every failure becomes an ApiError holding the SPEC section 3 error body.

const TOKEN_KEY = "fabrica.console.token";

export class ApiError extends Error {
  constructor(status, body, statusText = "") {
    const message = (body && body.error) || statusText || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.body = body || {};
    this.details = Array.isArray(this.body.details) ? this.body.details : [];
  }

  // What the user reads: the status spelled out, then the server's own message.
  describe() {
    const names = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden",
      404: "Not found", 405: "Method not allowed", 406: "Not acceptable", 409: "Conflict",
      412: "Precondition failed", 413: "Too large", 415: "Unsupported media type",
      422: "Cannot apply", 503: "Service unavailable"};
    const name = names[this.status] || "Error";
    const title = this.status === 0 ? "Service unreachable" : `${this.status} ${name}`;
    let message = this.message;
    if (message.toLowerCase().startsWith(`${name.toLowerCase()}: `)) { // said once is enough
      message = message.slice(name.length + 2);
    }
    const hint = this.status === 401 ? " Enter a valid bearer token in the token field." : "";
    return `${title}: ${message}.${hint}`.replace(/\.\.( |$)/g, ".$1");
  }
}

export const token = {
  get() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  },
  set(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
  // The token's claims (unverified: only to show who the console acts as).
  claims() {
    const parts = this.get().split(".");
    if (parts.length !== 3) return null;
    try {
      const text = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
      return JSON.parse(text);
    } catch {
      return null;
    }
  },
};

function headers(extra = {}) {
  const result = {...extra};
  const bearer = token.get();
  if (bearer) result.Authorization = `Bearer ${bearer}`;
  return result;
}

async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body, response.statusText);
}

async function send(url, init) {
  try {
    return await fetch(url, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, {error: `cannot reach the service (${err.message})`});
  }
}

// One request; resolves {data, headers, status} for a 2xx, rejects with ApiError otherwise.
export async function request(method, url, {body, kind, contentType, ifMatch, signal} = {}) {
  const extra = {Accept: (kind && kind.mediaType) || "application/json"};
  if (body !== undefined) {
    extra["Content-Type"] = contentType || (kind && kind.mediaType) || "application/json";
  }
  if (ifMatch) extra["If-Match"] = `"${ifMatch}"`;
  const response = await send(url, {method, headers: headers(extra), signal,
    body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store"});
  if (!response.ok) throw await errorOf(response);
  const text = await response.text();
  return {data: text ? JSON.parse(text) : null, headers: response.headers, status: response.status};
}

export function nextLink(header) {
  const match = /<([^>]*)>\s*;\s*rel="?next"?/.exec(header || "");
  return match ? match[1] : null;
}

export function listUrl(kind, {labelSelector = "", fieldSelector = "", limit = 0} = {}) {
  const query = new URLSearchParams();
  if (labelSelector) query.set("labelSelector", labelSelector);
  if (fieldSelector) query.set("fieldSelector", fieldSelector);
  if (limit) query.set("limit", String(limit));
  const text = query.toString();
  return `/${kind.plural}${text ? "?" + text : ""}`;
}

// One page: {items, next (the Link rel=next URL or null), resourceVersion}.
export async function listPage(kind, url, signal) {
  const {data, headers: got} = await request("GET", url, {kind, signal});
  return {items: data, next: nextLink(got.get("Link")),
    resourceVersion: got.get("X-Resource-Version") || ""};
}

// Every page of a list, `onPage(items)` after each one.
export async function listAll(kind, {limit = 1000, signal, onPage}) {
  let url = listUrl(kind, {limit});
  while (url) {
    const page = await listPage(kind, url, signal);
    onPage(page.items);
    url = page.next;
  }
}

export function resourceUrl(kind, id) {
  return `/${kind.plural}/${encodeURIComponent(id)}`;
}

// Reads a response body line by line (newline-delimited JSON, or SSE).
export async function* lines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const {value, done} = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, {stream: true});
      let end;
      while ((end = buffer.indexOf("\n")) >= 0) {
        yield buffer.slice(0, end).replace(/\r$/, "");
        buffer = buffer.slice(end + 1);
      }
    }
    if (buffer) yield buffer;
  } finally {
    reader.releaseLock();
  }
}

// A streaming GET (watch or /events): the response once its headers arrived.
export async function openStream(url, {kind, accept, signal, lastEventId} = {}) {
  const extra = {Accept: accept || (kind && kind.mediaType) || "application/json"};
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await send(url, {headers: headers(extra), signal, cache: "no-store"});
  if (!response.ok) throw await errorOf(response);
  return response;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, {once: true});
  });
}
