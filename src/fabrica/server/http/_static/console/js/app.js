// The console's shell: reads the service from /openapi.json, draws the header (with the
// token field when the service needs one), and routes `#/...` to a page. Each page gets
// an AbortSignal that ends its requests and streams when the user goes elsewhere.

import {token} from "./api.js";
import {clear, h} from "./dom.js";
import {feed} from "./events.js";
import {renderCreate, renderEdit} from "./editor.js";
import {renderKinds} from "./kinds.js";
import {loadService} from "./openapi.js";
import {renderResource} from "./resource.js";
import {renderTable} from "./table.js";

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
let service = null;
let current = null;
let flash = null;
let routed = 0; // pages shown: the first starts at the top of the document, as a load does

const routes = [
  [/^$/, (ctx) => renderKinds(ctx)],
  [/^kinds\/([^/]+)$/, (ctx, plural) => renderTable(ctx, kindOf(plural))],
  [/^kinds\/([^/]+)\/_new$/, (ctx, plural) => renderCreate(ctx, kindOf(plural))],
  [/^kinds\/([^/]+)\/([^/]+)\/edit$/, (ctx, plural, id) => renderEdit(ctx, kindOf(plural), id)],
  [/^kinds\/([^/]+)\/([^/]+)$/, (ctx, plural, id) => renderResource(ctx, kindOf(plural), id)],
];

function kindOf(plural) {
  const kind = service.byPlural.get(plural);
  if (!kind) throw new Error(`this service has no collection /${plural}`);
  return kind;
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

export function setFlash(message) {
  flash = message;
}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return {rawPath: path, query: new URLSearchParams(query)};
}

function setCrumbs(items) {
  clear(crumbs);
  const list = h("ol");
  items.forEach(([text, link], i) => {
    const last = i === items.length - 1;
    list.append(h("li", {}, last ? h("span", {"aria-current": "page", text})
      : h("a", {href: link, text})));
  });
  crumbs.append(list);
}

async function route() {
  if (current) current.abort();
  current = new AbortController();
  const {rawPath, query} = parseHash();
  clear(main);
  main.dataset.route = rawPath;
  main.dataset.ready = "false"; // "true" once the page has drawn what it loads first
  const message = flash;
  flash = null;
  if (message) main.append(h("p", {class: "notice success", role: "status", text: message}));
  const ctx = {service, main, signal: current.signal, query, navigate, setFlash, setCrumbs,
    setTitle: (text) => {
      document.title = `${text} · ${service.title} console`;
    }};
  try {
    for (const [pattern, page] of routes) {
      const match = pattern.exec(rawPath);
      if (match) {
        await page(ctx, ...match.slice(1).map(decodeURIComponent));
        return;
      }
    }
    throw new Error(`no page at #/${rawPath}`);
  } catch (err) {
    if (err.name === "AbortError") return;
    main.append(h("h1", {tabindex: "-1", text: "Not available"}),
      h("p", {class: "error", role: "alert", text: err.describe ? err.describe() : err.message}),
      h("p", {}, h("a", {href: "#/", text: "Back to the kinds"})));
  } finally {
    if (!ctx.signal.aborted) main.dataset.ready = "true";
    focusHeading();
  }
}

function focusHeading() {
  // A new page in the same document: put the keyboard at its heading.
  routed += 1;
  if (routed === 1) return;
  const heading = main.querySelector("h1");
  if (heading && !main.contains(document.activeElement)) heading.focus({preventScroll: true});
}

function tokenForm() {
  const input = h("input", {id: "token", type: "password", autocomplete: "off",
    spellcheck: "false", placeholder: "paste a JWT", value: token.get()});
  const who = h("span", {id: "token-who", class: "who", "aria-live": "polite"});
  const show = () => {
    const claims = token.claims();
    const roles = claims ? [claims.scope, claims.roles].flat().filter(Boolean).join(" ") : "";
    who.textContent = !token.get() ? "no token"
      : claims ? `as ${claims.sub || "?"}${roles ? " (" + roles + ")" : ""}` : "token set";
  };
  show();
  const save = (value) => {
    token.set(value.trim());
    input.value = token.get();
    show();
    feed.stop(); // the event stream reconnects with the new token when a page asks
    route();
  };
  return h("form", {class: "token", onsubmit: (e) => {
    e.preventDefault();
    save(input.value);
  }},
  h("label", {for: "token", text: "Bearer token"}), input,
  h("button", {type: "submit", text: "Use token"}),
  h("button", {type: "button", class: "secondary", text: "Clear",
    onclick: () => save("")}), who);
}

function fromPath() {
  // A deep link as a path (/ui/kinds/racks/rack-01) becomes the route #/kinds/racks/rack-01.
  const rest = location.pathname.replace(/^\/ui\/?/, "");
  if (rest && rest !== "index.html" && !location.hash) {
    history.replaceState(null, "", `/ui/#/${rest}${location.search}`);
  }
}

async function start() {
  fromPath();
  document.querySelector(".skip").addEventListener("click", (e) => {
    e.preventDefault(); // the hash holds the route
    main.focus();
  });
  try {
    service = await loadService();
  } catch (err) {
    main.append(h("h1", {text: "Console"}),
      h("p", {class: "error", role: "alert", text: `Cannot read the service: ${err.message}`}));
    return;
  }
  document.getElementById("service").textContent = service.title;
  if (service.auth) document.getElementById("auth").append(tokenForm());
  window.addEventListener("hashchange", route);
  await route();
}

start();
