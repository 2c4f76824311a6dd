// A kind's list as the table shows it: loaded page by page (limit and continue, ordered by
// name) only as far as the user scrolls, and kept current by a watch from the first page's
// X-Resource-Version. A change to a resource past the last loaded page is kept aside until
// that page comes, then applied if it is newer than the page; a 410 lists again.

import {listPage, listUrl} from "./api.js";
import {newer, Watch} from "./watch.js";

const PAGE = 200;

function nameOf(obj) {
  return (obj.metadata && obj.metadata.name) || "";
}

function uidOf(obj) {
  return (obj.metadata && obj.metadata.uid) || "";
}

function rvOf(obj) {
  return (obj.metadata && obj.metadata.resourceVersion) || "0";
}

export class LiveList {
  constructor(kind, selectors, signal, handlers) {
    this.kind = kind;
    this.selectors = selectors;
    this.signal = signal;
    this.handlers = handlers; // onChange(changedUids), onState(state), onError(err)
    this.epoch = 0;
    this.pages = 0;
  }

  async reset() {
    this.epoch += 1;
    const epoch = this.epoch;
    this.items = [];
    this.index = new Map(); // uid -> item
    this.pending = new Map(); // uid -> {rv, name, obj|null}: changes past the loaded pages
    this.next = null;
    this.loading = true;
    if (this.watchAbort) this.watchAbort.abort();
    const page = await listPage(this.kind, listUrl(this.kind, {...this.selectors, limit: PAGE}),
      this.signal);
    if (epoch !== this.epoch) return;
    this.pages = 1;
    this.addPage(page);
    this.loading = false;
    this.handlers.onChange([]);
    if (this.kind.verbs.has("watch")) this.watch(page.resourceVersion, epoch);
  }

  watch(resourceVersion, epoch) {
    this.watchAbort = new AbortController();
    const signal = AbortSignal.any([this.signal, this.watchAbort.signal]);
    const watch = new Watch(this.kind, this.selectors, resourceVersion, {
      onEvent: (type, obj) => {
        if (epoch === this.epoch) this.handlers.onChange(this.apply(type, obj));
      },
      onGone: () => {
        this.handlers.onState("relisting");
        this.reset().catch((err) => this.handlers.onError(err));
      },
      onState: (state) => this.handlers.onState(state),
      onError: (err) => this.handlers.onError(err),
    }, signal);
    this.watcher = watch;
    watch.run();
  }

  get hasMore() {
    return Boolean(this.next);
  }

  async loadMore() {
    if (!this.next || this.loading) return;
    this.loading = true;
    const epoch = this.epoch;
    try {
      const page = await listPage(this.kind, this.next, this.signal);
      if (epoch !== this.epoch) return;
      this.pages += 1;
      this.addPage(page);
    } finally {
      if (epoch === this.epoch) this.loading = false;
    }
    this.handlers.onChange([]);
  }

  addPage(page) {
    for (const item of page.items) {
      const have = this.index.get(uidOf(item));
      if (have && !newer(rvOf(item), rvOf(have))) continue;
      if (have) this.replace(have, item);
      else this.insert(item);
    }
    this.next = page.next;
    // What changed after this page was read, among the names it now covers.
    for (const [uid, change] of [...this.pending]) {
      if (!this.inRange(change.name)) continue;
      this.pending.delete(uid);
      if (!newer(change.rv, page.resourceVersion)) continue;
      this.apply(change.obj ? "MODIFIED" : "DELETED", change.obj || change.deleted);
    }
  }

  inRange(name) {
    if (!this.next) return true;
    const last = this.items[this.items.length - 1];
    return Boolean(last) && name <= nameOf(last);
  }

  // One watch event; returns the uids it changed.
  apply(type, obj) {
    const uid = uidOf(obj);
    const have = this.index.get(uid);
    if (have && !newer(rvOf(obj), rvOf(have))) return [];
    if (!have && !this.inRange(nameOf(obj))) {
      const kept = this.pending.get(uid);
      if (!kept || newer(rvOf(obj), kept.rv)) {
        this.pending.set(uid, {rv: rvOf(obj), name: nameOf(obj),
          obj: type === "DELETED" ? null : obj, deleted: obj});
      }
      return [];
    }
    if (type === "DELETED") {
      if (have) this.remove(have);
      return have ? [uid] : [];
    }
    if (have) this.replace(have, obj);
    else this.insert(obj);
    return [uid];
  }

  position(name) {
    let low = 0;
    let high = this.items.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (nameOf(this.items[mid]) < name) low = mid + 1;
      else high = mid;
    }
    return low;
  }

  insert(obj) {
    this.items.splice(this.position(nameOf(obj)), 0, obj);
    this.index.set(uidOf(obj), obj);
  }

  replace(old, obj) {
    const at = this.items.indexOf(old, Math.max(0, this.position(nameOf(old)) - 1));
    if (at >= 0) this.items[at] = obj;
    this.index.set(uidOf(obj), obj);
  }

  remove(old) {
    const at = this.items.indexOf(old, Math.max(0, this.position(nameOf(old)) - 1));
    if (at >= 0) this.items.splice(at, 1);
    this.index.delete(uidOf(old));
  }
}
