// The viewer's one state object and the mapping between it and the page's address. Every
// other module reads `state` and changes it only through the functions here.
//
// `state.view` is what the address says (the references, the search asked for, the grid's
// filter, size and titles); the rest is what the page holds meanwhile. The defaults of k,
// metric and thumbnail size are the collection's (/api/collection `defaults`), adopted when
// it answers; until then the page's own controls give them (index.html) and the metric is
// left to the server.

const FIXED_DEFAULTS = { refs: [], model: "", mode: "", inc: false, cat: "", q: "",
                         title: "category", only: false, dup: false, tier: "", threshold: "",
                         map: false, method: "umap", color: "category", at: "",
                         sort: "", cluster: "", flag: "", tag: "", sel: [], like: [],
                         unlike: [], normalise: "", controls: "" };
const TIERS = ["exact", "pixels", "near", "similar"];
const METHODS = ["umap", "tsne", "pca"];
const MAX_SEL_CHARS = 6000;        // a longer address would pass the server's request limit
const COLOURS = ["category", "cluster", "outlier", "duplicates"];
export const FLAGS = ["blurry", "dark", "bright", "low_information", "greyscale", "odd_size",
                      "odd_aspect"];

/** Ids as ranges ("3-7,9"): a lasso's selection in the address. */
export function rangesOf(ids) {
  const out = [];
  for (let k = 0; k < ids.length; k++) {
    let j = k;
    while (j + 1 < ids.length && ids[j + 1] === ids[j] + 1) j++;
    out.push(j > k ? `${ids[k]}-${ids[j]}` : String(ids[k]));
    k = j;
  }
  return out.join(",");
}

function idsOf(text) {
  const ids = [];
  for (const part of (text || "").split(",")) {
    const [a, b] = part.split("-").map((v) => Number.parseInt(v, 10));
    if (!(a > 0)) continue;
    const last = b >= a ? Math.min(b, a + 1_000_000) : a;
    for (let i = a; i <= last; i++) ids.push(i);
  }
  return [...new Set(ids)].sort((x, y) => x - y);
}

/** Ids listed in the address as "1,2,3" (look-alikes marked ✓ or ✗), in their order. */
function listOf(text) {
  const ids = (text || "").split(",").map((s) => Number.parseInt(s, 10)).filter((n) => n > 0);
  return [...new Set(ids)];
}

export const state = {
  defaults: { ...FIXED_DEFAULTS, k: null, metric: "", size: null },  // see setDefaults
  sizeRange: null,           // [smallest, largest] thumbnail size
  kMax: null,                // the page's own limit on k (the API's is higher)
  view: null,                // what the address says: see readUrl
  info: null,                // /api/collection
  categoryNames: null,       // Set of /api/categories names, once loaded
  result: null,              // the last neighbours answer shown
  resultFor: "",             // the query it answers
  ranks: new Map(),          // image id -> rank among the current look-alikes
  pending: null,             // AbortController of the neighbours request in flight
  lastUpload: null,          // the File last looked up, to ask again when a control changes
  preview: null,             // { list, index, fromGrid, returnTo, current } while it is open
  zoom: "fit",               // the preview's scale: "fit" the window or "1:1"
  why: false,                // the preview's "why?" heat on a look-alike and its reference
};

const listeners = new Set();

/** Call `fn` whenever the look-alikes shown change (the grid marks them). */
export function subscribe(fn) { listeners.add(fn); }

/** The look-alikes shown (null: none). */
export function setResult(answer) {
  state.result = answer;
  state.ranks = new Map((answer?.neighbors || []).map((n) => [n.id, n.rank]));
  for (const fn of listeners) fn(state);
}

/** Forget the look-alikes and the query they answered. */
export function clearResult() {
  state.result = null;
  state.resultFor = "";
  state.ranks = new Map();
}

/** A new neighbours request: the one in flight is abandoned. Returns its controller; the
 *  answer counts only while `isCurrent(controller)`. */
export function beginRequest() {
  state.pending?.abort();
  state.pending = new AbortController();
  return state.pending;
}

export function isCurrent(controller) { return controller === state.pending; }

export function abortRequest() {
  state.pending?.abort();
  state.pending = null;
}

/** Defaults from the page or the collection: the view keys still at the old default (so
 *  absent from the address) take the new one. */
export function setDefaults({ k, metric, size, sizeRange = null, kMax = null }) {
  const next = { ...state.defaults, k, metric, size };
  if (state.view) {
    for (const key of ["k", "metric", "size"]) {
      if (state.view[key] === state.defaults[key]) state.view[key] = next[key];
    }
  }
  state.defaults = next;
  if (sizeRange) state.sizeRange = sizeRange;
  if (kMax) state.kMax = kMax;
}

// -- address <-> view ---------------------------------------------------------------------------

export function metricKey(name) { return name.toLowerCase().replace(/ /g, "-"); }

/** The view the address asks for (values out of range are clamped, unknown ones dropped). */
export function readUrl() {
  const d = state.defaults;
  const p = new URLSearchParams(location.search);
  const int = (v, fallback, lo, hi) => {
    const n = Number.parseInt(v ?? "", 10);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : fallback;
  };
  return {
    refs: (p.get("ref") || "").split(",").map((s) => Number.parseInt(s, 10)).filter((n) => n > 0),
    k: int(p.get("k"), d.k, 1, state.kMax),
    metric: p.get("metric") || d.metric,
    model: p.get("model") || "",
    mode: ["hnsw", "ivf", "ivfpq", "false"].includes(p.get("mode")) ? p.get("mode") : "",
    inc: p.get("inc") === "1",
    only: p.get("only") === "1",
    cat: p.get("cat") || "",
    q: p.get("q") || "",
    size: int(p.get("size"), d.size, ...state.sizeRange),
    title: p.get("title") === "name" || p.get("title")?.startsWith("x:") ? p.get("title")
      : "category",
    // the Duplicates view: /?view=duplicates&tier=...&threshold=...
    dup: p.get("view") === "duplicates",
    tier: TIERS.includes(p.get("tier")) && p.get("tier") !== "near" ? p.get("tier") : "",
    threshold: /^\d*\.?\d+$/.test(p.get("threshold") || "") ? p.get("threshold") : "",
    // the Map view: /?view=map&method=...&color=...&at=x,y,zoom
    map: p.get("view") === "map",
    method: METHODS.includes(p.get("method")) ? p.get("method") : "umap",
    color: COLOURS.includes(p.get("color")) ? p.get("color") : "category",
    at: /^-?[\d.e-]+,-?[\d.e-]+,[\d.e-]+$/.test(p.get("at") || "") ? p.get("at") : "",
    // the grid's sorts and filters from the analysis, and a lasso's selection
    sort: p.get("sort") === "outlier" ? "outlier" : "",
    cluster: /^-?\d+$/.test(p.get("cluster") || "") ? p.get("cluster") : "",
    flag: FLAGS.includes(p.get("flag")) ? p.get("flag") : "",
    tag: (p.get("tag") || "").slice(0, 1024),
    sel: idsOf(p.get("sel")),
    // look-alikes marked "more like this" (✓) and "not like this" (✗): feedback.js
    like: listOf(p.get("like")),
    unlike: listOf(p.get("unlike")),
    // per-plate normalisation of the look-alikes (the column, "plate"; its control wells)
    normalise: (p.get("normalise") || "").slice(0, 200),
    controls: p.get("normalise") ? (p.get("controls") || "").slice(0, 2000) : "",
  };
}

/** The address of a view: only what differs from the defaults. */
export function urlOf(view) {
  const p = new URLSearchParams();
  if (view.refs.length) p.set("ref", view.refs.join(","));
  if (view.like.length) p.set("like", view.like.join(","));
  if (view.unlike.length) p.set("unlike", view.unlike.join(","));
  for (const key of ["k", "metric", "model", "mode", "cat", "q", "size", "title", "normalise",
                     "controls"]) {
    if (view[key] !== state.defaults[key]) p.set(key, String(view[key]));
  }
  if (view.inc) p.set("inc", "1");
  if (view.only) p.set("only", "1");
  if (view.dup) {
    p.set("view", "duplicates");
    if (view.tier) p.set("tier", view.tier);
    if (view.threshold) p.set("threshold", view.threshold);
  }
  if (view.map) {
    p.set("view", "map");
    if (view.method !== "umap") p.set("method", view.method);
    if (view.color !== "category") p.set("color", view.color);
    if (view.at) p.set("at", view.at);
  }
  for (const key of ["sort", "cluster", "flag", "tag"]) if (view[key]) p.set(key, view[key]);
  const sel = rangesOf(view.sel);
  if (sel && sel.length <= MAX_SEL_CHARS) p.set("sel", sel);  // longer: kept by the page only
  const text = p.toString().replace(/%2C/g, ",");
  return text ? `?${text}` : location.pathname;
}

/** Change the view: `push` makes a history entry (a step of the walk), else it is replaced.
 *  `entry` replaces the history entry's own data (an uploaded file's answer) instead of
 *  adding `extra` to it. */
export function go(change, { push = false, extra = null, entry = null } = {}) {
  state.view = { ...state.view, ...change };
  const data = entry ?? (push ? { ...(extra || {}) } : { ...(history.state || {}), ...(extra || {}) });
  if (push) history.pushState(data, "", urlOf(state.view));
  else history.replaceState(data, "", urlOf(state.view));
}

/** The view as the address now says (Back and Forward). Returns the view it replaces. */
export function reloadView() {
  const before = state.view;
  state.view = readUrl();
  return before;
}

/** The address, rewritten (no history entry) to say what the view is. */
export function rewriteUrl() {
  if (urlOf(state.view) !== (location.search || location.pathname)) {
    history.replaceState(history.state, "", urlOf(state.view));
  }
}

/** The category the look-alikes are restricted to, if the user asked for that. */
export function lookalikeCategory() {
  return state.view.only && state.view.cat ? state.view.cat : "";
}
