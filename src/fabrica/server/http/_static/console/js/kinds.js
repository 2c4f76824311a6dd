// The first page: every kind the service serves, what can be done with it, its versions.

import {h, href, markPainted} from "./dom.js";

const VERB_ORDER = ["list", "watch", "get", "create", "update", "patch", "delete", "status"];

export function renderKinds(ctx) {
  const {service, main} = ctx;
  ctx.setTitle("Kinds");
  ctx.setCrumbs([["Kinds", "#/"]]);
  main.append(h("h1", {tabindex: "-1", text: "Kinds"}));
  if (service.description) main.append(h("p", {class: "lead", text: service.description}));
  main.append(h("p", {class: "muted"},
    `${service.kinds.length} kinds · events ${service.events ? "on" : "off"}`,
    service.auth ? " · requests need a bearer token" : ""));
  const rows = service.kinds.map((kind) => h("tr", {},
    h("th", {scope: "row"}, h("a", {href: href("kinds", kind.plural), text: kind.name})),
    h("td", {}, h("code", {text: `/${kind.plural}`})),
    h("td", {}, versionsText(kind)),
    h("td", {class: "verbs", text: VERB_ORDER.filter((v) => kind.verbs.has(v)).join(" ")}),
    h("td", {text: kind.description})));
  main.append(h("table", {class: "grid kinds"},
    h("caption", {class: "sr-only", text: "Kinds served by this service"}),
    h("thead", {}, h("tr", {}, ["Kind", "Collection", "API version", "Verbs", "Description"]
      .map((t) => h("th", {scope: "col", text: t})))),
    h("tbody", {}, rows)));
  markPainted("fabrica:kinds-rendered");
}

function versionsText(kind) {
  if (!kind.versions.length) return kind.apiVersion || "default";
  return kind.versions.map((v) => {
    const notes = [v.name === kind.version ? "used here" : "",
      v.name === kind.defaultVersion ? "default" : "", v.deprecated ? "deprecated" : ""]
      .filter(Boolean);
    return `${v.name}${notes.length ? " (" + notes.join(", ") + ")" : ""}`;
  }).join(", ");
}
