// The preview's "why?" toggle (W): on a look-alike, heat overlaid on it and on its reference,
// shown beside it, where each matches the other (GET /api/explain, Collection.explain).

import { api, thumbUrl } from "./api.js";
import { $ } from "./dom.js";
import { state } from "./state.js";

// Cold to hot: blue, yellow, red, as formats/explain_picture.py draws them.
const RAMP = [[40, 80, 255], [255, 220, 0], [230, 20, 20]];
const STRENGTH = 0.6;
let shown = "";  // "a,b" of the pair drawn

export function initExplain() {
  $("preview-why").addEventListener("click", toggleWhy);
}

/** The reference a look-alike was found from (its nearest), or null: no "why?" there. */
function referenceOf(item) {
  const refs = (state.result?.references || []).filter((r) => r.id && !r.upload);
  if (item?.rank === undefined || !refs.length || state.result?.upload) return null;
  return refs.find((r) => r.path === item.nearest_reference) || refs[0];
}

/** Called by the preview for each image it shows: offer the toggle, draw if it is on. */
export function showWhy(item) {
  const reference = referenceOf(item);
  const toggle = $("preview-why");
  toggle.hidden = !reference;
  toggle.setAttribute("aria-pressed", String(state.why));
  hideHeat();
  if (reference && state.why) drawWhy(reference, item);
}

export function toggleWhy() {
  if ($("preview-why").hidden) return;
  state.why = !state.why;
  const item = state.preview && state.preview.current;
  showWhy(item);
}

function hideHeat() {
  shown = "";
  $("preview-heat").hidden = true;
  $("why-reference").hidden = true;
  delete $("preview").dataset.why;
}

async function drawWhy(reference, item) {
  const pair = `${reference.id},${item.id}`;
  shown = pair;
  $("preview").dataset.why = "loading";
  const params = new URLSearchParams({ a: reference.id, b: item.id });
  if (state.result?.model) params.set("model", state.result.model);
  let answer;
  try {
    answer = await api(`/api/explain?${params}`);
  } catch (error) {
    if (shown !== pair) return;
    $("preview").dataset.why = "error";
    $("why-caption").textContent = `why? ${error.message}`;
    $("why-reference").hidden = false;
    return;
  }
  if (shown !== pair) return;  // the preview moved on meanwhile
  const [onReference, onItem] = answer.images;
  paint($("preview-heat"), onItem);
  $("preview-heat").hidden = false;
  fitHeat();
  const img = $("why-ref-img");
  img.src = thumbUrl(reference.id, 256);
  img.alt = reference.name;
  paint($("why-ref-heat"), onReference);
  $("why-caption").textContent =
    `reference ${reference.name} · distance ${answer.distance.toFixed(4)}`;
  $("why-reference").hidden = false;
  $("preview").dataset.why = "shown";
}

/** The heat grid on `canvas`, one pixel a cell; the browser's smoothing stretches it. */
function paint(canvas, image) {
  const rows = image.heat.length;
  const cols = image.heat[0].length;
  canvas.width = cols;
  canvas.height = rows;
  const pixels = new ImageData(cols, rows);
  image.heat.flat().forEach((h, i) => {
    const at = Math.min(h, 1) * (RAMP.length - 1);
    const low = Math.min(Math.floor(at), RAMP.length - 2);
    const t = at - low;
    for (let c = 0; c < 3; c++) {
      pixels.data[4 * i + c] = Math.round(RAMP[low][c] * (1 - t) + RAMP[low + 1][c] * t);
    }
    pixels.data[4 * i + 3] = Math.round(255 * STRENGTH * h);
  });
  canvas.getContext("2d").putImageData(pixels, 0, 0);
  canvas.dataset.peak = image.peak.map((v) => v.toFixed(3)).join(",");
}

/** Lay the look-alike's heat exactly over its image (called whenever the preview is sized). */
export function fitHeat() {
  const img = $("preview-img");
  const canvas = $("preview-heat");
  canvas.style.width = img.style.width || `${img.width}px`;
  canvas.style.height = img.style.height || `${img.height}px`;
}
