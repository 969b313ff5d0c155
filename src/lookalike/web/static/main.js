// The lookalike viewer: a grid of the collection, the look-alikes of the chosen references,
// a walk from look-alike to look-alike with browser history, uploads and a full-size preview.
// Everything it shows comes from the JSON API (see /docs). This module wires the others
// together and starts the page.

import { api } from "./api.js";
import { $, fillSelect } from "./dom.js";
import { bindCompare, compareKey, compareOpen } from "./compare.js";
import { bindDuplicates, syncDuplicatesView } from "./duplicates.js";
import { bindExport } from "./export.js";
import { bindFeedback } from "./feedback.js";
import { bindGrid, countText, grid, gridKey, showInGrid, syncGridControls } from "./gallery.js";
import { bindControls, choose, PLATE_COLUMN, showError, showLookalikes, showNotice,
         syncPanelControls } from "./panel.js";
import { bindMap, mapKey, syncMapView } from "./map.js";
import { initPreview, previewKey } from "./preview.js";
import { metricKey, readUrl, reloadView, rewriteUrl, setDefaults, state } from "./state.js";
import { bindTextSearch, searchText, syncTextSearch } from "./text.js";
import { bindUploads, upload } from "./upload.js";

const LARGE = 50000;             // from this many images the search mode can be chosen

function syncControls() {
  syncPanelControls();
  syncGridControls();
  syncTextSearch();
}

/** Ask again for the look-alikes shown (of the references, the uploaded file or the text). */
function refreshLookalikes() {
  syncTextSearch();
  if (history.state?.upload || state.result?.upload) {
    const last = state.lastUpload;
    if (last?.text) searchText(last.text, { replace: true });
    else if (last) upload(last, { replace: true });
  } else {
    showLookalikes();
  }
}

/** Make the view something the collection can show, and the address say what is shown: a
 *  metric, model, k, search mode or category in the address that cannot be shown falls back
 *  to the default, with a notice naming what was not understood. */
function normalise() {
  const { info, view } = state;
  const asked = new URLSearchParams(location.search);
  const fixed = [];
  const fallBack = (key, shown) => fixed.push(`${key} "${asked.get(key)}" (showing ${shown})`);
  if (info) {
    const metric = info.metrics.find((m) => metricKey(m) === metricKey(view.metric));
    if (metric) view.metric = metricKey(metric);
    else {
      view.metric = metricKey(info.defaults.metric);
      fallBack("metric", info.defaults.metric);
    }
    if (view.model && !(view.model in info.models)) {
      view.model = "";
      fallBack("model", info.default_model);
    }
    if (view.model === info.default_model) view.model = "";
    if (view.normalise && !view.normalise.split(",").every(
      (c) => info.extra_columns?.includes(c.trim()))) {
      fallBack("normalise", "not normalised");
      view.normalise = "";
      view.controls = "";
    }
  }
  for (const key of ["k", "mode", "size"]) {
    if (asked.has(key) && asked.get(key) !== String(view[key])) {
      fallBack(key, key === "mode" ? "auto" : view[key]);
    }
  }
  if (state.categoryNames && view.cat && !state.categoryNames.has(view.cat)) {
    fallBack("cat", "all categories");
    view.cat = "";
    grid.reset();
  }
  showNotice(fixed.length ? `Not understood in the address: ${fixed.join(", ")}.` : "");
  rewriteUrl();
  syncControls();
}

/** The page's own defaults (index.html's controls), until the collection's arrive; the
 *  metric is left to the server meanwhile. */
function pageDefaults() {
  const size = $("size");
  return { k: Number($("k").defaultValue), metric: "", size: Number(size.defaultValue),
           sizeRange: [Number(size.min), Number(size.max)], kMax: Number($("k").max) };
}

/** The collection's facts: its defaults and thumbnail sizes, its metrics, models, table
 *  columns and credits. */
function adoptCollection(info) {
  state.info = info;
  if (!$("count").textContent) $("count").textContent = countText(info.count);  // grid not filled
  const sizes = info.thumbnail_sizes;
  const sizeBefore = state.view.size;
  setDefaults({ k: info.defaults.k, metric: metricKey(info.defaults.metric),
                size: info.defaults.thumbnail_size, sizeRange: [sizes[0], sizes[sizes.length - 1]] });
  $("size").min = String(sizes[0]);
  $("size").max = String(sizes[sizes.length - 1]);
  if (state.view.size !== sizeBefore) grid.setSize(state.view.size);
  fillSelect($("metric"), info.metrics.map((m) => [metricKey(m), m]), metricKey(state.view.metric));
  const models = Object.keys(info.models);
  fillSelect($("model"), models.map((m) => [m, m === info.default_model ? `${m} (default)` : m]),
             state.view.model || info.default_model);
  $("model-label").hidden = models.length < 2;
  if (info.extra_columns?.length) {  // a table's columns can title the images too
    fillSelect($("title"), [["category", "category"], ["name", "file name"],
                            ...info.extra_columns.map((c) => [`x:${c}`, c])], state.view.title);
  }
  $("mode-label").hidden = info.count < LARGE && !state.view.mode;
  $("normalise-box").hidden = !info.extra_columns?.includes(PLATE_COLUMN);
  if (info.attributions.length) {
    $("credits").textContent = info.attributions.join(" · ");
    $("credits").hidden = false;
  }
}

function loadCategories() {
  api("/api/categories").then(({ categories }) => {
    const options = [["", "All categories"], ...categories.map((c) => {
      const depth = c.name.split("/").length - 1;
      const label = `${"\u2003".repeat(depth)}${c.name.split("/").pop()} (${c.count.toLocaleString("en")})`;
      return [c.name, label];
    })];
    state.categoryNames = new Set(categories.map((c) => c.name));
    fillSelect($("category"), options, state.view.cat);
    if (state.view.cat && !state.categoryNames.has(state.view.cat)) {
      const keep = $("notice").textContent;
      normalise();
      if (keep) showNotice(`${keep} ${$("notice").textContent}`);
    }
  }).catch(() => {});
}

async function start() {
  setDefaults(pageDefaults());
  state.view = readUrl();
  grid.size = state.view.size;
  syncControls();
  if (state.view.dup) syncDuplicatesView();
  if (state.view.map) syncMapView();
  const collection = api("/api/collection");
  // the Map view first: the grid (hidden) is filled when it is shown
  const firstPage = state.view.map ? Promise.resolve() : grid.reset();
  gridFilled = !state.view.map;
  try {
    adoptCollection(await collection);
  } catch (error) {
    showError(error.message);
    return;
  }
  normalise();
  syncControls();
  firstPage.catch((error) => showError(error.message));
  loadCategories();
  showLookalikes();
}

// -- wiring ------------------------------------------------------------------------------------

initPreview({ choose, showInGrid, focusGridIndex: (index) => grid.focusIndex(index) });
bindGrid(refreshLookalikes);
bindControls(refreshLookalikes);
bindUploads();
bindTextSearch();
bindExport();
bindFeedback(showLookalikes);
bindCompare();
bindDuplicates();
bindMap();

document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  if (compareOpen()) {
    if (compareKey(e)) e.preventDefault();
    return;
  }
  if (state.view.dup) return;  // the Duplicates view: buttons and links, the browser's keys
  if (state.preview) {
    if (previewKey(e)) e.preventDefault();
    return;
  }
  if (state.view.map ? mapKey(e) : gridKey(e)) e.preventDefault();
});

/** The grid's source (filters, sort, selection) as the view says: start it over if changed. */
function gridChanged(before) {
  return ["cat", "q", "sort", "cluster", "flag", "tag"].some((key) => before[key] !== state.view[key])
    || before.sel.join(",") !== state.view.sel.join(",");
}

// a view changed by a link or button of another module (the Map view's; the lasso's filter
// changes the grid's source too)
let gridFilled = false;
function fillGrid(force = false) {
  if (state.view.map || (gridFilled && !force)) return;
  gridFilled = true;
  grid.reset().catch((error) => showError(error.message));
}

document.addEventListener("lookalike:view", (e) => {
  syncMapView();
  syncControls();
  fillGrid(Boolean(e.detail?.reset));
});

window.addEventListener("popstate", () => {
  const before = reloadView();
  if (before.dup || state.view.dup) syncDuplicatesView();
  if (before.map || state.view.map) syncMapView();
  normalise();
  if (gridChanged(before)) gridFilled = false;
  fillGrid();
  if (before.size !== state.view.size) grid.setSize(state.view.size);
  showLookalikes();
});

start();
