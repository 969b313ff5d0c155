// The display window of a 16-bit or float image in the preview: the low and high percentiles
// of its samples shown as black and white, rendered by the server (`window=LOW,HIGH` on the
// image routes). A window chosen is kept for the session and shows every such image previewed.

import { api } from "./api.js";
import { $ } from "./dom.js";

const KEPT = "lookalike.window";  // sessionStorage: "LOW,HIGH"
let offeredId = null;             // the previewed image the inputs are for

/** The window chosen in this session ("LOW,HIGH"), or null: the collection's. */
export function keptWindow() {
  try { return sessionStorage.getItem(KEPT); } catch { return null; }
}

/** The address of an image as the preview shows it: through the kept window, if any. */
export function displayUrl(id) {
  const kept = keptWindow();
  return `/api/images/${id}/display` + (kept ? `?window=${encodeURIComponent(kept)}` : "");
}

/** Show the previewed image again, through the kept window. */
function redraw() {
  if (offeredId !== null) $("preview-img").src = displayUrl(offeredId);
}

/** Bind the inputs once. */
export function initWindow() {
  const apply = () => {
    const low = Number($("window-low").value), high = Number($("window-high").value);
    const fine = $("window-low").value !== "" && $("window-high").value !== ""
      && low >= 0 && low < high && high <= 100;
    $("window-error").textContent = fine ? "" : "give a low below the high, both in 0-100";
    if (!fine) return;
    try { sessionStorage.setItem(KEPT, `${low},${high}`); } catch { /* kept for this image */ }
    redraw();
  };
  $("window-low").addEventListener("change", apply);
  $("window-high").addEventListener("change", apply);
  $("window-reset").addEventListener("click", () => {
    try { sessionStorage.removeItem(KEPT); } catch { /* nothing kept */ }
    showValues($("preview-window").dataset.collection);
    $("window-error").textContent = "";
    redraw();
  });
}

function showValues(window) {
  const [low, high] = window.split(",");
  $("window-low").value = low;
  $("window-high").value = high;
}

/** Offer the window inputs when image `id` has samples of more than 8 bits; `current()`
 *  says whether the preview still shows it when the answer comes. */
export async function offerWindow(id, current) {
  const box = $("preview-window");
  box.hidden = true;
  offeredId = null;
  let samples;
  try { samples = await api(`/api/images/${id}/samples`); } catch { return; }
  if (!current() || !samples.windowed) return;
  box.dataset.collection = samples.window.join(",");
  $("window-type").textContent = samples.type;
  showValues(keptWindow() || box.dataset.collection);
  $("window-error").textContent = "";
  offeredId = id;
  box.hidden = false;
}
