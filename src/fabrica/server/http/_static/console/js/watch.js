// A watch that outlives its connection (SPEC section 8): it streams `?watch=true` from a
// resourceVersion, remembers the last version it saw (events and bookmarks), and after a
// cut (server restart, proxy timeout, network) connects again from that version, so no
// change is skipped or repeated. A 410 (the version is older than the server keeps) ends
// it: the owner lists again and starts a new watch from the new list's version.

import {ApiError, lines, listUrl, openStream, sleep} from "./api.js";

const MAX_BACKOFF = 8000;

export class Watch {
  constructor(kind, selectors, resourceVersion, handlers, signal) {
    this.kind = kind;
    this.selectors = selectors;
    this.resourceVersion = resourceVersion;
    this.handlers = handlers;
    this.signal = signal;
    this.connects = 0;
  }

  url() {
    const base = listUrl(this.kind, this.selectors);
    const query = new URLSearchParams({watch: "true", allowWatchBookmarks: "true"});
    if (this.resourceVersion) query.set("resourceVersion", this.resourceVersion);
    return base + (base.includes("?") ? "&" : "?") + query;
  }

  async run() {
    let backoff = 500;
    while (!this.signal.aborted) {
      try {
        const response = await openStream(this.url(), {kind: this.kind, signal: this.signal});
        this.connects += 1;
        backoff = 500;
        this.handlers.onState("live");
        if (await this.read(response)) return; // 410: the owner relists
      } catch (err) {
        if (this.signal.aborted) return;
        if (err instanceof ApiError && [400, 401, 403, 404, 406].includes(err.status)) {
          this.handlers.onError(err); // retrying would fail the same way
          return;
        }
      }
      if (this.signal.aborted) return;
      this.handlers.onState("reconnecting");
      await sleep(backoff, this.signal);
      backoff = Math.min(backoff * 2, MAX_BACKOFF);
    }
  }

  // Reads one connection's events; true when the server said 410 Gone.
  async read(response) {
    for await (const line of lines(response)) {
      if (!line.trim()) continue;
      const event = JSON.parse(line);
      const object = event.object || {};
      if (event.type === "ERROR") {
        if (object.code === 410) {
          this.handlers.onGone();
          return true;
        }
        continue; // any other error ends this stream; the loop reconnects
      }
      const version = object.metadata && object.metadata.resourceVersion;
      if (version) this.resourceVersion = version;
      if (event.type !== "BOOKMARK") this.handlers.onEvent(event.type, object);
    }
    return false;
  }
}

// Resource versions compare as integers within a kind (SPEC section 8).
export function newer(a, b) {
  try {
    return BigInt(a || "0") > BigInt(b || "0");
  } catch {
    return a !== b;
  }
}
