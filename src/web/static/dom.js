// DOM building and formatting helpers for the fastjobs dashboard.
//
// Every value that comes from a job (task names, arguments, errors, tags...) is put
// into the page with textContent or as an attribute value, never parsed as HTML.

const SVG_NS = "http://www.w3.org/2000/svg";

// The job states, in the order the pages show them.
export const STATES = [
  "queued", "scheduled", "active", "retry_pending", "waiting", "succeeded", "dead", "cancelled",
];

// States a job can be cancelled in, deleted in (not active) and retried in.
export const UNFINISHED = new Set(["queued", "scheduled", "active", "retry_pending", "waiting"]);
export const RETRYABLE = new Set(["dead", "cancelled"]);

// h("a.badge", {href: "#/jobs", "data-testid": "x"}, "text", child, ...)
// The tag may carry classes after dots. Attributes: strings go through setAttribute,
// "on..." functions become event listeners, false/null/undefined are skipped.
// Children: strings and numbers become text nodes, null/false are skipped, arrays are flattened.
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// The same for SVG elements (the chart).
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.setAttribute("class", [el.getAttribute("class"), value].filter(Boolean).join(" "));
    } else if (key === "value" && "value" in el) {
      el.value = String(value);
    } else if (key === "checked" || key === "disabled" || key === "selected") {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

// Replace an element's children.
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

// A link to a page of the dashboard: route("jobs", {state: "dead"}) -> "#/jobs?state=dead".
export function route(path, params) {
  let href = "#/" + path;
  if (params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
    }
    const text = query.toString();
    if (text) href += "?" + text;
  }
  return href;
}

export function jobHref(id) {
  return "#/jobs/" + encodeURIComponent(id);
}

// A link to a job, showing the start of its id (the full id in the tooltip).
export function jobLink(id, attrs) {
  return h("a.mono", { href: jobHref(id), title: id, ...attrs }, shortId(id));
}

export function shortId(id) {
  const text = String(id);
  return text.length > 14 ? text.slice(0, 6) + "…" + text.slice(-6) : text;
}

export function stateBadge(state, attrs) {
  return h("span.badge.state-" + String(state).replace(/[^a-z_]/g, ""), attrs, state);
}

// Numbers and durations.

export function fmtCount(n) {
  return typeof n === "number" ? n.toLocaleString() : "–";
}

export function fmtRate(x) {
  if (typeof x !== "number") return "–";
  if (x === 0) return "0";
  if (x < 0.1) return x.toFixed(3);
  if (x < 10) return x.toFixed(2);
  return Math.round(x).toLocaleString();
}

export function fmtPercent(x) {
  if (typeof x !== "number") return "–";
  const p = x * 100;
  return (p > 0 && p < 0.1 ? p.toFixed(2) : p.toFixed(1)) + " %";
}

// Seconds as "850 ms", "4.2 s", "3 min 10 s", "2 h 5 min", "3 d 4 h".
export function fmtDuration(seconds) {
  if (typeof seconds !== "number" || !isFinite(seconds)) return "–";
  const s = Math.abs(seconds);
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 60) return (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
  if (s < 3600) return pair(Math.floor(s / 60), "min", Math.floor(s % 60), "s");
  if (s < 86400) return pair(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
  return pair(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
}

function pair(a, unitA, b, unitB) {
  return b ? `${a} ${unitA} ${b} ${unitB}` : `${a} ${unitA}`;
}

// Times (epoch seconds, or an ISO 8601 string) as local time.

export function toSeconds(t) {
  if (typeof t === "number") return t;
  if (typeof t === "string" && t) {
    const ms = Date.parse(t);
    return isNaN(ms) ? null : ms / 1000;
  }
  return null;
}

export function fmtTime(t) {
  const s = toSeconds(t);
  if (s === null) return "–";
  const d = new Date(s * 1000);
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
}

// "3 min ago", "in 20 s", "just now".
export function fmtAge(t) {
  const s = toSeconds(t);
  if (s === null) return "";
  const delta = Date.now() / 1000 - s;
  if (Math.abs(delta) < 1) return "just now";
  const abs = Math.abs(delta);
  const text = abs < 60 ? Math.round(abs) + " s" : fmtDuration(abs).replace(/ \d+ (s|min|h)$/, "");
  return delta > 0 ? text + " ago" : "in " + text;
}

// A <time> element: local time with the relative age after it, the full time in the tooltip.
export function timeCell(t) {
  const s = toSeconds(t);
  if (s === null) return h("span.muted", null, "–");
  const d = new Date(s * 1000);
  return h("time", { datetime: d.toISOString(), title: d.toString() },
    fmtTime(s), " ", h("span.age", null, "(" + fmtAge(s) + ")"));
}

// Just the relative age, the local time in the tooltip (for dense tables).
export function ageCell(t) {
  const s = toSeconds(t);
  if (s === null) return h("span.muted", null, "–");
  const d = new Date(s * 1000);
  return h("time", { datetime: d.toISOString(), title: d.toLocaleString() }, fmtAge(s));
}

// A value as pretty JSON text for a <pre> (never evaluated, never parsed as HTML).
// Short values stay on one line, spaced as Python's json.dumps does ({"to": "x", "n": [1, 2]});
// longer ones are indented by 2. (A newline in JSON text only ever separates tokens: inside
// strings it is escaped, so joining the lines never changes a value.)
export function prettyJson(value) {
  if (value === undefined) return "";
  try {
    const indented = JSON.stringify(value, null, 2);
    if (indented === undefined) return String(value);
    const flat = indented.replace(/([[{])\n\s*/g, "$1").replace(/\n\s*([\]}])/g, "$1").replace(/\n\s*/g, " ");
    return flat.length <= 72 ? flat : indented;
  } catch (err) {
    return String(value);
  }
}

export function pre(value, attrs) {
  return h("pre.json", attrs, typeof value === "string" ? value : prettyJson(value));
}

// A <table> with a header row; rows are <tr> elements.
export function table(headers, rows, attrs) {
  return h("div.table-wrap", null,
    h("table", attrs,
      h("thead", null, h("tr", null, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", null, rows)));
}

export function emptyRow(columns, text) {
  return h("tr.empty", null, h("td", { colspan: columns }, text));
}

// A definition list from [label, value] pairs (pairs with a null value are left out).
export function fields(pairs) {
  const dl = h("dl.fields");
  for (const [label, value] of pairs) {
    if (value === null || value === undefined) continue;
    append(dl, [h("dt", null, label), h("dd", null, value)]);
  }
  return dl;
}
