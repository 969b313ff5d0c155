// The grid of the collection: its cells painted (thumbnail, title, reference or rank badge),
// its filter, size and title controls, its keys, and "show in grid".

import { fetchAnalysis, fetchImages, fetchPosition, thumbUrl } from "./api.js";
import { $, formatSize } from "./dom.js";
import { VirtualGrid } from "./grid.js";
import { openPreview } from "./preview.js";
import { choose, showError, showNotice, syncPanelControls, syncWithin } from "./panel.js";
import { FLAGS, go, state, subscribe } from "./state.js";

/** The title under a thumbnail: its category, its file name, or a column of its table
 *  ("x:COLUMN", the extras of /api/images). */
function titleText(item) {
  const title = state.view.title;
  if (title === "name") return item.name || "";
  if (title.startsWith("x:")) {
    const value = item.extras?.[title.slice(2)];
    return value === null || value === undefined ? "" : String(value);
  }
  return (item.category ? item.category.split("/").pop() : item.name) || "";
}

function paintCell(el, item, px) {
  const img = VirtualGrid.part(el, "image");
  const title = VirtualGrid.part(el, "title");
  const badge = VirtualGrid.part(el, "badge");
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
  el.title = `${item.name}${item.category ? ` — ${item.category}` : ""}${formatSize(item) ? `  (${formatSize(item)})` : ""}`;
  const isRef = state.view.refs.includes(item.id) && !state.result?.upload;
  const rank = state.ranks.get(item.id);
  el.classList.toggle("ref", isRef);
  el.classList.toggle("near", !isRef && rank !== undefined);
  badge.hidden = !isRef && rank === undefined;
  badge.textContent = isRef ? "ref" : String(rank ?? "");
}

export const grid = new VirtualGrid($("grid"), {
  fetchPage: fetchImages,
  paintCell,
  onFirstPaint() {
    requestAnimationFrame(() => {
      performance.mark("lookalike:grid-painted");
      document.body.dataset.grid = "painted";
      watchFirstThumbnails();
    });
  },
  onRender(total) {
    if (!Array.isArray(grid.pages.get(0))) {  // nothing fetched yet (the Map view's grid)
      $("count").textContent = state.info ? countText(state.info.count) : "";
      return;
    }
    $("grid-empty").hidden = total > 0;
    $("count").textContent = countText(total);
  },
});

subscribe(() => grid.refresh());          // the look-alikes changed: mark them

export function countText(total) {
  const all = state.info?.count ?? total;
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

/** The grid's items as a list the preview walks through. */
function gridList() {
  return { length: () => grid.total, get: (i) => grid.itemsAround(i) };
}

/** The grid's controls (filters, size, titles) as the view says. */
export function syncGridControls() {
  $("category").value = state.view.cat;
  $("search").value = state.view.q;
  $("size").value = state.view.size;
  $("size-out").textContent = `${state.view.size} px`;
  $("title").value = state.view.title;
  $("sort").value = state.view.sort;
  if (state.view.cluster !== "" && !$("cluster").querySelector(`option[value="${state.view.cluster}"]`)) {
    loadClusters();
  }
  $("cluster").value = state.view.cluster;
  $("flag").value = state.view.flag;
  $("tag").value = state.view.tag;
  $("sel-chip").hidden = !state.view.sel.length;
  $("sel-count").textContent = state.view.sel.length.toLocaleString("en");
}

// -- sorts and filters from the analysis ------------------------------------------------------

const FLAG_NAMES = { low_information: "low information", odd_size: "odd size",
                     odd_aspect: "odd aspect" };

/** The clusters of the analysis (computed first if need be) as the cluster select's options. */
async function loadClusters() {
  const select = $("cluster");
  const found = await fetchAnalysis((text) => showNotice(text));
  showNotice("");
  const options = [["", "All clusters"], ...found.clusters.map((c) => [String(c.cluster),
    c.cluster < 0 ? `In no cluster (${c.size.toLocaleString("en")})`
      : `Cluster ${c.cluster} (${c.size.toLocaleString("en")})`])];
  select.replaceChildren(...options.map(([value, label]) => new Option(label, value)));
  select.value = state.view.cluster;
  return found;
}

/** Apply a change of the sort or a filter that reads the analysis (it is computed first). */
async function analysed(change, refresh) {
  try {
    if (change.sort || (change.cluster ?? "") !== "") await loadClusters();
  } catch (error) {
    showError(error.message);
    syncGridControls();
    return;
  }
  go(change, { push: true });
  syncGridControls();
  await grid.reset();
  if (state.view.only) refresh();
}

function bindFilters(refresh) {
  $("flag").replaceChildren(new Option("Any quality", ""),
                            ...FLAGS.map((f) => new Option(FLAG_NAMES[f] || f, f)));
  $("sort").addEventListener("change", () => analysed({ sort: $("sort").value }, refresh));
  $("cluster").addEventListener("change", () => {
    if ($("cluster").value === "find") {
      $("cluster").value = state.view.cluster;
      loadClusters().catch((error) => showError(error.message));
      return;
    }
    analysed({ cluster: $("cluster").value }, refresh);
  });
  $("flag").addEventListener("change", () => analysed({ flag: $("flag").value }, refresh));
  $("sel-clear").addEventListener("click", () => analysed({ sel: [] }, refresh));
}

/** Clicks and the header's controls; `refresh` asks again for the look-alikes shown (they
 *  follow the grid's category when restricted to it). */
export function bindGrid(refresh) {
  bindFilters(refresh);
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
  $("category").addEventListener("change", () => {
    const restricted = state.view.only;
    go({ cat: $("category").value });
    syncWithin();
    grid.reset();
    if (restricted) refresh();            // they follow the grid's category
  });
  let searchTimer = 0;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      go({ q: $("search").value.trim() });
      grid.reset();
    }, 200);
  });
  // tag words: a word that names no class is refused with the nearest names (shown)
  $("tag").addEventListener("change", () => {
    go({ tag: $("tag").value.trim() }, { push: true });
    grid.reset().catch((error) => showError(error.message));
  });
  $("size").addEventListener("input", () => {
    const size = Number($("size").value);
    $("size-out").textContent = `${size} px`;
    state.view.size = size;
    grid.setSize(size);
  });
  $("size").addEventListener("change", () => go({ size: Number($("size").value) }));
  $("title").addEventListener("change", () => {
    go({ title: $("title").value });
    grid.refresh();
  });
  $("show-in-grid").addEventListener("click", () => {
    const first = state.result?.references?.find((r) => !r.upload);
    if (first) showInGrid(first.id);
  });
}

/** The grid's keys: arrows move between images (up and down by a row), Home and End go to
 *  the first and last, Enter previews, Space makes the image the reference. True if `e` was
 *  one of them. */
export function gridKey(e) {
  const at = grid.focusedIndex();
  if (e.target !== $("grid") && at === null) return false;
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

/** Scroll the grid to an image (clearing a filter that leaves it out) and focus it. */
export async function showInGrid(id) {
  try {
    let position = await fetchPosition(id);
    if (position === null) {            // the filter leaves it out: show the whole collection
      go({ cat: "", q: "", sort: "", cluster: "", flag: "", tag: "", sel: [] });
      syncPanelControls();
      syncGridControls();
      await grid.reset();
      position = await fetchPosition(id);
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
