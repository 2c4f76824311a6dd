// Create and edit pages. Create POSTs an envelope made from the schema form. Edit PUTs the
// new spec (and labels, annotations) with If-Match: the version the form was filled from,
// so a change made meanwhile by anyone else is never overwritten unseen: the 412 says so,
// shows the newer version, and lets the user start again from it or keep their edits.

import {ApiError, request, resourceUrl} from "./api.js";
import {h, href} from "./dom.js";
import {partSchemas} from "./openapi.js";
import {SchemaForm} from "./form.js";
import {toYaml} from "./yaml.js";

function page(ctx, kind, title, crumb) {
  ctx.setTitle(title);
  ctx.setCrumbs([["Kinds", "#/"], [kind.name, href("kinds", kind.plural)], ...crumb]);
  ctx.main.append(h("h1", {tabindex: "-1", text: title}));
  const alerts = h("div", {class: "alerts", id: "form-alerts"});
  ctx.main.append(alerts);
  return alerts;
}

function failure(alerts, form, err) {
  if (err.message === "invalid form") return; // shown next to the fields already
  if (!(err instanceof ApiError)) throw err;
  if (err.details.length) {
    form.showErrors(err.details, err.describe()); // the summary says it, at the fields too
    return;
  }
  const text = err.status === 403 ? `Refused: ${err.describe()}` : err.describe();
  alerts.replaceChildren(h("p", {class: "error", role: "alert", text}));
}

function buttons(saveText, cancelHref) {
  const save = h("button", {type: "submit", text: saveText});
  return {save, el: h("div", {class: "buttons"}, save,
    h("a", {class: "button secondary", href: cancelHref, text: "Cancel"}))};
}

export function renderCreate(ctx, kind) {
  const alerts = page(ctx, kind, `Create ${kind.name}`,
    [["Create", href("kinds", kind.plural, "_new")]]);
  if (!kind.verbs.has("create")) {
    alerts.append(h("p", {class: "error", text: `${kind.name} cannot be created here.`}));
    return;
  }
  const form = new SchemaForm(ctx.service, partSchemas(kind, ctx.service).spec, {create: true});
  const {save, el} = buttons(`Create ${kind.name}`, href("kinds", kind.plural));
  ctx.main.append(h("form", {class: "editor", novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    alerts.replaceChildren();
    save.disabled = true;
    try {
      const {data} = await request("POST", `/${kind.plural}`, {kind, body: form.read()});
      ctx.setFlash(`Created ${kind.name} ${data.metadata.name}.`);
      ctx.navigate(href("kinds", kind.plural, data.metadata.uid));
    } catch (err) {
      failure(alerts, form, err);
    } finally {
      save.disabled = false;
    }
  }}, form.el, el));
}

export async function renderEdit(ctx, kind, id) {
  const alerts = page(ctx, kind, `Edit ${kind.name} ${id}`,
    [[id, href("kinds", kind.plural, id)], ["Edit", href("kinds", kind.plural, id, "edit")]]);
  const {data: obj} = await request("GET", resourceUrl(kind, id), {kind, signal: ctx.signal});
  let version = obj.metadata.resourceVersion;
  const holder = h("div");
  const versionNote = h("p", {class: "muted"});
  const conflict = h("div", {class: "conflict", hidden: true});
  let form;
  const fill = (resource) => {
    version = resource.metadata.resourceVersion;
    versionNote.textContent = `Editing resourceVersion ${version}. Saving sends If-Match: ` +
      `"${version}", so a change made since then is not overwritten.`;
    form = new SchemaForm(ctx.service, partSchemas(kind, ctx.service).spec,
      {initial: resource, create: false});
    holder.replaceChildren(form.el);
  };
  fill(obj);
  const back = href("kinds", kind.plural, obj.metadata.uid);
  const {save, el} = buttons("Save", back);
  ctx.main.append(versionNote, conflict, h("form", {class: "editor", novalidate: true,
    onsubmit: async (e) => {
      e.preventDefault();
      alerts.replaceChildren();
      save.disabled = true;
      try {
        const body = form.read();
        body.metadata.name = obj.metadata.name;
        await request("PUT", resourceUrl(kind, obj.metadata.uid), {kind, body, ifMatch: version});
        ctx.setFlash(`Saved ${kind.name} ${obj.metadata.name}.`);
        ctx.navigate(back);
      } catch (err) {
        if (err instanceof ApiError && err.status === 412) await stale(ctx, kind, obj, conflict, fill, (rv) => {
          version = rv;
          versionNote.textContent = `Your edits will replace resourceVersion ${rv} ` +
            `(If-Match: "${rv}").`;
        }, err);
        else failure(alerts, form, err);
      } finally {
        save.disabled = false;
      }
    }}, holder, el));
}

// The 412: say so, show the newer version, offer both ways on.
async function stale(ctx, kind, obj, box, fill, keep, err) {
  let newer;
  try {
    ({data: newer} = await request("GET", resourceUrl(kind, obj.metadata.uid), {kind}));
  } catch (again) {
    box.hidden = false;
    box.replaceChildren(h("p", {class: "error", role: "alert",
      text: `Not saved: ${err.describe()} Reading the newer version failed too: ` +
        `${again.describe ? again.describe() : again.message}`}));
    return;
  }
  const rv = newer.metadata.resourceVersion;
  box.hidden = false;
  box.replaceChildren(
    h("h2", {text: "This resource changed since you opened it"}),
    h("p", {class: "error", role: "alert", text: `Not saved (${err.describe()}) ` +
      `${kind.name} ${obj.metadata.name} is now at resourceVersion ${rv}; your edits were ` +
      "made to an older version. The newer version is below."}),
    changes(obj, newer),
    h("details", {open: true}, h("summary", {text: `Newer version (resourceVersion ${rv})`}),
      h("pre", {class: "yaml newer", tabindex: "0", text: toYaml(newer)})),
    h("div", {class: "buttons"},
      h("button", {type: "button", text: "Start again from the newer version", onclick: () => {
        box.hidden = true;
        fill(newer);
      }}),
      h("button", {type: "button", class: "secondary",
        text: "Keep my edits (Save will replace the newer version)", onclick: () => {
          box.hidden = true;
          keep(rv);
        }})));
  box.querySelector("h2").setAttribute("tabindex", "-1");
  box.querySelector("h2").focus();
}

// What someone else changed between the version the form was filled from and the newer one.
function changes(old, newer) {
  const before = leaves({spec: old.spec, labels: old.metadata.labels,
    annotations: old.metadata.annotations});
  const after = leaves({spec: newer.spec, labels: newer.metadata.labels,
    annotations: newer.metadata.annotations});
  const paths = [...new Set([...before.keys(), ...after.keys()])].filter(
    (p) => before.get(p) !== after.get(p));
  if (!paths.length) {
    return h("p", {text: "Its spec, labels and annotations are as you opened them (its " +
      "status or metadata changed)."});
  }
  return h("div", {}, h("p", {text: "Changed since you opened it:"}), h("ul", {class: "diff"},
    paths.map((p) => h("li", {}, h("code", {text: p}), `: ${before.get(p) ?? "(none)"} → ` +
      `${after.get(p) ?? "(none)"}`))));
}

function leaves(value, prefix = "", out = new Map()) {
  if (value !== null && typeof value === "object" && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) leaves(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out.set(prefix, JSON.stringify(value ?? null));
  }
  return out;
}
