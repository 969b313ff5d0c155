// The lookalike viewer: a grid of the collection, the look-alikes of the chosen references,
// a walk from look-alike to look-alike with browser history, uploads and a full-size preview.
// Everything it shows comes from the JSON API (see /docs).

import { VirtualGrid } from "./grid.js";

const $ = (id) => document.getElementById(id);
const THUMB_STEPS = [32, 64, 128, 256, 512, 1024];
const DEFAULTS = { refs: [], k: 10, metric: "cosine", model: "", mode: "", inc: false, cat: "",
                   q: "", size: 128, title: "category", only: false };
const LARGE = 50000;             // from this many images the search mode can be chosen

let info = null;                 // /api/collection
let state = { ...DEFAULTS };     // what the URL says
let result = null;               // the last neighbours answer
let resultFor = "";              // the query it answers
let ranks = new Map();           // image id -> rank among the current look-alikes
let pending = null;              // AbortController of the neighbours request in flight
let preview = null;              // { list: () => items, index, grid }
let zoom = "fit";                // the preview's scale: "fit" the window or "1:1"

// -- URL <-> state ---------------------------------------------------------------------------

function metricKey(name) { return name.toLowerCase().replace(/ /g, "-"); }

function readUrl() {
  const p = new URLSearchParams(location.search);
  const int = (v, d, lo, hi) => {
    const n = Number.parseInt(v ?? "", 10);
    return Number.isFinite(n) ? Math.min(hi, Math.max(lo, n)) : d;
  };
  return {
    refs: (p.get("ref") || "").split(",").map((s) => Number.parseInt(s, 10)).filter((n) => n > 0),
    k: int(p.get("k"), DEFAULTS.k, 1, 1000),
    metric: p.get("metric") || DEFAULTS.metric,
    model: p.get("model") || "",
    mode: ["ivf", "false"].includes(p.get("mode")) ? p.get("mode") : "",
    inc: p.get("inc") === "1",
    only: p.get("only") === "1",
    cat: p.get("cat") || "",
    q: p.get("q") || "",
    size: int(p.get("size"), DEFAULTS.size, 32, 1024),
    title: p.get("title") === "name" || p.get("title")?.startsWith("x:") ? p.get("title")
      : "category",
  };
}

function urlOf(s) {
  const p = new URLSearchParams();
  if (s.refs.length) p.set("ref", s.refs.join(","));
  for (const key of ["k", "metric", "model", "mode", "cat", "q", "size", "title"]) {
    if (s[key] !== DEFAULTS[key]) p.set(key, String(s[key]));
  }
  if (s.inc) p.set("inc", "1");
  if (s.only) p.set("only", "1");
  const text = p.toString().replace(/%2C/g, ",");
  return text ? `?${text}` : location.pathname;
}

/** Change the state: `push` makes a history entry (a step of the walk), else it is replaced. */
function go(change, { push = false, extra = null } = {}) {
  state = { ...state, ...change };
  if (push) history.pushState({ ...(extra || {}) }, "", urlOf(state));
  else history.replaceState({ ...(history.state || {}), ...(extra || {}) }, "", urlOf(state));
}

// -- API -------------------------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (!response.ok) {
    const error = new Error(body?.error || `${response.status} ${response.statusText}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

function thumbUrl(id, px) {
  const step = THUMB_STEPS.find((s) => s >= px) || THUMB_STEPS[THUMB_STEPS.length - 1];
  return `/api/images/${id}/thumbnail?size=${step}`;
}

function imagesQuery(offset, limit) {
  const p = new URLSearchParams({ offset, limit });
  if (state.cat) p.set("category", state.cat);
  if (state.q) p.set("q", state.q);
  return `/api/images?${p}`;
}

// -- the grid ----------------------------------------------------------------------------------

/** The title under a thumbnail: its category, its file name, or a column of its table
 *  ("x:COLUMN", the extras of /api/images). */
function titleText(item) {
  if (state.title === "name") return item.name || "";
  if (state.title.startsWith("x:")) {
    const value = item.extras?.[state.title.slice(2)];
    return value === null || value === undefined ? "" : String(value);
  }
  return (item.category ? item.category.split("/").pop() : item.name) || "";
}

const grid = new VirtualGrid($("grid"), {
  fetchPage: (offset, limit) => api(imagesQuery(offset, limit)),
  paintCell(el, item, px) {
    const img = el.firstChild.firstChild;
    const title = el.children[1];
    const badge = el.children[3];
    if (!item) {
      el.classList.add("placeholder");
      img.removeAttribute("src");
      img.alt = "";
      title.textContent = "";
      badge.hidden = true;
      el.dataset.id = "";
      return;
    }
    el.classList.remove("placeholder");
    el.dataset.id = String(item.id);
    const src = thumbUrl(item.id, px);
    if (img.getAttribute("src") !== src) img.src = src;
    img.alt = item.name || "";
    title.textContent = titleText(item);
    el.title = `${item.name}${item.category ? ` — ${item.category}` : ""}  (${item.width}×${item.height})`;
    const isRef = state.refs.includes(item.id) && !result?.upload;
    const rank = ranks.get(item.id);
    el.classList.toggle("ref", isRef);
    el.classList.toggle("near", !isRef && rank !== undefined);
    badge.hidden = !isRef && rank === undefined;
    badge.textContent = isRef ? "ref" : String(rank ?? "");
  },
  onFirstPaint() {
    requestAnimationFrame(() => {
      performance.mark("lookalike:grid-painted");
      document.body.dataset.grid = "painted";
      watchFirstThumbnails();
    });
  },
  onRender(total) {
    $("grid-empty").hidden = total > 0;
    $("count").textContent = countText(total);
  },
});

function countText(total) {
  const all = info?.count ?? total;
  const n = total.toLocaleString("en");
  return total === all ? `${n} images` : `${n} of ${all.toLocaleString("en")} images`;
}

function watchFirstThumbnails() {
  // Marks when the thumbnails of the first screen have all arrived (or failed).
  const imgs = [...$("cells").querySelectorAll("img[src]")];
  let left = imgs.length;
  const done = () => {
    if (--left <= 0) {
      performance.mark("lookalike:thumbnails-loaded");
      document.body.dataset.thumbnails = "loaded";
    }
  };
  if (!left) { left = 1; done(); return; }
  for (const img of imgs) {
    if (img.complete) done();
    else {
      img.addEventListener("load", done, { once: true });
      img.addEventListener("error", done, { once: true });
    }
  }
}

$("cells").addEventListener("click", (event) => {
  const hit = grid.hit(event);
  if (!hit) return;
  if (event.target.closest(".zoom")) {
    openPreview(gridList(), hit.index, { fromGrid: true });
    return;
  }
  choose(hit.item.id, event);
});
$("cells").addEventListener("dblclick", (event) => {
  const hit = grid.hit(event);
  if (hit) openPreview(gridList(), hit.index, { fromGrid: true });
});

function gridList() {
  return { length: () => grid.total, get: (i) => grid.itemsAround(i) };
}

/** Plain click: this image is the reference. Shift/Ctrl/Cmd-click: add or remove it. */
function choose(id, event) {
  let refs;
  if (event && (event.shiftKey || event.ctrlKey || event.metaKey) && !result?.upload) {
    refs = state.refs.includes(id) ? state.refs.filter((r) => r !== id) : [...state.refs, id];
  } else {
    refs = [id];
  }
  go({ refs }, { push: true });
  update();
}

// -- look-alikes ------------------------------------------------------------------------------

function neighborsQuery() {
  const p = new URLSearchParams();
  for (const r of state.refs) p.append("ref", r);
  p.set("k", state.k);
  p.set("metric", state.metric);
  if (state.model) p.set("model", state.model);
  if (state.mode) p.set("approximate", state.mode);
  if (state.inc) p.set("include_references", "true");
  if (lookalikeCategory()) p.set("category", lookalikeCategory());
  return `/api/neighbors?${p}`;
}

/** The category the look-alikes are restricted to, if the user asked for that. */
function lookalikeCategory() { return state.only && state.cat ? state.cat : ""; }

/** What the panel says while an answer is on its way: the old one, if any, is marked stale
 *  and never labelled as what was asked for. */
function showLoading() {
  document.body.dataset.neighbors = "loading";
  $("message").hidden = true;
  $("results").classList.add("stale");
  $("results").setAttribute("aria-busy", "true");
  const model = info && Object.keys(info.models).length > 1
    ? ` · ${state.model || info.default_model}` : "";
  $("result-info").textContent = `loading ${metricLabel(state.metric)}${model} look-alikes…`;
}

function metricLabel(key) {
  return info?.metrics.find((m) => metricKey(m) === metricKey(key)) || key;
}

async function update() {
  syncControls();
  if (history.state?.upload) {            // an uploaded file's look-alikes, kept in history
    showResult(history.state.upload);
    return;
  }
  if (!state.refs.length) {
    result = null;
    resultFor = "";
    ranks = new Map();
    showResult(null);
    return;
  }
  const query = neighborsQuery();
  if (query === resultFor && result) { showResult(result); return; }
  pending?.abort();
  pending = new AbortController();
  const mine = pending;
  showLoading();
  try {
    const category = lookalikeCategory();
    const answer = await api(query, { signal: mine.signal });
    if (mine !== pending) return;        // a later request superseded this one
    answer.category = category;
    resultFor = query;
    showResult(answer);
  } catch (error) {
    if (error.name === "AbortError" || mine !== pending) return;
    showError(error.message);
  }
}

function showResult(answer) {
  result = answer;
  ranks = new Map((answer?.neighbors || []).map((n) => [n.id, n.rank]));
  $("intro").hidden = !!answer;
  $("refs").hidden = !answer;
  $("results").hidden = !answer;
  $("message").hidden = true;
  $("results").classList.remove("stale");
  $("results").removeAttribute("aria-busy");
  if (answer) {
    renderRefs(answer);
    renderNeighbors(answer);
  }
  grid.refresh();
  document.body.dataset.neighbors = answer ? "shown" : "none";
}

function frame(id, px, alt) {
  const box = document.createElement("div");
  box.className = "frame";
  const img = document.createElement("img");
  img.alt = alt || "";
  img.decoding = "async";
  if (id !== null) img.src = thumbUrl(id, px);
  box.appendChild(img);
  return box;
}

function renderRefs(answer) {
  const list = $("ref-list");
  list.replaceChildren();
  const several = answer.references.length > 1;
  $("show-in-grid").hidden = !!answer.upload;
  $("refs-plural").textContent = several ? `s (${answer.references.length})` : "";
  answer.references.forEach((ref, i) => {
    const li = document.createElement("li");
    if (several) li.classList.add("several");
    const box = frame(ref.upload ? null : ref.id, several ? 96 : 144, ref.name);
    box.title = ref.upload ? ref.name : `${ref.name}${ref.category ? ` — ${ref.category}` : ""}`;
    if (ref.upload && answer.uploadUrl) box.firstChild.src = answer.uploadUrl;
    if (!ref.upload) box.addEventListener("click", () => openPreview(refList(answer), i));
    const who = document.createElement("div");
    who.className = "who";
    who.innerHTML = '<div class="name"></div><div class="sub"></div>';
    who.firstChild.textContent = ref.name;
    who.lastChild.textContent = ref.upload
      ? `uploaded file, ${formatBytes(ref.size)}`
      : [ref.category, `${ref.width}×${ref.height}`].filter(Boolean).join(" · ");
    li.append(box, who);
    if (several) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.title = "Remove this reference";
      remove.textContent = "×";
      remove.addEventListener("click", () => {
        go({ refs: state.refs.filter((r) => r !== ref.id) }, { push: true });
        update();
      });
      li.appendChild(remove);
      li.removeChild(who);
    }
    list.appendChild(li);
  });
}

function renderNeighbors(answer) {
  const list = $("neighbors");
  list.replaceChildren();
  const metric = answer.metric;
  const several = info && Object.keys(info.models).length > 1;
  $("result-info").textContent = [`${answer.neighbors.length} by ${metric}`,
    several ? answer.model : "", answer.category ? `from ${answer.category}` : ""]
    .filter(Boolean).join(" · ");
  renderNotes(answer.notes || []);
  const scale = distanceScale(metric, answer.neighbors);
  const refNames = referenceNames(answer);
  answer.neighbors.forEach((n, i) => {
    const li = document.createElement("li");
    li.dataset.id = String(n.id);
    if (state.refs.includes(n.id) && !answer.upload) li.classList.add("ref");
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `${n.rank}`;
    const box = frame(n.id, 64, n.name);
    const who = document.createElement("div");
    who.className = "who";
    who.innerHTML = '<div class="name"></div><div class="sub"></div>';
    who.firstChild.textContent = n.name;
    who.lastChild.textContent = [n.category, `${n.width}×${n.height}`].filter(Boolean).join(" · ");
    if (refNames && n.nearest_reference != null) {
      const near = document.createElement("div");
      near.className = "sub nearest";
      near.textContent = `nearest to ${refNames.get(n.nearest_reference) ?? n.nearest_reference}`;
      near.title = `nearest reference: ${n.nearest_reference}`;
      who.appendChild(near);
    }
    li.append(rank, box, who, distanceElement(n.distance, metric, scale), zoomButton());
    li.addEventListener("click", (event) => {
      if (event.target.closest(".zoom")) openPreview(neighborList(answer), i);
      else choose(n.id, event);
    });
    list.appendChild(li);
  });
  if (!answer.neighbors.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "No other image to show.";
    list.appendChild(li);
  }
}

function zoomButton() {
  const zoom = document.createElement("button");
  zoom.type = "button";
  zoom.className = "zoom";
  zoom.title = "Preview";
  zoom.textContent = "⤢";
  return zoom;
}

/** Sentences the search wants the user to read with its answer (the API's `notes`). */
function renderNotes(notes) {
  const box = $("notes");
  box.replaceChildren(...notes.map((text) => {
    const li = document.createElement("li");
    li.textContent = text;
    return li;
  }));
  box.hidden = !notes.length;
}

/** With several references: each reference's path (as the records give it) -> how to name
 *  it (its name, with its category when two references share a name); else null. */
function referenceNames(answer) {
  if (answer.references.length < 2) return null;
  const count = new Map();
  for (const r of answer.references) count.set(r.name, (count.get(r.name) || 0) + 1);
  return new Map(answer.references.map((r) => [r.path,
    count.get(r.name) > 1 && r.category ? `${r.name} (${r.category})` : r.name]));
}

// Distances on the metrics' own scales: those bounded by 1 (cosine distances of image
// embeddings, whose values are not negative, stay below 1) fill a bar of 1 - distance; the
// unbounded ones are scaled to the farthest look-alike shown.
const BOUNDED = new Set(["cosine", "jaccard", "pearson", "spearman", "absolute-pearson",
                         "absolute-spearman"]);

function distanceScale(metric, neighbors) {
  if (BOUNDED.has(metricKey(metric))) return { bound: 1, relative: false };
  const far = Math.max(0, ...neighbors.map((n) => n.distance).filter(Number.isFinite));
  return { bound: far > 0 ? far / 0.9 : 1, relative: true };  // the farthest keeps a sliver
}

function distanceElement(distance, metric, scale) {
  const box = document.createElement("span");
  box.className = "distance";
  const closeness = Math.min(1, Math.max(0, 1 - distance / scale.bound));
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.setAttribute("aria-hidden", "true");
  bar.style.setProperty("--closeness", closeness.toFixed(3));
  box.append(bar, distance.toFixed(4));
  box.title = `${metric} distance ${distance}` + (scale.relative
    ? "; the bar is relative to the farthest look-alike shown"
    : `; the bar shows 1 − distance (${Math.round(closeness * 100)}%)`);
  return box;
}

function refList(answer) {
  const refs = answer.references.filter((r) => !r.upload);
  return { length: () => refs.length, get: async (i) => refs[i] };
}

function neighborList(answer) {
  return { length: () => answer.neighbors.length, get: async (i) => answer.neighbors[i] };
}

/** An error, at the top of the panel where the look-alikes were (they are cleared: they
 *  would answer another question than the one that failed). */
function showError(text) {
  showResult(null);
  $("intro").hidden = true;
  const box = $("message");
  box.textContent = text;
  box.className = "message error";
  box.hidden = false;
  $("panel").scrollTop = 0;
  box.scrollIntoView({ block: "nearest" });
  document.body.dataset.neighbors = "error";
}

/** A remark on the view (not an error): stays until the next one. */
function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

function formatBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

// -- controls ---------------------------------------------------------------------------------

function syncControls() {
  $("k").value = state.k;
  const metric = [...$("metric").options].find((o) => o.value === metricKey(state.metric));
  if (metric) $("metric").value = metric.value;
  if (state.model) $("model").value = state.model;
  $("mode").value = state.mode;
  $("include").checked = state.inc;
  syncWithin();
  $("category").value = state.cat;
  $("search").value = state.q;
  $("size").value = state.size;
  $("size-out").textContent = `${state.size} px`;
  $("title").value = state.title;
}

function syncWithin() {
  $("within").checked = state.only;
  $("within").disabled = !state.cat;
  $("within-label").title = state.cat ? `Only look-alikes from ${state.cat}`
    : "Choose a category above the grid first";
  $("within-label").classList.toggle("disabled", !state.cat);
}

function onControl() {
  const k = Number.parseInt($("k").value, 10);
  if (!(k >= 1 && k <= 1000)) return;
  const model = $("model").value === info?.default_model ? "" : $("model").value;
  go({ k, metric: $("metric").value, model, mode: $("mode").value, inc: $("include").checked,
       only: $("within").checked });
  refreshLookalikes();
}
$("k").addEventListener("change", onControl);
$("metric").addEventListener("change", onControl);
$("model").addEventListener("change", onControl);
$("include").addEventListener("change", onControl);
$("within").addEventListener("change", onControl);
$("mode").addEventListener("change", onControl);
$("controls").addEventListener("submit", (e) => { e.preventDefault(); onControl(); });

$("category").addEventListener("change", () => {
  const restricted = state.only;
  go({ cat: $("category").value });
  syncWithin();
  grid.reset();
  if (restricted) refreshLookalikes();   // they follow the grid's category
});

/** Ask again for the look-alikes shown (of the references, or of the uploaded file). */
function refreshLookalikes() {
  if (history.state?.upload || result?.upload) {
    if (lastUpload) upload(lastUpload, { replace: true });
  } else {
    update();
  }
}
let searchTimer = 0;
$("search").addEventListener("input", () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    go({ q: $("search").value.trim() });
    grid.reset();
  }, 200);
});
$("size").addEventListener("input", () => {
  const size = Number($("size").value);
  $("size-out").textContent = `${size} px`;
  state.size = size;
  grid.setSize(size);
});
$("size").addEventListener("change", () => go({ size: Number($("size").value) }));
$("title").addEventListener("change", () => {
  go({ title: $("title").value });
  grid.refresh();
});

// -- export ----------------------------------------------------------------------------------

const FIELDS = ["rank", "path", "distance", "nearest_reference", "name", "category", "width",
  "height", "size", "id"];

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value);
  const text = String(value);
  return /[",\n\r]/.test(text) || text.trim() !== text ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportName(ext) {
  const first = result?.references?.[0]?.name || "lookalikes";
  return `lookalikes-${first}.${ext}`.replace(/[^\w.-]+/g, "_");
}

$("export-json").addEventListener("click", () => {
  if (result) download(exportName("json"), "application/json",
                       JSON.stringify(result.neighbors, null, 2) + "\n");
});
$("export-csv").addEventListener("click", () => {
  if (!result) return;
  const extra = [...new Set(result.neighbors.flatMap(Object.keys))].filter((f) => !FIELDS.includes(f));
  const columns = [...FIELDS, ...extra];
  const lines = [columns.join(",")];
  for (const n of result.neighbors) lines.push(columns.map((c) => csvCell(n[c])).join(","));
  download(exportName("csv"), "text/csv", lines.join("\n") + "\n");
});

// -- uploads ----------------------------------------------------------------------------------

let lastUpload = null;

async function upload(file, { replace = false } = {}) {
  if (!file.type.startsWith("image/") && file.type) {
    uploadFailed(`${file.name}: not an image file; choose a JPEG, PNG, WebP, HEIC, ... image`);
    return;
  }
  if (info && file.size > info.max_upload_bytes) {
    uploadFailed(`${file.name}: larger than ${formatBytes(info.max_upload_bytes)}, the upload limit`);
    return;
  }
  lastUpload = file;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("k", state.k);
  form.append("metric", state.metric);
  if (state.model) form.append("model", state.model);
  if (state.mode) form.append("approximate", state.mode);
  const category = lookalikeCategory();
  if (category) form.append("category", category);
  pending?.abort();
  pending = new AbortController();
  const mine = pending;
  showLoading();
  try {
    const answer = await api("/api/neighbors/upload", { method: "POST", body: form, signal: mine.signal });
    if (mine !== pending) return;
    answer.upload = true;
    answer.category = category;
    answer.uploadUrl = URL.createObjectURL(file);
    const entry = { upload: { ...answer, uploadUrl: null } };
    state = { ...state, refs: [] };
    if (replace) history.replaceState(entry, "", urlOf(state));
    else history.pushState(entry, "", urlOf(state));
    resultFor = "";
    showResult(answer);
  } catch (error) {
    if (error.name !== "AbortError" && mine === pending) uploadFailed(error.message);
  }
}

/** A file that could not be looked up: say so where the look-alikes were, and take the
 *  earlier reference out of the view (Back shows it again). */
function uploadFailed(text) {
  pending?.abort();
  pending = null;
  if (state.refs.length || history.state?.upload) go({ refs: [] }, { push: true });
  result = null;
  resultFor = "";
  showError(text);
}

$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) upload(file);
  $("file").value = "";
});

let dragDepth = 0;
const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
window.addEventListener("dragenter", (e) => {
  if (!hasFiles(e)) return;
  dragDepth += 1;
  $("drop").hidden = false;
});
window.addEventListener("dragleave", (e) => {
  if (!hasFiles(e)) return;
  dragDepth = Math.max(0, dragDepth - 1);
  if (!dragDepth) $("drop").hidden = true;
});
window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
window.addEventListener("drop", (e) => {
  if (!hasFiles(e)) return;
  e.preventDefault();
  dragDepth = 0;
  $("drop").hidden = true;
  const file = [...e.dataTransfer.files].find((f) => !f.type || f.type.startsWith("image/"));
  if (file) upload(file);
  else uploadFailed(`${e.dataTransfer.files[0]?.name || "that"}: not an image file; drop a JPEG, PNG, WebP, HEIC, ... image`);
});

// -- preview ---------------------------------------------------------------------------------

async function openPreview(list, index, { fromGrid = false } = {}) {
  preview = { list, index, fromGrid, returnTo: document.activeElement };
  $("preview").hidden = false;
  // The dialog itself takes the focus, not a button in it: a button focused during the
  // Enter that opened the preview would be clicked by that same keystroke.
  $("preview").focus({ preventScroll: true });
  await showPreview();
}

async function showPreview() {
  if (!preview) return;
  const { list, index } = preview;
  const item = await list.get(index);
  if (!item || preview?.index !== index) return;
  const img = $("preview-img");
  img.onload = () => fitPreview();
  img.style.width = img.style.height = "";
  // The image as the browser can show it (a HEIC or TIFF as PNG/JPEG), at full size.
  img.src = `/api/images/${item.id}/display`;
  img.alt = item.name;
  const caption = $("preview-caption");
  caption.replaceChildren();
  const parts = [];
  if (item.rank !== undefined) parts.push(`#${item.rank} · distance ${item.distance.toFixed(4)}`);
  parts.push([item.name, item.category].filter(Boolean).join(" — "));
  parts.push(`${item.width}×${item.height} · ${formatBytes(item.size)}`);
  caption.append(parts.join("   ·   "), document.createElement("br"));
  const path = document.createElement("span");
  path.className = "muted";
  path.textContent = `${item.path}  `;
  const original = document.createElement("a");
  original.href = `/api/images/${item.id}/original`;
  original.target = "_blank";
  original.rel = "noopener";
  original.textContent = "original file";
  const pick = link("use as reference (Enter)", pickPreviewed);
  const locate = link("show in grid", async () => {
    const id = item.id;
    closePreview({ refocus: false });
    await showInGrid(id);
  });
  caption.append(path, original, "  ·  ", pick, "  ·  ", locate);
  $("preview-prev").disabled = index <= 0;
  $("preview-next").disabled = index >= list.length() - 1;
}

function link(text, action) {
  const a = document.createElement("a");
  a.href = "#";
  a.textContent = text;
  a.addEventListener("click", (e) => { e.preventDefault(); action(); });
  return a;
}

/** Size the previewed image: "fit" scales it to the window (pixelated when enlarged, so a
 *  small image stays sharp), "1:1" shows it pixel for pixel (scrolling when larger). */
function fitPreview() {
  const img = $("preview-img");
  const { naturalWidth: w, naturalHeight: h } = img;
  if (!w || !h) return;
  const actual = zoom === "1:1";
  const margin = innerWidth <= 800 ? 80 : 160;  // the arrows beside it (style.css)
  const scale = actual ? 1 : Math.min((innerWidth - margin) / w, (innerHeight - 140) / h);
  img.style.width = `${Math.max(1, Math.round(w * scale))}px`;
  img.style.height = `${Math.max(1, Math.round(h * scale))}px`;
  img.classList.toggle("enlarged", scale > 1);
  $("preview-stage").classList.toggle("actual", actual);
  $("preview-zoom").textContent = actual ? "fit" : "1:1";
  $("preview-zoom").setAttribute("aria-pressed", String(actual));
  img.dataset.scale = scale.toFixed(3);
}

function toggleZoom() {
  zoom = zoom === "fit" ? "1:1" : "fit";
  fitPreview();
}

function movePreview(step) {
  if (!preview) return;
  const next = preview.index + step;
  if (next < 0 || next >= preview.list.length()) return;
  preview.index = next;
  showPreview();
}

async function pickPreviewed() {
  const item = await preview?.list.get(preview.index);
  closePreview({ refocus: false });
  if (item) choose(item.id, null);
}

function closePreview({ refocus = true } = {}) {
  const was = preview;
  preview = null;
  $("preview").hidden = true;
  $("preview-img").removeAttribute("src");
  if (!refocus || !was) return;
  if (was.fromGrid) grid.focusIndex(was.index);     // back where the keyboard left off
  else if (was.returnTo?.isConnected) was.returnTo.focus({ preventScroll: true });
}

$("preview-prev").addEventListener("click", () => movePreview(-1));
$("preview-next").addEventListener("click", () => movePreview(1));
$("preview-close").addEventListener("click", () => closePreview());
$("preview-zoom").addEventListener("click", toggleZoom);
$("preview").addEventListener("click", (e) => {
  if (e.target === $("preview") || e.target === $("preview-stage")) closePreview();
});
window.addEventListener("resize", () => { if (preview) fitPreview(); });

// -- keyboard ----------------------------------------------------------------------------------

document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (preview) {
    if (e.key === "Escape") closePreview();
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") movePreview(-1);
    else if (e.key === "ArrowRight" || e.key === "ArrowDown") movePreview(1);
    else if (e.key === "Enter" && !e.target.closest?.("button, a")) pickPreviewed();
    else if (e.key === "z" || e.key === "Z") toggleZoom();
    else return;
    e.preventDefault();
    return;
  }
  const inGrid = e.target === $("grid") || grid.focusedIndex() !== null;
  if (inGrid && gridKey(e)) e.preventDefault();
});

/** The grid's keys: arrows move between images (up and down by a row), Home and End go to
 *  the first and last, Enter previews, Space makes the image the reference. */
function gridKey(e) {
  const at = grid.focusedIndex();
  const here = at ?? grid.firstVisibleIndex();
  const moves = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -grid.columns, ArrowDown: grid.columns };
  if (e.key in moves) {
    const to = at === null ? here : here + moves[e.key];
    grid.focusIndex(to >= 0 && to < grid.total ? to : here);  // the edges hold
  } else if (e.key === "Home" || e.key === "End") {
    grid.focusIndex(e.key === "Home" ? 0 : grid.total - 1);
  } else if (e.key === "Enter") {
    openPreview(gridList(), here, { fromGrid: true });
  } else if (e.key === " " && at !== null) {
    const item = grid.itemAt(at);
    if (item) choose(item.id, e);
  } else {
    return false;
  }
  return true;
}

// -- show in grid ------------------------------------------------------------------------------

/** Scroll the grid to an image (clearing a filter that leaves it out) and focus it. */
async function showInGrid(id) {
  const where = async () => {
    const p = new URLSearchParams();
    if (state.cat) p.set("category", state.cat);
    if (state.q) p.set("q", state.q);
    return (await api(`/api/images/${id}/position?${p}`)).position;
  };
  try {
    let position = await where();
    if (position === null) {            // the filter leaves it out: show the whole collection
      go({ cat: "", q: "" });
      syncControls();
      await grid.reset();
      position = await where();
    }
    if (position === null) return;
    await grid.itemsAround(position);
    const el = grid.focusIndex(position, { centre: true });
    el?.classList.add("located");
    setTimeout(() => el?.classList.remove("located"), 1500);
  } catch (error) {
    showError(error.message);
  }
}

$("show-in-grid").addEventListener("click", () => {
  const first = result?.references?.find((r) => !r.upload);
  if (first) showInGrid(first.id);
});

// -- start -------------------------------------------------------------------------------------

let categoryNames = null;        // Set of /api/categories names, once loaded

/** Make the state something the collection can show, and the address say what is shown: a
 *  metric, model, k, search mode or category in the address that cannot be shown falls back
 *  to the default, with a notice naming what was not understood. */
function normalise() {
  const asked = new URLSearchParams(location.search);
  const fixed = [];
  const fallBack = (key, shown) => fixed.push(`${key} "${asked.get(key)}" (showing ${shown})`);
  if (info) {
    const metric = info.metrics.find((m) => metricKey(m) === metricKey(state.metric));
    if (metric) state.metric = metricKey(metric);
    else {
      state.metric = metricKey(info.default_metric);
      fallBack("metric", info.default_metric);
    }
    if (state.model && !(state.model in info.models)) {
      state.model = "";
      fallBack("model", info.default_model);
    }
    if (state.model === info.default_model) state.model = "";
  }
  for (const key of ["k", "mode", "size"]) {
    if (asked.has(key) && asked.get(key) !== String(state[key])) {
      fallBack(key, key === "mode" ? "auto" : state[key]);
    }
  }
  if (categoryNames && state.cat && !categoryNames.has(state.cat)) {
    fallBack("cat", "all categories");
    state.cat = "";
    grid.reset();
  }
  showNotice(fixed.length ? `Not understood in the address: ${fixed.join(", ")}.` : "");
  if (urlOf(state) !== (location.search || location.pathname)) {
    history.replaceState(history.state, "", urlOf(state));
  }
  syncControls();
}

window.addEventListener("popstate", () => {
  const before = state;
  state = readUrl();
  normalise();
  if (before.cat !== state.cat || before.q !== state.q) grid.reset();
  if (before.size !== state.size) grid.setSize(state.size);
  update();
});

function fillSelect(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    o.selected = value === selected;
    return o;
  }));
}

async function start() {
  state = readUrl();
  grid.size = state.size;
  syncControls();
  const collection = api("/api/collection");
  const firstPage = grid.reset();
  try {
    info = await collection;
  } catch (error) {
    showError(error.message);
    return;
  }
  fillSelect($("metric"), info.metrics.map((m) => [metricKey(m), m]), metricKey(state.metric));
  const models = Object.keys(info.models);
  fillSelect($("model"), models.map((m) => [m, m === info.default_model ? `${m} (default)` : m]),
             state.model || info.default_model);
  $("model-label").hidden = models.length < 2;
  if (info.extra_columns?.length) {  // a table's columns can title the images too
    fillSelect($("title"), [["category", "category"], ["name", "file name"],
                            ...info.extra_columns.map((c) => [`x:${c}`, c])], state.title);
  }
  $("mode-label").hidden = info.count < LARGE && !state.mode;
  normalise();
  if (info.attributions.length) {
    $("credits").textContent = info.attributions.join(" · ");
    $("credits").hidden = false;
  }
  syncControls();
  firstPage.catch((error) => showError(error.message));
  api("/api/categories").then(({ categories }) => {
    const options = [["", "All categories"], ...categories.map((c) => {
      const depth = c.name.split("/").length - 1;
      const label = `${"\u2003".repeat(depth)}${c.name.split("/").pop()} (${c.count.toLocaleString("en")})`;
      return [c.name, label];
    })];
    categoryNames = new Set(categories.map((c) => c.name));
    fillSelect($("category"), options, state.cat);
    if (state.cat && !categoryNames.has(state.cat)) {
      const keep = $("notice").textContent;
      normalise();
      if (keep) showNotice(`${keep} ${$("notice").textContent}`);
    }
  }).catch(() => {});
  update();
}

start();
