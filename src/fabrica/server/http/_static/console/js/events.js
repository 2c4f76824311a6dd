// The service's CloudEvents (GET /events, server-sent events), read with fetch because
// EventSource cannot send a bearer token. One stream per console, opened when a page first
// asks for events and kept while the console is open, so each resource page shows what
// happened to it since then; it resumes after a cut with Last-Event-ID. The bus sends
// events as they happen: what happened before the console opened is not replayed.

import {ApiError, lines, openStream, sleep} from "./api.js";

const KEEP = 2000; // events kept in all
const PER_RESOURCE = 50;
const RESOURCES = 5000; // resources with events kept (the oldest forgotten first)

export class EventFeed {
  constructor() {
    this.recent = [];
    this.byUid = new Map();
    this.listeners = new Set();
    this.state = "closed";
    this.error = null;
    this.since = null;
    this.lastId = null;
    this.controller = null;
  }

  start() {
    if (this.controller) return;
    this.controller = new AbortController();
    this.since = new Date();
    this.run(this.controller.signal);
  }

  restart() {
    this.stop();
    this.start();
  }

  stop() {
    if (this.controller) this.controller.abort();
    this.controller = null;
    this.setState("closed");
  }

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  forResource(uid) {
    return this.byUid.get(uid) || [];
  }

  setState(state, error = null) {
    this.state = state;
    this.error = error;
    for (const listener of this.listeners) listener(null);
  }

  async run(signal) {
    let backoff = 500;
    while (!signal.aborted) {
      try {
        const response = await openStream("/events?type=**", {accept: "text/event-stream",
          signal, lastEventId: this.lastId});
        backoff = 500;
        this.setState("live");
        await this.read(response, signal);
      } catch (err) {
        if (signal.aborted) return;
        if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
          this.controller = null;
          this.setState("refused", err);
          return;
        }
      }
      if (signal.aborted) return;
      this.setState("reconnecting");
      await sleep(backoff, signal);
      backoff = Math.min(backoff * 2, 8000);
    }
  }

  async read(response, signal) {
    let data = [];
    let id = null;
    let name = "";
    for await (const line of lines(response)) {
      if (signal.aborted) return;
      if (line === "") {
        if (data.length) this.dispatch(name, data.join("\n"), id);
        data = [];
        name = "";
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "id") id = value;
      else if (field === "event") name = value;
    }
  }

  dispatch(name, text, id) {
    if (id) this.lastId = id;
    if (name && name !== "message") return; // fabrica.resync / fabrica.dropped notices
    let event;
    try {
      event = slim(JSON.parse(text));
    } catch {
      return;
    }
    this.recent.push(event);
    if (this.recent.length > KEEP) this.recent.splice(0, this.recent.length - KEEP);
    const uid = event.resourceuid || (event.data && event.data.resourceUID);
    if (uid) {
      const list = this.byUid.get(uid) || [];
      list.push(event);
      if (list.length > PER_RESOURCE) list.shift();
      this.byUid.delete(uid);
      this.byUid.set(uid, list); // most recently changed last
      if (this.byUid.size > RESOURCES) this.byUid.delete(this.byUid.keys().next().value);
    }
    for (const listener of this.listeners) listener(event);
  }
}

// What a page shows of an event: its envelope and data without the resource it carries.
function slim(event) {
  const {resource, ...data} = event.data || {};
  return {...event, data};
}

export const feed = new EventFeed();
