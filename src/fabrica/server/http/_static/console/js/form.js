// A form made from a kind's JSON schema (from /openapi.json): one input per field, nested
// objects as fieldsets, each labelled, each with a place for the server's message about it.
// Validation is the server's: the form sends what was typed and shows each of the 400's
// `details` next to the field its path names (the closest enclosing one if no input has
// that exact path), with a summary at the top linking to each.

import {h, uniqueId} from "./dom.js";
import {resolve} from "./openapi.js";

export class SchemaForm {
  constructor(service, specSchema, {initial = {}, create = true} = {}) {
    this.service = service;
    this.widgets = [];
    this.summary = h("div", {class: "error-summary", tabindex: "-1", hidden: true});
    const meta = initial.metadata || {};
    const metadata = h("fieldset", {class: "group"}, h("legend", {text: "Metadata"}));
    if (create) {
      metadata.append(this.text("metadata.name", "name", meta.name || "", {required: true,
        help: "Lower-case letters, digits, '-' and '.'; unique within the kind."}));
    } else {
      metadata.append(h("p", {}, h("strong", {text: "name: "}), meta.name));
    }
    metadata.append(
      this.pairs("metadata.labels", "labels", meta.labels, "One key=value per line."),
      this.pairs("metadata.annotations", "annotations", meta.annotations,
        "One key=value per line."));
    const spec = this.node("spec", "spec", {schema: specSchema}, true, initial.spec, true);
    this.el = h("div", {class: "schema-form"}, this.summary, metadata, spec.el);
    this.readSpec = spec.read;
  }

  // The body to send (an envelope), or throws FormError for what cannot even be sent.
  read() {
    this.clearErrors();
    const problems = [];
    const value = (w) => {
      try {
        return w.read();
      } catch (err) {
        problems.push({field: w.path, message: err.message});
        return undefined;
      }
    };
    const byPath = Object.fromEntries(this.widgets.filter((w) => w.path.startsWith("metadata."))
      .map((w) => [w.path, value(w)]));
    let spec;
    try {
      spec = this.readSpec() ?? {};
    } catch (err) {
      problems.push(...(err.problems || [{field: "spec", message: err.message}]));
    }
    if (problems.length) {
      this.showErrors(problems, "The form has fields that cannot be read");
      throw new Error("invalid form");
    }
    const metadata = {labels: byPath["metadata.labels"] || {},
      annotations: byPath["metadata.annotations"] || {}};
    if ("metadata.name" in byPath) metadata.name = byPath["metadata.name"] || "";
    return {metadata, spec};
  }

  clearErrors() {
    this.summary.hidden = true;
    this.summary.replaceChildren();
    for (const w of this.widgets) {
      w.error.hidden = true;
      w.error.textContent = "";
      w.input?.removeAttribute("aria-invalid");
    }
  }

  // Each detail next to its field; those that match no field only in the summary.
  showErrors(details, title = "The service refused these values") {
    this.clearErrors();
    const items = [];
    for (const detail of details) {
      const widget = this.widgetFor(String(detail.field || ""));
      const text = `${detail.field}: ${detail.message}`;
      if (widget) {
        widget.error.hidden = false;
        widget.error.textContent = widget.error.textContent
          ? `${widget.error.textContent}; ${text}` : text;
        widget.input?.setAttribute("aria-invalid", "true");
        items.push(h("li", {}, h("a", {href: "#", text, onclick: (e) => {
          e.preventDefault();
          (widget.input || widget.el).focus();
        }})));
      } else {
        items.push(h("li", {text}));
      }
    }
    this.summary.append(h("h2", {text: title}), h("ul", {}, items));
    this.summary.hidden = false;
    this.summary.focus();
  }

  widgetFor(path) {
    const parts = path.split(".");
    for (let n = parts.length; n > 0; n--) {
      const prefix = parts.slice(0, n).join(".");
      const widget = this.widgets.find((w) => w.path === prefix);
      if (widget) return widget;
    }
    return null;
  }

  register(path, el, input, error) {
    const widget = {path, el, input, error, read: () => undefined};
    this.widgets.push(widget);
    el.dataset.path = path;
    return widget;
  }

  shell(path, name, {required = false, help = "", schema = {}} = {}) {
    const id = uniqueId("f");
    const hints = [help || schema.description || "", constraints(schema)].filter(Boolean)
      .join(" ");
    const helpEl = hints ? h("small", {id: `${id}-help`, text: hints}) : null;
    const error = h("p", {id: `${id}-error`, class: "field-error", hidden: true});
    const label = h("label", {for: id}, name, required ? h("span", {class: "req",
      text: " (required)"}) : null);
    const described = [helpEl ? `${id}-help` : "", `${id}-error`].filter(Boolean).join(" ");
    return {id, label, helpEl, error, described};
  }

  text(path, name, value, options) {
    const s = this.shell(path, name, options);
    const input = h("input", {id: s.id, type: "text", value: value ?? "", spellcheck: "false",
      "aria-describedby": s.described, "aria-required": options.required ? "true" : null});
    const el = h("div", {class: "field"}, s.label, input, s.helpEl, s.error);
    const widget = this.register(path, el, input, s.error);
    widget.read = () => input.value;
    return el;
  }

  pairs(path, name, map, help) {
    const s = this.shell(path, name, {help});
    const input = h("textarea", {id: s.id, rows: 2, spellcheck: "false",
      "aria-describedby": s.described});
    input.value = Object.entries(map || {}).map(([k, v]) => `${k}=${v}`).join("\n");
    const el = h("div", {class: "field"}, s.label, input, s.helpEl, s.error);
    const widget = this.register(path, el, input, s.error);
    widget.read = () => parsePairs(input.value);
    return el;
  }

  // A field for `schema` at `path`: {el, read() -> value or undefined (left out)}.
  node(path, name, raw, required, value, root = false) {
    const {schema, nullable} = resolve(raw.schema, this.service.schemas);
    const type = schema.type;
    if (type === "object" && schema.properties) return this.object(path, name, schema, required, value, root);
    if (type === "object" && !schema.properties &&
        isStringMap(resolve(schema.additionalProperties, this.service.schemas).schema)) {
      const el = this.pairs(path, name, value, schema.description || "One key=value per line.");
      const widget = this.widgets[this.widgets.length - 1];
      const read = widget.read;
      widget.read = () => {
        const got = read();
        return Object.keys(got).length || required ? got : undefined;
      };
      return {el, read: () => widget.read()};
    }
    if (["string", "integer", "number", "boolean"].includes(type)) {
      return this.scalar(path, name, schema, required, value, nullable);
    }
    if (type === "array" && ["string", "integer", "number"].includes(
      resolve(schema.items, this.service.schemas).schema.type)) {
      return this.list(path, name, schema, required, value);
    }
    return this.json(path, name, schema, required, value);
  }

  object(path, name, schema, required, value, root) {
    const needed = new Set(schema.required || []);
    const el = h("fieldset", {class: root ? "group" : "nested"},
      h("legend", {text: name}));
    const error = h("p", {class: "field-error", hidden: true});
    el.append(error);
    if (schema.description && !root) el.append(h("small", {text: schema.description}));
    const parts = Object.entries(schema.properties).map(([key, sub]) => {
      const child = this.node(`${path}.${key}`, key, {schema: sub}, needed.has(key),
        value ? value[key] : undefined);
      el.append(child.el);
      return [key, child];
    });
    const widget = this.register(path, el, null, error);
    widget.read = () => {
      const result = {};
      const problems = [];
      for (const [key, child] of parts) {
        try {
          const got = child.read();
          if (got !== undefined) result[key] = got;
        } catch (err) {
          problems.push(...(err.problems || [{field: `${path}.${key}`, message: err.message}]));
        }
      }
      if (problems.length) throw Object.assign(new Error("invalid"), {problems});
      return Object.keys(result).length || required || root ? result : undefined;
    };
    return {el, read: widget.read};
  }

  scalar(path, name, schema, required, value, nullable) {
    const s = this.shell(path, name, {required, schema});
    const initial = value === undefined ? schema.default : value;
    let input;
    if (schema.type === "boolean") {
      input = h("input", {id: s.id, type: "checkbox", "aria-describedby": s.described});
      input.checked = Boolean(initial);
      const el = h("div", {class: "field check"}, input, s.label, s.helpEl, s.error);
      const widget = this.register(path, el, input, s.error);
      widget.read = () => input.checked;
      return {el, read: widget.read};
    }
    if (Array.isArray(schema.enum)) {
      input = h("select", {id: s.id, "aria-describedby": s.described,
        "aria-required": required ? "true" : null},
      required && initial !== undefined ? null : h("option", {value: "", text: "(not set)"}),
      schema.enum.filter((v) => v !== null).map((v) => h("option", {value: String(v),
        text: String(v), selected: v === initial})));
    } else {
      const numeric = schema.type === "integer" || schema.type === "number";
      input = h("input", {id: s.id, type: "text", spellcheck: "false",
        inputmode: numeric ? (schema.type === "integer" ? "numeric" : "decimal") : null,
        value: initial === undefined || initial === null ? "" : String(initial),
        "aria-describedby": s.described, "aria-required": required ? "true" : null});
    }
    const el = h("div", {class: "field"}, s.label, input, s.helpEl, s.error);
    const widget = this.register(path, el, input, s.error);
    widget.read = () => {
      const text = input.value;
      if (text === "") {
        if (nullable && value === null) return null;
        return required && schema.type === "string" ? "" : undefined;
      }
      if (schema.type === "integer" || schema.type === "number") {
        const number = Number(text.trim());
        return text.trim() !== "" && Number.isFinite(number) ? number : text; // the server says why
      }
      return text;
    };
    return {el, read: widget.read};
  }

  list(path, name, schema, required, value) {
    const s = this.shell(path, name, {required, schema,
      help: `${schema.description ? schema.description + " " : ""}One item per line.`});
    const input = h("textarea", {id: s.id, rows: 3, spellcheck: "false",
      "aria-describedby": s.described});
    input.value = (value ?? schema.default ?? []).join("\n");
    const numeric = ["integer", "number"].includes(
      resolve(schema.items, this.service.schemas).schema.type);
    const el = h("div", {class: "field"}, s.label, input, s.helpEl, s.error);
    const widget = this.register(path, el, input, s.error);
    widget.read = () => {
      const items = input.value.split("\n").map((x) => x.trim()).filter(Boolean)
        .map((x) => (numeric && Number.isFinite(Number(x)) ? Number(x) : x));
      return items.length || required || value !== undefined ? items : undefined;
    };
    return {el, read: widget.read};
  }

  json(path, name, schema, required, value) {
    const s = this.shell(path, name, {required, schema,
      help: `${schema.description ? schema.description + " " : ""}As JSON.`});
    const input = h("textarea", {id: s.id, rows: 4, class: "code", spellcheck: "false",
      "aria-describedby": s.described});
    const initial = value === undefined ? schema.default : value;
    input.value = initial === undefined ? "" : JSON.stringify(initial, null, 2);
    const el = h("div", {class: "field"}, s.label, input, s.helpEl, s.error);
    const widget = this.register(path, el, input, s.error);
    widget.read = () => {
      if (!input.value.trim()) return undefined;
      try {
        return JSON.parse(input.value);
      } catch (err) {
        throw new Error(`not valid JSON (${err.message})`);
      }
    };
    return {el, read: widget.read};
  }
}

function isStringMap(schema) {
  return schema === true || schema === undefined ||
    ["string", "integer", "number", "boolean"].includes(schema.type);
}

function parsePairs(text) {
  const result = {};
  for (const line of text.split("\n")) {
    const trimmed = line.trim();
    if (!trimmed) continue;
    const at = trimmed.indexOf("=");
    if (at < 0) result[trimmed] = "";
    else result[trimmed.slice(0, at).trim()] = trimmed.slice(at + 1).trim();
  }
  return result;
}

function constraints(schema) {
  const parts = [];
  if (schema.minimum !== undefined || schema.maximum !== undefined) {
    parts.push(`From ${schema.minimum ?? "−∞"} to ${schema.maximum ?? "∞"}.`);
  }
  if (schema.exclusiveMinimum !== undefined) parts.push(`More than ${schema.exclusiveMinimum}.`);
  if (schema.exclusiveMaximum !== undefined) parts.push(`Less than ${schema.exclusiveMaximum}.`);
  const chars = (n) => `${n} character${n === 1 ? "" : "s"}`;
  if (schema.minLength) parts.push(`At least ${chars(schema.minLength)}.`);
  if (schema.maxLength !== undefined) parts.push(`At most ${chars(schema.maxLength)}.`);
  if (Array.isArray(schema.enum)) parts.push(`One of ${schema.enum.join(", ")}.`);
  if (schema.default !== undefined && schema.default !== null && typeof schema.default !== "object"
      && schema.default !== "") parts.push(`Default ${schema.default}.`);
  return parts.join(" ");
}
