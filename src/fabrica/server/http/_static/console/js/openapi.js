// What the console knows about the service, read from /openapi.json alone: the kinds (each
// collection path with its verbs), their JSON schemas, the API versions each serves and
// which are deprecated, whether lists take a field selector, whether /events exists and
// whether a bearer token is needed.

const VERSIONED = /^application\/json;\s*version=(\S+)$/;

export async function loadService() {
  const response = await fetch("/openapi.json", {cache: "no-store"});
  if (!response.ok) throw new Error(`GET /openapi.json answered ${response.status}`);
  return describe(await response.json());
}

export function describe(doc) {
  const schemas = (doc.components && doc.components.schemas) || {};
  const tags = Object.fromEntries((doc.tags || []).map((t) => [t.name, t.description || ""]));
  const kinds = [];
  for (const [path, item] of Object.entries(doc.paths || {})) {
    const match = /^\/([^/{}]+)$/.exec(path);
    const one = doc.paths[`${path}/{id}`];
    if (!match || !one) continue;
    kinds.push(kindOf(match[1], item, one, doc.paths[`${path}/{id}/status`], schemas, tags));
  }
  kinds.sort((a, b) => a.name.localeCompare(b.name));
  const schemes = Object.values((doc.components && doc.components.securitySchemes) || {});
  return {
    title: (doc.info && doc.info.title) || "service",
    version: (doc.info && doc.info.version) || "",
    description: (doc.info && doc.info.description) || "",
    kinds,
    byPlural: new Map(kinds.map((k) => [k.plural, k])),
    byName: new Map(kinds.map((k) => [k.name, k])),
    schemas,
    events: Boolean(doc.paths && doc.paths["/events"]),
    auth: schemes.some((s) => s.type === "http" && String(s.scheme).toLowerCase() === "bearer"),
  };
}

function kindOf(plural, collection, one, status, schemas, tags) {
  const read = one.get || collection.get;
  const name = ((read || collection.post || {}).tags || [plural])[0];
  const listParams = (collection.get && collection.get.parameters) || [];
  const has = (n) => listParams.some((p) => p.name === n);
  const verbs = new Set();
  if (collection.get) verbs.add("list");
  if (collection.get && has("watch")) verbs.add("watch");
  if (collection.post) verbs.add("create");
  for (const [method, verb] of [["get", "get"], ["put", "update"], ["patch", "patch"],
    ["delete", "delete"]]) {
    if (one[method]) verbs.add(verb);
  }
  if (status && (status.put || status.patch)) verbs.add("status");
  const versions = versionsOf(read, schemas);
  const field = listParams.find((p) => p.name === "fieldSelector");
  const resource = schemas[versions.resourceSchema] || {};
  const apiVersion = ((resource.properties || {}).apiVersion || {}).default || "";
  return {
    apiVersion,
    name,
    plural,
    description: (tags[name] || "").split(/\.?\. API versions:/)[0],
    verbs,
    ...versions,
    fieldSelector: field ? {description: field.description || ""} : null,
    createSchema: bodySchema(collection.post, versions.mediaType),
  };
}

// The versions a kind serves, from its get's response media types: one
// `application/json;version=V` per version (several-version kinds only), each naming that
// version's resource schema, deprecated ones marked `deprecated: true`; the bare
// `application/json` lists the default version first. When the default is deprecated the
// console asks for a served version that is not (SPEC section 9).
function versionsOf(read, schemas) {
  const content = (read && read.responses && read.responses["200"] &&
    read.responses["200"].content) || {};
  const versions = [];
  for (const [media, entry] of Object.entries(content)) {
    const match = VERSIONED.exec(media);
    if (!match) continue;
    const ref = refName(entry.schema);
    versions.push({name: match[1], schema: ref, deprecated: Boolean(ref && schemas[ref] &&
      schemas[ref].deprecated)});
  }
  const plain = (content["application/json"] || {}).schema || {};
  const defaultRef = refName(plain.anyOf ? plain.anyOf[0] : plain);
  const fallback = versions.find((v) => v.schema === defaultRef);
  let chosen = fallback || null;
  if (chosen && chosen.deprecated) chosen = versions.find((v) => !v.deprecated) || chosen;
  const asked = chosen && chosen !== fallback;
  return {
    versions,
    defaultVersion: fallback ? fallback.name : "",
    version: chosen ? chosen.name : "",
    mediaType: asked ? `application/json;version=${chosen.name}` : null,
    resourceSchema: chosen ? chosen.schema : defaultRef,
  };
}

function bodySchema(operation, mediaType) {
  const content = (operation && operation.requestBody && operation.requestBody.content) || {};
  const entry = (mediaType && content[mediaType]) || content["application/json"];
  return entry ? refName(entry.schema) : null;
}

export function refName(schema) {
  const ref = schema && schema.$ref;
  return ref ? ref.split("/").pop() : null;
}

// A schema with its $ref followed, and `X | null` read as an optional X.
export function resolve(schema, schemas) {
  let current = schema || {};
  let nullable = false;
  for (let i = 0; i < 20; i++) {
    if (current.$ref) {
      const {$ref, ...rest} = current;
      current = {...schemas[$ref.split("/").pop()], ...rest};
      continue;
    }
    const options = current.anyOf || current.oneOf;
    if (options) {
      const real = options.filter((o) => o.type !== "null");
      if (real.length < options.length) nullable = true;
      if (real.length === 1) {
        const {anyOf, oneOf, ...rest} = current;
        current = {...rest, ...real[0]};
        continue;
      }
    }
    if (Array.isArray(current.type) && current.type.includes("null")) {
      nullable = true;
      const types = current.type.filter((t) => t !== "null");
      current = {...current, type: types.length === 1 ? types[0] : types};
    }
    break;
  }
  return {schema: current, nullable};
}

// The spec and status schemas of the version the console reads and writes.
export function partSchemas(kind, service) {
  const resource = service.schemas[kind.resourceSchema] || {};
  const props = resource.properties || {};
  return {
    spec: resolve(props.spec, service.schemas).schema,
    status: resolve(props.status, service.schemas).schema,
  };
}
