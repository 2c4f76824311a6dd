// One resource: its metadata and owner, spec, status and conditions, the tree of its
// dependents, its recent events, its YAML; Edit and Delete (with a confirmation).

import {request, resourceUrl} from "./api.js";
import {age, h, href, labelsText, markPainted, phaseOf, timeText} from "./dom.js";
import {feed} from "./events.js";
import {countDescendants, countsText, DependentsTree, loadDependents} from "./tree.js";
import {toYaml} from "./yaml.js";

export async function renderResource(ctx, kind, id) {
  const {main, signal} = ctx;
  performance.mark("fabrica:resource-start");
  ctx.setTitle(`${kind.name} ${id}`);
  const heading = h("h1", {tabindex: "-1"}, h("span", {class: "muted", text: `${kind.name} `}), id);
  const actions = h("div", {class: "actions"});
  main.append(h("div", {class: "title-row"}, heading, actions));
  const {data: obj} = await request("GET", resourceUrl(kind, id), {kind, signal});
  const meta = obj.metadata;
  ctx.setCrumbs([["Kinds", "#/"], [kind.name, href("kinds", kind.plural)],
    [meta.name, href("kinds", kind.plural, meta.uid)]]);
  heading.lastChild.textContent = meta.name;
  ctx.setTitle(`${kind.name} ${meta.name}`);
  const actionMessage = h("div", {class: "alerts", id: "action-message"});
  if (kind.verbs.has("update")) {
    actions.append(h("a", {class: "button", href: href("kinds", kind.plural, meta.uid, "edit"),
      text: "Edit"}));
  }
  const found = {total: null, text: ""}; // dependents, once counted
  if (kind.verbs.has("delete")) {
    actions.append(h("button", {type: "button", class: "danger", text: "Delete",
      onclick: () => confirmDelete(ctx, kind, obj, actionMessage, found)}));
  }
  const status = {...(obj.status || {})};
  const conditions = status.conditions || [];
  delete status.conditions;
  const toc = [["summary", "Summary"], ["spec", "Spec"], ["status", "Status"],
    ["conditions", "Conditions"], ["dependents", "Dependents"], ["events", "Events"],
    ["yaml", "YAML"]];
  const dependents = h("div", {class: "dependents"},
    h("p", {class: "status", role: "status", text: "Finding dependents…"}));
  const events = h("div", {class: "events"});
  main.append(actionMessage,
    h("nav", {class: "toc", "aria-label": "Sections"}, h("ul", {}, toc.map(([to, text]) =>
      h("li", {}, h("a", {href: `#${to}`, text, onclick: (e) => jump(e, to)}))))),
    h("div", {class: "columns"},
      h("div", {},
        section("summary", "Summary", summary(ctx, obj)),
        section("spec", "Spec", fields(obj.spec)),
        section("status", "Status", fields(status)),
        section("conditions", "Conditions", conditionsTable(conditions))),
      h("div", {},
        section("dependents", "Dependents", dependents),
        section("events", "Recent events", events))),
    section("yaml", "YAML", h("pre", {class: "yaml", tabindex: "0", "aria-label": "YAML",
      text: toYaml(obj)})));
  showEvents(ctx, events, meta.uid);
  await showDependents(ctx, dependents, meta.uid, found);
}

function jump(event, id) {
  // In-page links without touching the route (the hash holds it).
  event.preventDefault();
  const target = document.getElementById(`section-${id}`);
  target.scrollIntoView();
  target.querySelector("h2").focus();
}

function section(id, title, ...content) {
  return h("section", {id: `section-${id}`, "aria-labelledby": `heading-${id}`},
    h("h2", {id: `heading-${id}`, tabindex: "-1", text: title}), content);
}

function summary(ctx, obj) {
  const meta = obj.metadata;
  const owners = (meta.ownerReferences || []).map((ref) => {
    const kind = ctx.service.byName.get(ref.kind);
    const text = `${ref.kind} ${ref.name}`;
    return h("li", {}, kind ? h("a", {href: href("kinds", kind.plural, ref.uid), text}) : text,
      ref.controller ? h("span", {class: "muted", text: " (controller)"}) : null);
  });
  const rows = [
    ["Name", meta.name], ["UID", h("code", {text: meta.uid})],
    ["State", phaseOf(obj) || "—"],
    ["Owner", owners.length ? h("ul", {class: "plain"}, owners) : "none"],
    ["Labels", chips(meta.labels)], ["Annotations", chips(meta.annotations)],
    ["Created", `${timeText(meta.createdAt)} (${age(meta.createdAt)} ago)`],
    ["Updated", timeText(meta.updatedAt)],
    ["Resource version", meta.resourceVersion], ["Generation", String(meta.generation)],
    ["API version", `${obj.apiVersion}${obj.schemaVersion && obj.schemaVersion !== obj.apiVersion
      ? ", schema " + obj.schemaVersion : ""}`],
  ];
  if ((meta.finalizers || []).length) rows.push(["Finalizers", meta.finalizers.join(", ")]);
  if (meta.deletionTimestamp) rows.push(["Deleting since", timeText(meta.deletionTimestamp)]);
  return h("dl", {class: "pairs"}, rows.map(([k, v]) => [h("dt", {text: k}), h("dd", {}, v)]));
}

function chips(map) {
  const entries = Object.entries(map || {});
  if (!entries.length) return "none";
  return h("ul", {class: "chips", "aria-label": labelsText(map)},
    entries.map(([k, v]) => h("li", {text: v === "" ? k : `${k}=${v}`})));
}

// Nested key/value lists; lists of scalars inline, other lists item by item.
export function fields(value) {
  if (value === null || value === undefined || typeof value !== "object") {
    return h("span", {class: "value", text: value === null ? "null" : String(value)});
  }
  const entries = Object.entries(value);
  if (!entries.length) return h("p", {class: "muted", text: "empty"});
  return h("dl", {class: "pairs"}, entries.map(([k, v]) => [h("dt", {text: k}),
    h("dd", {}, shown(v))]));
}

const INLINE = 8; // scalars of a list shown before the rest folds away

function shown(v) {
  if (Array.isArray(v)) {
    if (!v.length) return h("span", {class: "muted", text: "[]"});
    if (v.every((x) => x === null || typeof x !== "object")) {
      if (v.length <= INLINE) return v.join(", ");
      return h("details", {}, h("summary", {text: `${v.slice(0, 3).join(", ")}, … ` +
        `(${v.length} items)`}), v.join(", "));
    }
    return h("ol", {class: "items"}, v.map((x) => h("li", {}, fields(x))));
  }
  if (v !== null && typeof v === "object") return fields(v);
  if (v === null) return h("span", {class: "muted", text: "null"});
  return v === "" ? h("span", {class: "muted", text: '""'}) : String(v);
}

function conditionsTable(conditions) {
  if (!conditions.length) return h("p", {class: "muted", text: "No conditions."});
  const cols = ["Type", "Status", "Reason", "Message", "Last transition", "Observed generation"];
  return h("table", {class: "grid"},
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", {scope: "col", text: c})))),
    h("tbody", {}, conditions.map((c) => h("tr", {},
      h("th", {scope: "row", text: c.type}),
      h("td", {}, h("span", {class: `pill ${String(c.status).toLowerCase()}`, text: c.status})),
      h("td", {text: c.reason || ""}), h("td", {text: c.message || ""}),
      h("td", {text: timeText(c.lastTransitionTime)}),
      h("td", {text: c.observedGeneration ?? ""})))));
}

async function showDependents(ctx, box, uid, found) {
  const progress = box.firstChild;
  let children;
  try {
    children = await loadDependents(ctx.service, {signal: ctx.signal, onProgress: (n) => {
      progress.textContent = `Finding dependents… ${n.toLocaleString()} resources read`;
    }});
  } catch (err) {
    if (err.name === "AbortError") return;
    progress.replaceWith(h("p", {class: "error", role: "alert",
      text: `Cannot list dependents: ${err.describe ? err.describe() : err.message}`}));
    return;
  }
  performance.mark("fabrica:dependents-listed");
  const {total, text} = countsText(countDescendants(children, uid));
  Object.assign(found, {total, text});
  if (!total) {
    progress.textContent = "No dependents: no resource names this one as its owner.";
  } else {
    progress.textContent = `${total.toLocaleString()} dependents: ${text}. ` +
      "Arrows move, Right and Left open and close, Enter opens a resource.";
    box.append(new DependentsTree(children, uid, ctx.service).el);
  }
  await markPainted("fabrica:tree-rendered");
  box.dataset.ready = "true";
}

function showEvents(ctx, box, uid) {
  if (!ctx.service.events) {
    box.append(h("p", {class: "muted", text: "Events are off for this service (it runs " +
      "without --events), so there is no event history to show."}));
    return;
  }
  feed.start();
  const note = h("p", {class: "muted"});
  const list = h("ol", {class: "event-list", "aria-label": "Events, newest first"});
  const draw = () => {
    const since = feed.since ? feed.since.toLocaleTimeString() : "";
    note.textContent = feed.state === "refused" ? ""
      : `Events received since this console opened (${since}); the service does not ` +
        "replay older ones." + (feed.state === "reconnecting" ? " Reconnecting…" : "");
    const error = feed.state === "refused" && feed.error;
    const events = feed.forResource(uid);
    list.replaceChildren(...(error ? [h("li", {class: "error", role: "alert",
      text: `Cannot read events: ${error.describe()}`})] : []),
    ...events.slice().reverse().map(eventItem));
    if (!events.length && !error) list.append(h("li", {class: "muted", text: "None yet."}));
  };
  draw();
  const stop = feed.subscribe((event) => {
    if (!event || event.resourceuid === uid || (event.data && event.data.resourceUID === uid)) {
      draw();
    }
  });
  ctx.signal.addEventListener("abort", stop);
  box.append(note, list);
}

function eventItem(event) {
  const data = event.data || {};
  const update = data.metadata && data.metadata.updateType;
  return h("li", {},
    h("time", {datetime: event.time, text: timeText(event.time)}), " ",
    h("code", {text: event.type}),
    update ? h("span", {class: "muted", text: ` (${update})`}) : null,
    event.actor ? h("span", {class: "muted", text: ` by ${event.actor}`}) : null);
}

function confirmDelete(ctx, kind, obj, message, found) {
  const meta = obj.metadata;
  const error = h("p", {class: "error", role: "alert", hidden: true});
  const dialog = h("dialog", {class: "confirm", "aria-labelledby": "delete-title",
    "aria-describedby": "delete-text"},
  h("h2", {id: "delete-title", text: `Delete ${kind.name} ${meta.name}?`}),
  h("p", {id: "delete-text", text: "This cannot be undone. " + (found.total === null
    ? "Resources it owns are deleted with it."
    : found.total ? `It owns ${found.total.toLocaleString()} resources (${found.text}), ` +
      "which are deleted with it." : "It owns no other resource.")}),
  error,
  h("form", {method: "dialog", class: "buttons"},
    h("button", {type: "button", class: "danger", text: "Delete", onclick: async (e) => {
      e.target.disabled = true;
      try {
        await request("DELETE", resourceUrl(kind, meta.uid), {kind});
      } catch (err) {
        error.hidden = false;
        error.textContent = `Not deleted. ${err.describe ? err.describe() : err.message}`;
        message.replaceChildren(h("p", {class: "error", text: error.textContent}));
        e.target.disabled = false;
        return;
      }
      dialog.close();
      ctx.setFlash(`Deleted ${kind.name} ${meta.name}.`);
      ctx.navigate(href("kinds", kind.plural));
    }}),
    h("button", {value: "cancel", class: "secondary", autofocus: true, text: "Cancel"})));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}
