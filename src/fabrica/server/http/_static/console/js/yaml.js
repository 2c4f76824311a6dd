// A YAML emitter for JSON values (block style, as kubectl prints resources). Strings that
// YAML would read as something else (numbers, booleans, null, dates, leading indicators,
// ": " or " #" inside) are double-quoted with JSON escapes, which YAML reads back as the
// same string; multi-line strings use a literal block.

const RESERVED = /^(?:~|null|true|false|yes|no|on|off|y|n|=|<<|[-+]?(?:\.inf|\.nan))$/i;
const SEXAGESIMAL = /^[-+]?\d[\d_]*(?::[0-5]?\d)+(?:\.\d*)?$/; // YAML 1.1 reads 1:20 as 80
const NUMBER = /^[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$|^0[xob][\da-f_]+$/i;
const DATE = /^\d{4}-\d\d-\d\d/;
const INDICATOR = /^[-?:,[\]{}#&*!|>'"%@`\s]/;

function needsQuotes(text) {
  return text === "" || RESERVED.test(text) || NUMBER.test(text) || DATE.test(text) ||
    SEXAGESIMAL.test(text) ||
    INDICATOR.test(text) || /\s$/.test(text) || text.includes(": ") || text.includes(" #") ||
    text.endsWith(":") || /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/.test(text);
}

export function scalar(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) return Number.isNaN(value) ? ".nan" : value > 0 ? ".inf" : "-.inf";
    const text = String(value); // 1e+21 needs a dot to read back as a number in YAML 1.1
    return /e/.test(text) && !text.includes(".") ? text.replace("e", ".0e") : text;
  }
  if (typeof value === "boolean") return value ? "true" : "false";
  const text = String(value);
  return needsQuotes(text) ? JSON.stringify(text) : text;
}

function isBlock(value) {
  return value !== null && typeof value === "object" && Object.keys(value).length > 0;
}

function multiline(text, indent) {
  if (typeof text !== "string" || !text.includes("\n") || /[\u0000-\u0009\u000b-\u001f]/.test(text)
      || /^\s/.test(text)) {
    return null;
  }
  const chomp = text.endsWith("\n") ? (text.endsWith("\n\n") ? "+" : "") : "-";
  const body = text.replace(/\n$/, "").split("\n")
    .map((line) => (line ? indent + line : "")).join("\n");
  return `|${chomp}\n${body}`;
}

function inline(value, indent) {
  if (Array.isArray(value) && value.length === 0) return "[]";
  if (value !== null && typeof value === "object" && Object.keys(value).length === 0) return "{}";
  return multiline(value, indent) ?? scalar(value);
}

function emit(value, indent, out) {
  const pad = "  ".repeat(indent);
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isBlock(item) && !Array.isArray(item)) {
        const inner = [];
        emit(item, indent + 1, inner);
        inner[0] = `${pad}- ${inner[0].trimStart()}`;
        out.push(...inner);
      } else if (isBlock(item)) {
        out.push(`${pad}-`);
        emit(item, indent + 1, out);
      } else {
        out.push(`${pad}- ${inline(item, pad + "  ")}`);
      }
    }
    return;
  }
  for (const [key, item] of Object.entries(value)) {
    const name = scalar(key);
    if (isBlock(item)) {
      out.push(`${pad}${name}:`);
      emit(item, Array.isArray(item) ? indent : indent + 1, out);
    } else {
      out.push(`${pad}${name}: ${inline(item, pad + "  ")}`);
    }
  }
}

export function toYaml(value) {
  if (!isBlock(value)) return inline(value, "  ") + "\n";
  const out = [];
  emit(value, 0, out);
  return out.join("\n") + "\n";
}
