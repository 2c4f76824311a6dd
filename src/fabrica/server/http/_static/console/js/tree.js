// A resource's dependents as a tree (rack → chassis → blades → nodes and BMCs), found the
// generic way: every kind is listed page by page and each resource is filed under the
// owners its metadata.ownerReferences name. The tree starts collapsed with counts, and a
// level's items are built only when it is opened (the first 200, then on request), so a
// rack with eleven thousand dependents opens as fast as one with ten.

import {listAll} from "./api.js";
import {h, href, phaseOf} from "./dom.js";

const LANES = 3; // lists at once (the browser keeps six connections per host)
const SHOWN = 200;
const NAMES = new Intl.Collator("en", {numeric: true}); // c2 before c10

// Map owner uid -> [{uid, name, kind, plural, state}] of every listable kind.
export async function loadDependents(service, {signal, onProgress}) {
  const children = new Map();
  const queue = service.kinds.filter((k) => k.verbs.has("list"));
  let read = 0;
  const lane = async () => {
    for (let kind = queue.shift(); kind; kind = queue.shift()) {
      await listAll(kind, {limit: 1000, signal, onPage: (items) => {
        for (const item of items) file(children, kind, item);
        read += items.length;
        onProgress(read);
      }});
    }
  };
  await Promise.all(Array.from({length: LANES}, lane));
  return children;
}

function file(children, kind, item) {
  const owners = item.metadata.ownerReferences;
  if (!owners || !owners.length) return;
  const node = {uid: item.metadata.uid, name: item.metadata.name, kind: kind.name,
    plural: kind.plural, state: phaseOf(item)};
  for (const owner of owners) {
    const list = children.get(owner.uid);
    if (list) list.push(node);
    else children.set(owner.uid, [node]);
  }
}

// Per-kind counts of all of a resource's dependents, each counted once (cycles stop).
export function countDescendants(children, uid, memo = new Map()) {
  const counts = new Map();
  const seen = new Set([uid]);
  const stack = [...(children.get(uid) || [])];
  while (stack.length) {
    const node = stack.pop();
    if (seen.has(node.uid)) continue;
    seen.add(node.uid);
    counts.set(node.kind, (counts.get(node.kind) || 0) + 1);
    const below = children.get(node.uid);
    if (below) stack.push(...below);
  }
  memo.set(uid, counts);
  return counts;
}

export function countsText(counts) {
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  const parts = [...counts].map(([kind, n]) => `${n.toLocaleString()} ${kind}`);
  return {total, text: parts.join(" · ")};
}

export class DependentsTree {
  constructor(children, rootUid, service) {
    this.children = children;
    this.service = service;
    this.order = new Map(service.kinds.map((k, i) => [k.name, i]));
    this.memo = new Map();
    this.el = h("ul", {class: "tree", role: "tree", "aria-label": "Dependents"});
    this.el.addEventListener("keydown", (e) => this.key(e));
    this.el.addEventListener("click", (e) => this.click(e));
    this.fill(this.el, rootUid, 1);
    const first = this.el.querySelector("[role=treeitem]");
    if (first) first.tabIndex = 0;
  }

  sorted(uid) {
    const list = this.children.get(uid) || [];
    return list.slice().sort((a, b) => (this.order.get(a.kind) ?? 99) -
      (this.order.get(b.kind) ?? 99) || NAMES.compare(a.name, b.name));
  }

  fill(group, uid, level, from = 0) {
    const list = this.sorted(uid);
    const end = Math.min(list.length, from + SHOWN);
    for (let i = from; i < end; i++) group.append(this.item(list[i], level, i, list.length));
    if (end < list.length) {
      const rest = list.length - end;
      const more = h("button", {type: "button", class: "link",
        text: `Show ${Math.min(rest, SHOWN)} more of ${rest.toLocaleString()}`,
        onclick: () => {
          more.parentElement.remove();
          this.fill(group, uid, level, end);
        }});
      group.append(h("li", {role: "none", class: "more"}, more));
    }
  }

  item(node, level, index, size) {
    const counts = this.memo.get(node.uid) || countDescendants(this.children, node.uid);
    this.memo.set(node.uid, counts);
    const {total, text} = countsText(counts);
    const li = h("li", {role: "treeitem", tabindex: "-1", "aria-level": level,
      "aria-setsize": size, "aria-posinset": index + 1, dataset: {uid: node.uid}});
    if (total) li.setAttribute("aria-expanded", "false");
    li.node = node;
    li.level = level;
    li.append(h("div", {class: "node"},
      h("span", {class: "twisty", "aria-hidden": "true", text: total ? "▸" : "·"}),
      h("span", {class: "kind", text: node.kind}),
      h("a", {href: href("kinds", node.plural, node.uid), tabindex: "-1", text: node.name}),
      node.state ? h("span", {class: "state", text: node.state}) : null,
      total ? h("span", {class: "count", text: `${total.toLocaleString()} dependents: ${text}`})
        : null));
    return li;
  }

  toggle(li, open = li.getAttribute("aria-expanded") !== "true") {
    if (!li.hasAttribute("aria-expanded")) return;
    li.setAttribute("aria-expanded", String(open));
    li.querySelector(".twisty").textContent = open ? "▾" : "▸";
    let group = li.querySelector(":scope > ul");
    if (open && !group) {
      group = h("ul", {role: "group"});
      this.fill(group, li.node.uid, li.level + 1);
      li.append(group);
    }
    if (group) group.hidden = !open;
  }

  visible() {
    return [...this.el.querySelectorAll("[role=treeitem]")].filter((li) => !li.closest("[hidden]"));
  }

  focus(li) {
    if (!li) return;
    for (const other of this.el.querySelectorAll("[role=treeitem][tabindex='0']")) {
      other.tabIndex = -1;
    }
    li.tabIndex = 0;
    li.focus();
  }

  key(event) {
    const li = event.target.closest("[role=treeitem]");
    if (!li || event.target !== li) return;
    const items = this.visible();
    const at = items.indexOf(li);
    const expanded = li.getAttribute("aria-expanded") === "true";
    const parent = li.parentElement.closest("[role=treeitem]");
    const actions = {
      ArrowDown: () => this.focus(items[at + 1]),
      ArrowUp: () => this.focus(items[at - 1]),
      Home: () => this.focus(items[0]),
      End: () => this.focus(items[items.length - 1]),
      ArrowRight: () => (expanded ? this.focus(li.querySelector("[role=treeitem]"))
        : this.toggle(li, true)),
      ArrowLeft: () => (expanded ? this.toggle(li, false) : this.focus(parent)),
      " ": () => this.toggle(li),
      Enter: () => {
        location.hash = href("kinds", li.node.plural, li.node.uid);
      },
    };
    if (actions[event.key]) {
      event.preventDefault();
      actions[event.key]();
    }
  }

  click(event) {
    const li = event.target.closest("[role=treeitem]");
    if (!li || event.target.closest("a")) return;
    this.focus(li);
    this.toggle(li);
  }
}
