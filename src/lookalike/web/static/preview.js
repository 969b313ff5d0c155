// The full-size preview of an image of the grid or the panel: arrows move through the list it
// was opened from, Enter makes the image the reference, Z toggles fit / actual size, W shows
// why a look-alike matched its reference (explain.js).

import { $, formatBytes, formatSize, link } from "./dom.js";
import { fitHeat, initExplain, showWhy, toggleWhy } from "./explain.js";
import { api } from "./api.js";
import { state } from "./state.js";
import { displayUrl, initWindow, offerWindow } from "./window.js";

// What the preview asks of the rest of the page (set by main.js): make an image the
// reference, scroll the grid to it, put the keyboard focus back on a grid cell.
const actions = { choose: null, showInGrid: null, focusGridIndex: null };

export function initPreview({ choose, showInGrid, focusGridIndex }) {
  Object.assign(actions, { choose, showInGrid, focusGridIndex });
  $("preview-prev").addEventListener("click", () => movePreview(-1));
  $("preview-next").addEventListener("click", () => movePreview(1));
  $("preview-close").addEventListener("click", () => closePreview());
  $("preview-zoom").addEventListener("click", toggleZoom);
  initExplain();
  $("preview").addEventListener("click", (e) => {
    if (e.target === $("preview") || e.target === $("preview-stage")) closePreview();
  });
  window.addEventListener("resize", () => { if (state.preview) fitPreview(); });
  initWindow();
}

/** Preview item `index` of `list` ({length(), get(i) -> Promise<item>}). */
export async function openPreview(list, index, { fromGrid = false } = {}) {
  state.preview = { list, index, fromGrid, returnTo: document.activeElement };
  $("preview").hidden = false;
  // The dialog itself takes the focus, not a button in it: a button focused during the
  // Enter that opened the preview would be clicked by that same keystroke.
  $("preview").focus({ preventScroll: true });
  await showPreview();
}

async function showPreview() {
  if (!state.preview) return;
  const { list, index } = state.preview;
  const item = await list.get(index);
  if (!item || state.preview?.index !== index) return;
  state.preview.current = item;
  showWhy(item);
  const img = $("preview-img");
  img.onload = () => fitPreview();
  img.style.width = img.style.height = "";
  // The image as the browser can show it (a HEIC or TIFF as PNG/JPEG), at full size; a
  // 16-bit one through the display window chosen (window.js).
  img.src = displayUrl(item.id);
  offerWindow(item.id, () => state.preview?.index === index);
  img.alt = item.name;
  const caption = $("preview-caption");
  caption.replaceChildren();
  const parts = [];
  if (item.rank !== undefined) parts.push(`#${item.rank} · distance ${item.distance.toFixed(4)}`);
  parts.push([item.name, item.category].filter(Boolean).join(" — "));
  parts.push([formatSize(item), formatBytes(item.size)].filter(Boolean).join(" · "));
  caption.append(parts.join("   ·   "), document.createElement("br"));
  const columns = columnsText(item);
  if (columns) caption.append(columns, document.createElement("br"));
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
    await actions.showInGrid(id);
  });
  caption.append(path, original, "  ·  ", pick, "  ·  ", locate);
  showTags(item.id, index, caption);
  $("preview-prev").disabled = index <= 0;
  $("preview-next").disabled = index >= list.length() - 1;
}

/** The image's own columns (a table's, or its plate, well, field and channel), as
 *  "plate P1 · well B03 · field 2": from `extras` in a grid item, flat in a look-alike. */
function columnsText(item) {
  const names = state.info?.extra_columns || [];
  return names.map((c) => [c, item.extras ? item.extras[c] : item[c]])
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .slice(0, 12).map(([c, v]) => `${c} ${v}`).join(" · ");
}

/** The image's ImageNet tags under the caption, once the server says them (none: nothing). */
async function showTags(id, index, caption) {
  const model = state.view.model ? `?model=${encodeURIComponent(state.view.model)}` : "";
  const found = await api(`/api/images/${id}/tags${model}`).catch(() => null);
  if (!found?.tags.length || state.preview?.index !== index) return;
  const line = document.createElement("div");
  line.id = "preview-tags";
  line.className = "muted";
  line.textContent = "Tags: " + found.tags.map((t) => `${t.name} ${Math.round(t.score * 100)}%`)
    .join(", ");
  caption.append(line);
}

/** Size the previewed image: "fit" scales it to the window (pixelated when enlarged, so a
 *  small image stays sharp), "1:1" shows it pixel for pixel (scrolling when larger). */
function fitPreview() {
  const img = $("preview-img");
  const { naturalWidth: w, naturalHeight: h } = img;
  if (!w || !h) return;
  const actual = state.zoom === "1:1";
  const margin = innerWidth <= 800 ? 80 : 160;  // the arrows beside it (style.css)
  const scale = actual ? 1 : Math.min((innerWidth - margin) / w, (innerHeight - 140) / h);
  img.style.width = `${Math.max(1, Math.round(w * scale))}px`;
  img.style.height = `${Math.max(1, Math.round(h * scale))}px`;
  img.classList.toggle("enlarged", scale > 1);
  $("preview-stage").classList.toggle("actual", actual);
  $("preview-zoom").textContent = actual ? "fit" : "1:1";
  $("preview-zoom").setAttribute("aria-pressed", String(actual));
  img.dataset.scale = scale.toFixed(3);
  fitHeat();
}

function toggleZoom() {
  state.zoom = state.zoom === "fit" ? "1:1" : "fit";
  fitPreview();
}

function movePreview(step) {
  if (!state.preview) return;
  const next = state.preview.index + step;
  if (next < 0 || next >= state.preview.list.length()) return;
  state.preview.index = next;
  showPreview();
}

async function pickPreviewed() {
  const item = await state.preview?.list.get(state.preview.index);
  closePreview({ refocus: false });
  if (item) actions.choose(item.id, null);
}

function closePreview({ refocus = true } = {}) {
  const was = state.preview;
  state.preview = null;
  $("preview").hidden = true;
  $("preview-img").removeAttribute("src");
  showWhy(null);
  if (!refocus || !was) return;
  if (was.fromGrid) actions.focusGridIndex(was.index);  // back where the keyboard left off
  else if (was.returnTo?.isConnected) was.returnTo.focus({ preventScroll: true });
}

/** The preview's keys, while it is open: true if `e` was one of them. */
export function previewKey(e) {
  if (!state.preview) return false;
  if (e.target.closest?.("input") && e.key !== "Escape") return false;  // the window's inputs
  if (e.key === "Escape") closePreview();
  else if (e.key === "ArrowLeft" || e.key === "ArrowUp") movePreview(-1);
  else if (e.key === "ArrowRight" || e.key === "ArrowDown") movePreview(1);
  else if (e.key === "Enter" && !e.target.closest?.("button, a")) pickPreviewed();
  else if (e.key === "z" || e.key === "Z") toggleZoom();
  else if (e.key === "w" || e.key === "W") toggleWhy();
  else return false;
  return true;
}
