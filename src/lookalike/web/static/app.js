// The lookalike viewer: a grid of the collection, the look-alikes of the chosen references,
// a walk from look-alike to look-alike with browser history, uploads and a full-size preview.
// Everything it shows comes from the JSON API (see /docs).

import { VirtualGrid } from "./grid.js";

const $ = (id) => document.getElementById(id);
const THUMB_STEPS = [32, 64, 128, 256, 512, 1024];
const DEFAULTS = { refs: [], k: 10, metric: "cosine", model: "", mode: "", inc: false, cat: "",
                   q: "", size: 128, title: "category" };
const LARGE = 50000;             // from this many images the search mode can be chosen

let info = null;                 // /api/collection
let state = { ...DEFAULTS };     // what the URL says
let result = null;               // the last neighbours answer
let resultFor = "";              // the query it answers
let ranks = new Map();           // image id -> rank among the current look-alikes
let pending = null;              // AbortController of the neighbours request in flight
let preview = null;              // { list: () => items, index }

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
    openPreview(gridList(), hit.index);
    return;
  }
  choose(hit.item.id, event);
});
$("cells").addEventListener("dblclick", (event) => {
  const hit = grid.hit(event);
  if (hit) openPreview(gridList(), hit.index);
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
  return `/api/neighbors?${p}`;
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
  document.body.dataset.neighbors = "loading";
  try {
    const answer = await api(query, { signal: mine.signal });
    if (mine !== pending) return;
    resultFor = query;
    showResult(answer);
  } catch (error) {
    if (error.name === "AbortError") return;
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
  $("result-info").textContent = `${answer.neighbors.length} · ${metric}${
    info && Object.keys(info.models).length > 1 ? ` · ${answer.model}` : ""}`;
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
    const distance = document.createElement("span");
    distance.className = "distance";
    distance.textContent = n.distance.toFixed(4);
    distance.title = `${metric} distance ${n.distance}`;
    const zoom = document.createElement("button");
    zoom.type = "button";
    zoom.className = "zoom";
    zoom.title = "Preview";
    zoom.textContent = "⤢";
    li.append(rank, box, who, distance, zoom);
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

function refList(answer) {
  const refs = answer.references.filter((r) => !r.upload);
  return { length: () => refs.length, get: async (i) => refs[i] };
}

function neighborList(answer) {
  return { length: () => answer.neighbors.length, get: async (i) => answer.neighbors[i] };
}

function showError(text) {
  const box = $("message");
  box.textContent = text;
  box.className = "message error";
  box.hidden = false;
  document.body.dataset.neighbors = "error";
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
  $("category").value = state.cat;
  $("search").value = state.q;
  $("size").value = state.size;
  $("size-out").textContent = `${state.size} px`;
  $("title").value = state.title;
}

function onControl() {
  const k = Number.parseInt($("k").value, 10);
  if (!(k >= 1 && k <= 1000)) return;
  const model = $("model").value === info?.default_model ? "" : $("model").value;
  const uploaded = !!(history.state?.upload || result?.upload);
  go({ k, metric: $("metric").value, model, mode: $("mode").value, inc: $("include").checked });
  if (uploaded) {
    if (lastUpload) upload(lastUpload, { replace: true });
  } else {
    update();
  }
}
$("k").addEventListener("change", onControl);
$("metric").addEventListener("change", onControl);
$("model").addEventListener("change", onControl);
$("include").addEventListener("change", onControl);
$("mode").addEventListener("change", onControl);
$("controls").addEventListener("submit", (e) => { e.preventDefault(); onControl(); });

$("category").addEventListener("change", () => {
  go({ cat: $("category").value });
  grid.reset();
});
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
    showError(`${file.name}: not an image file`);
    return;
  }
  if (info && file.size > info.max_upload_bytes) {
    showError(`${file.name}: larger than ${formatBytes(info.max_upload_bytes)}, the upload limit`);
    return;
  }
  lastUpload = file;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("k", state.k);
  form.append("metric", state.metric);
  if (state.model) form.append("model", state.model);
  if (state.mode) form.append("approximate", state.mode);
  pending?.abort();
  pending = new AbortController();
  const mine = pending;
  document.body.dataset.neighbors = "loading";
  try {
    const answer = await api("/api/neighbors/upload", { method: "POST", body: form, signal: mine.signal });
    if (mine !== pending) return;
    answer.upload = true;
    answer.uploadUrl = URL.createObjectURL(file);
    const entry = { upload: { ...answer, uploadUrl: null } };
    state = { ...state, refs: [] };
    if (replace) history.replaceState(entry, "", urlOf(state));
    else history.pushState(entry, "", urlOf(state));
    resultFor = "";
    showResult(answer);
  } catch (error) {
    if (error.name !== "AbortError") showError(error.message);
  }
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
  else showError("drop an image file (JPEG, PNG, ...)");
});

// -- preview ---------------------------------------------------------------------------------

async function openPreview(list, index) {
  preview = { list, index };
  $("preview").hidden = false;
  await showPreview();
  $("preview-close").focus();
}

async function showPreview() {
  if (!preview) return;
  const { list, index } = preview;
  const item = await list.get(index);
  if (!item || preview?.index !== index) return;
  const img = $("preview-img");
  img.style.width = img.style.height = "";
  img.onload = () => {
    // Small images are enlarged (up to 1024 px) to fill the screen, never beyond it.
    const { naturalWidth: w, naturalHeight: h } = img;
    const scale = Math.min((innerWidth - 160) / w, (innerHeight - 140) / h, 1024 / Math.max(w, h));
    if (scale > 1) {
      img.style.width = `${Math.floor(w * scale)}px`;
      img.style.height = `${Math.floor(h * scale)}px`;
    }
  };
  img.src = thumbUrl(item.id, 1024);
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
  original.textContent = "original";
  const pick = document.createElement("a");
  pick.href = "#";
  pick.textContent = "use as reference (Enter)";
  pick.addEventListener("click", (e) => { e.preventDefault(); pickPreviewed(); });
  caption.append(path, original, "  ·  ", pick);
  $("preview-prev").disabled = index <= 0;
  $("preview-next").disabled = index >= list.length() - 1;
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
  closePreview();
  if (item) choose(item.id, null);
}

function closePreview() {
  preview = null;
  $("preview").hidden = true;
  $("preview-img").removeAttribute("src");
}

$("preview-prev").addEventListener("click", () => movePreview(-1));
$("preview-next").addEventListener("click", () => movePreview(1));
$("preview-close").addEventListener("click", closePreview);
$("preview").addEventListener("click", (e) => { if (e.target === $("preview")) closePreview(); });

document.addEventListener("keydown", (e) => {
  if (preview) {
    if (e.key === "Escape") closePreview();
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") movePreview(-1);
    else if (e.key === "ArrowRight" || e.key === "ArrowDown") movePreview(1);
    else if (e.key === "Enter") pickPreviewed();
    else return;
    e.preventDefault();
    return;
  }
  if (e.key === "Enter" && document.activeElement === $("grid")) {
    const index = grid.firstVisibleIndex();
    openPreview(gridList(), index);
  }
});

// -- start -------------------------------------------------------------------------------------

window.addEventListener("popstate", () => {
  const before = state;
  state = readUrl();
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
    fillSelect($("category"), options, state.cat);
  }).catch(() => {});
  update();
}

start();
