// Two copies side by side at the same scale (the second drawn at the first's size), zoomed
// together and panned together, or the second drawn over the first with
// `mix-blend-mode: difference`: where they are the same the picture is black.

import { $, formatSize } from "./dom.js";

let returnTo = null;
let syncing = false;

function caption(image) {
  return [formatSize(image), image.format || "?", image.path].filter(Boolean).join(" · ");
}

/** Size both canvases: `zoom` times the pane's width, the first image's aspect ratio. */
function layout() {
  const first = $("compare-a");
  const zoom = Number($("compare-zoom").value);
  const pane = $("compare-pane-a");
  const aspect = first.naturalWidth ? first.naturalHeight / first.naturalWidth : 1;
  const fit = Math.min(pane.clientWidth, pane.clientHeight / aspect);
  const width = Math.max(1, Math.floor(fit * zoom));
  for (const id of ["compare-canvas-a", "compare-canvas-b"]) {
    $(id).style.width = `${width}px`;
    $(id).style.height = `${Math.round(width * aspect)}px`;
  }
  $("compare").dataset.scale = String(zoom);
}

function setDifference(on) {
  $("compare-diff").checked = on;
  $("compare-panes").classList.toggle("difference", on);
  // in difference mode the second image is drawn over the first, in the first's pane
  $("compare-over").hidden = !on;
  $("compare-fig-b").hidden = on;
  $("compare").dataset.difference = on ? "on" : "off";
}

/** Open the comparison of two group members (records of /api/duplicates). */
export function openCompare(a, b) {
  returnTo = document.activeElement;
  $("compare-title").textContent = `#${a.id} and #${b.id}`;
  $("compare-a").src = `/api/images/${a.id}/display`;
  $("compare-b").src = `/api/images/${b.id}/display`;
  $("compare-over").src = `/api/images/${b.id}/display`;
  $("compare-a-caption").textContent = caption(a);
  $("compare-b-caption").textContent = caption(b);
  $("compare-zoom").value = "1";
  setDifference(false);
  $("compare").hidden = false;
  $("compare").focus();
  Promise.all(["compare-a", "compare-b"].map((id) => $(id).decode().catch(() => {})))
    .then(() => { layout(); $("compare").dataset.loaded = "yes"; });
}

export function closeCompare() {
  $("compare").hidden = true;
  delete $("compare").dataset.loaded;
  returnTo?.focus?.();
}

export function compareOpen() { return !$("compare").hidden; }

/** Keys while the comparison is open: Esc closes, D the difference, + and - zoom. */
export function compareKey(e) {
  if (e.key === "Escape") closeCompare();
  else if (e.key === "d" || e.key === "D") setDifference(!$("compare-diff").checked);
  else if (e.key === "+" || e.key === "-") {
    const select = $("compare-zoom");
    select.selectedIndex = Math.max(0, Math.min(select.options.length - 1,
                                                select.selectedIndex + (e.key === "+" ? 1 : -1)));
    layout();
  } else return false;
  return true;
}

/** Scrolling one pane scrolls the other to the same place. */
function panTogether(from, to) {
  from.addEventListener("scroll", () => {
    if (syncing) return;
    syncing = true;
    to.scrollLeft = from.scrollLeft;
    to.scrollTop = from.scrollTop;
    requestAnimationFrame(() => { syncing = false; });
  });
}

export function bindCompare() {
  $("compare-close").addEventListener("click", closeCompare);
  $("compare-zoom").addEventListener("change", layout);
  $("compare-diff").addEventListener("change", (e) => setDifference(e.target.checked));
  panTogether($("compare-pane-a"), $("compare-pane-b"));
  panTogether($("compare-pane-b"), $("compare-pane-a"));
  window.addEventListener("resize", () => { if (compareOpen()) layout(); });
}
