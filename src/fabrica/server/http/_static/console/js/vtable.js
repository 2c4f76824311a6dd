// A table that puts only its visible rows in the page: rows have one height, a spacer gives
// the scroll range, and the rows in view (plus a few either side) are positioned in it.
// Keyboard: one row is in the tab order at a time (the active one); arrows, Page Up/Down,
// Home and End move it, Enter or Space opens it.

import {age, h, labelsText, phaseOf} from "./dom.js";

const ROW = 36;
const OVERSCAN = 6;
const FLASH_MS = 2500;

export const COLUMNS = [
  {title: "Name", cell: (r) => r.metadata.name},
  {title: "UID", cell: (r) => r.metadata.uid},
  {title: "Age", cell: (r, now) => age(r.metadata.createdAt, now)},
  {title: "Phase / Ready", cell: (r) => phaseOf(r) || "—"},
  {title: "Labels", cell: (r) => labelsText(r.metadata.labels)},
];

export class VirtualTable {
  constructor({label, rowHref, onNeedMore}) {
    this.rowHref = rowHref;
    this.onNeedMore = onNeedMore;
    this.items = [];
    this.hasMore = false;
    this.rows = new Map(); // uid -> rendered row element
    this.active = null; // uid of the row in the tab order
    this.flashed = new Map(); // uid -> time it changed
    this.spacer = h("div", {class: "vt-spacer"});
    this.more = h("div", {class: "vt-more", "aria-hidden": "true", text: "Loading more…"});
    this.viewport = h("div", {class: "vt-body", role: "rowgroup", tabindex: "-1"},
      this.spacer);
    this.head = h("div", {class: "vt-head", role: "rowgroup"},
      h("div", {class: "vt-row", role: "row"}, COLUMNS.map((c, i) =>
        h("span", {class: `vt-cell c${i}`, role: "columnheader", text: c.title}))));
    this.el = h("div", {class: "vt", role: "table", "aria-label": label}, this.head,
      this.viewport);
    this.viewport.addEventListener("scroll", () => this.schedule(), {passive: true});
    this.viewport.addEventListener("keydown", (e) => this.key(e));
    this.viewport.addEventListener("focus", () => this.focusActive());
    this.viewport.addEventListener("click", (e) => this.click(e));
    new ResizeObserver(() => this.schedule()).observe(this.viewport);
    this.timer = setInterval(() => this.render(true), 15000); // ages move on
  }

  destroy() {
    clearInterval(this.timer);
  }

  setItems(items, hasMore, changed = []) {
    const now = Date.now();
    for (const uid of changed) this.flashed.set(uid, now);
    if (changed.length) setTimeout(() => this.schedule(), FLASH_MS + 50);
    this.items = items;
    this.hasMore = hasMore;
    this.el.setAttribute("aria-rowcount", hasMore ? "-1" : String(items.length + 1));
    // Sized now, not at the next frame: a key pressed before it (End) scrolls to a row of
    // the new items, which the old height would clamp short of.
    this.sizeSpacer();
    this.schedule(changed.length > 0);
  }

  sizeSpacer() {
    this.spacer.style.height = `${(this.items.length + (this.hasMore ? 2 : 0)) * ROW}px`;
  }

  schedule(force = false) {
    this.force = this.force || force;
    if (this.pending) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = null;
      this.render(this.force);
      this.force = false;
    });
  }

  render(force = false) {
    const total = this.items.length;
    this.sizeSpacer();
    const top = this.viewport.scrollTop;
    const height = this.viewport.clientHeight || ROW * 15;
    const first = Math.max(0, Math.floor(top / ROW) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + height) / ROW) + OVERSCAN);
    const now = Date.now();
    const keep = new Set();
    for (let i = first; i < last; i++) keep.add(this.draw(this.items[i], i, now, force));
    const focused = document.activeElement;
    for (const [uid, row] of this.rows) {
      if (keep.has(row)) continue;
      if (row === focused && this.indexOf(uid) >= 0) { // stays while focused, in place
        row.style.transform = `translateY(${this.indexOf(uid) * ROW}px)`;
        continue;
      }
      row.remove();
      this.rows.delete(uid);
    }
    if (this.hasMore) {
      this.more.style.transform = `translateY(${total * ROW}px)`;
      if (!this.more.isConnected) this.viewport.append(this.more);
    } else this.more.remove();
    this.updateTabStop();
    if (this.hasMore && last >= total - OVERSCAN * 4) this.onNeedMore();
  }

  draw(item, index, now, force) {
    const uid = item.metadata.uid;
    let row = this.rows.get(uid);
    if (!row) {
      row = h("div", {class: "vt-row", role: "row", tabindex: "-1"});
      this.rows.set(uid, row);
      this.viewport.append(row);
      force = true;
    }
    if (force || row.item !== item) {
      row.item = item;
      row.dataset.uid = uid;
      row.dataset.name = item.metadata.name;
      row.replaceChildren(...COLUMNS.map((c, i) => {
        const text = c.cell(item, now);
        if (i === 0) {
          return h("span", {class: "vt-cell c0", role: "cell"},
            h("a", {href: this.rowHref(item), tabindex: "-1", text}));
        }
        return h("span", {class: `vt-cell c${i}`, role: "cell", title: text, text});
      }));
    }
    row.setAttribute("aria-rowindex", String(index + 2));
    row.style.transform = `translateY(${index * ROW}px)`;
    const changed = this.flashed.get(uid);
    row.classList.toggle("changed", Boolean(changed && now - changed < FLASH_MS));
    if (changed && now - changed >= FLASH_MS) this.flashed.delete(uid);
    return row;
  }

  indexOf(uid) {
    return this.items.findIndex((item) => item.metadata.uid === uid);
  }

  updateTabStop() {
    if (this.active && !this.rows.has(this.active)) this.active = null;
    if (!this.active) {
      const top = Math.floor(this.viewport.scrollTop / ROW);
      const item = this.items[Math.min(top, this.items.length - 1)];
      this.active = item ? item.metadata.uid : null;
    }
    for (const [uid, row] of this.rows) row.tabIndex = uid === this.active ? 0 : -1;
    // With no row to tab to, the table body itself takes the stop.
    this.viewport.tabIndex = this.active && this.rows.has(this.active) ? -1 : 0;
  }

  focusActive() {
    const row = this.active && this.rows.get(this.active);
    if (row) row.focus();
  }

  moveTo(index) {
    if (!this.items.length) return;
    const at = Math.max(0, Math.min(this.items.length - 1, index));
    const top = at * ROW;
    const view = this.viewport;
    if (top < view.scrollTop) view.scrollTop = top;
    else if (top + ROW > view.scrollTop + view.clientHeight) {
      view.scrollTop = top + ROW - view.clientHeight;
    }
    this.active = this.items[at].metadata.uid;
    this.render();
    this.rows.get(this.active)?.focus({preventScroll: true});
  }

  key(event) {
    const index = this.active ? this.indexOf(this.active) : 0;
    const page = Math.max(1, Math.floor(this.viewport.clientHeight / ROW) - 1);
    const moves = {ArrowDown: index + 1, ArrowUp: index - 1, PageDown: index + page,
      PageUp: index - page, Home: 0, End: this.items.length - 1};
    if (event.key in moves) {
      event.preventDefault();
      this.moveTo(moves[event.key]);
    } else if ((event.key === "Enter" || event.key === " ") && event.target.item) {
      event.preventDefault();
      location.hash = this.rowHref(event.target.item);
    }
  }

  click(event) {
    const row = event.target.closest(".vt-row");
    if (!row || !row.item || event.target.closest("a")) return;
    this.active = row.item.metadata.uid;
    location.hash = this.rowHref(row.item);
  }
}
