// A kind's live table: filters (label selector, and field selector when the kind offers
// one), the virtual table, and a status line saying how much is loaded and whether the
// watch is live.

import {h, href, markPainted} from "./dom.js";
import {LiveList} from "./livelist.js";
import {VirtualTable} from "./vtable.js";

export async function renderTable(ctx, kind) {
  const {main, query, signal} = ctx;
  const selectors = {labelSelector: query.get("labelSelector") || "",
    fieldSelector: kind.fieldSelector ? query.get("fieldSelector") || "" : ""};
  ctx.setTitle(kind.plural);
  ctx.setCrumbs([["Kinds", "#/"], [kind.name, href("kinds", kind.plural)]]);
  const actions = h("div", {class: "actions"});
  if (kind.verbs.has("create")) {
    actions.append(h("a", {class: "button", href: href("kinds", kind.plural, "_new"),
      text: `Create ${kind.name}`}));
  }
  main.append(h("div", {class: "title-row"},
    h("h1", {tabindex: "-1"}, kind.name, h("span", {class: "muted", text: ` /${kind.plural}`})),
    actions));
  if (kind.description) main.append(h("p", {class: "lead", text: kind.description}));
  main.append(filters(ctx, kind, selectors));
  const status = h("p", {class: "status", role: "status", "aria-live": "polite"});
  const alert = h("div", {class: "alerts"});
  main.append(status, alert);
  if (!kind.verbs.has("list")) {
    status.textContent = `${kind.name} cannot be listed (the service does not offer it).`;
    return;
  }
  const table = new VirtualTable({label: `${kind.name} resources`,
    rowHref: (item) => href("kinds", kind.plural, item.metadata.uid),
    onNeedMore: () => list.loadMore().catch(showError)});
  signal.addEventListener("abort", () => table.destroy());
  let watchState = kind.verbs.has("watch") ? "connecting" : "not watchable";
  const showStatus = () => {
    const n = list.items ? list.items.length : 0;
    const more = list.hasMore ? ", more as you scroll" : "";
    const live = {live: "live", connecting: "connecting…", reconnecting: "reconnecting…",
      relisting: "listing again…", stopped: "not live"}[watchState] || watchState;
    status.textContent = `${n.toLocaleString()} ${kind.plural} loaded${more} · ${live}`;
    status.dataset.state = watchState;
  };
  function showError(err) {
    if (err.name === "AbortError") return;
    watchState = "stopped";
    if (!list.items || !list.items.length) table.el.hidden = true; // nothing to show in it
    alert.replaceChildren(h("p", {class: "error", role: "alert",
      text: err.describe ? err.describe() : err.message}));
    showStatus();
  }
  const list = new LiveList(kind, selectors, signal, {
    onChange: (changed) => {
      table.setItems(list.items, list.hasMore, changed);
      showEmpty();
      showStatus();
    },
    onState: (state) => {
      watchState = state;
      if (state === "live") alert.replaceChildren();
      showStatus();
    },
    onError: showError,
  });
  const empty = h("p", {class: "empty", hidden: true});
  const showEmpty = () => {
    empty.hidden = list.items.length > 0;
    table.el.hidden = list.items.length === 0;
    empty.textContent = selectors.labelSelector || selectors.fieldSelector
      ? `No ${kind.plural} match the filter.` : `No ${kind.plural} yet.`;
  };
  main.append(table.el, empty);
  showStatus();
  try {
    await list.reset();
    await markPainted("fabrica:table-rendered");
  } catch (err) {
    showError(err);
  }
}

function filters(ctx, kind, selectors) {
  const label = h("input", {id: "label-selector", name: "labelSelector", type: "search",
    value: selectors.labelSelector, placeholder: "env=prod,tier!=db", spellcheck: "false",
    "aria-describedby": "label-selector-help"});
  const fields = [h("div", {class: "field"},
    h("label", {for: "label-selector", text: "Label selector"}), label,
    h("small", {id: "label-selector-help", text: "k=v, k!=v, k in (a,b), k notin (a), k, !k"}))];
  let field = null;
  if (kind.fieldSelector) {
    field = h("input", {id: "field-selector", name: "fieldSelector", type: "search",
      value: selectors.fieldSelector, placeholder: "metadata.name=web-01",
      spellcheck: "false", "aria-describedby": "field-selector-help"});
    fields.push(h("div", {class: "field"},
      h("label", {for: "field-selector", text: "Field selector"}), field,
      h("small", {id: "field-selector-help", text: kind.fieldSelector.description ||
        "f=v, f!=v; comma = and"})));
  }
  const apply = (labelValue, fieldValue) => {
    const query = new URLSearchParams();
    if (labelValue.trim()) query.set("labelSelector", labelValue.trim());
    if (fieldValue && fieldValue.trim()) query.set("fieldSelector", fieldValue.trim());
    const text = query.toString();
    ctx.navigate(href("kinds", kind.plural) + (text ? "?" + text : ""));
  };
  return h("form", {class: "filters", role: "search", "aria-label": `Filter ${kind.plural}`,
    onsubmit: (e) => {
      e.preventDefault();
      apply(label.value, field && field.value);
    }},
  fields,
  h("div", {class: "buttons"},
    h("button", {type: "submit", text: "Apply"}),
    h("button", {type: "button", class: "secondary", text: "Clear",
      onclick: () => apply("", "")})));
}
