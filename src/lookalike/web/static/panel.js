// The side panel: the references, the search controls, the look-alikes with their distance
// bars and notes, errors and notices; and the walk from reference to look-alike.

import { api, neighborsQuery, thumbUrl } from "./api.js";
import { $, button, formatBytes, formatSize } from "./dom.js";
import { markButtons, marksFor, marksSummary, renderMarks, unlikeDistance } from "./feedback.js";
import { openPreview } from "./preview.js";
import { beginRequest, clearResult, go, isCurrent, lookalikeCategory, metricKey, setResult,
         state } from "./state.js";

/** Plain click: this image is the reference. Shift/Ctrl/Cmd-click: add or remove it. */
export function choose(id, event) {
  const refs0 = state.view.refs;
  let refs;
  const adding = event && (event.shiftKey || event.ctrlKey || event.metaKey) && !state.result?.upload;
  if (adding) {
    refs = refs0.includes(id) ? refs0.filter((r) => r !== id) : [...refs0, id];
  } else {
    refs = [id];
  }
  go({ refs, ...marksFor(refs, adding) }, { push: true });
  showLookalikes();
}

/** Show the look-alikes the view asks for (asking the API unless they are shown already). */
export async function showLookalikes() {
  syncPanelControls();
  if (history.state?.upload) {            // an uploaded file's look-alikes, kept in history
    showResult(history.state.upload);
    return;
  }
  if (!state.view.refs.length) {
    clearResult();
    showResult(null);
    return;
  }
  const query = neighborsQuery();
  if (query === state.resultFor && state.result) { showResult(state.result); return; }
  const mine = beginRequest();
  showLoading();
  try {
    const category = lookalikeCategory();
    const answer = await api(query, { signal: mine.signal });
    if (!isCurrent(mine)) return;        // a later request superseded this one
    answer.category = category;
    state.resultFor = query;
    showResult(answer);
  } catch (error) {
    if (error.name === "AbortError" || !isCurrent(mine)) return;
    showError(error.message);
  }
}

/** What the panel says while an answer is on its way: the old one, if any, is marked stale
 *  and never labelled as what was asked for. */
export function showLoading() {
  document.body.dataset.neighbors = "loading";
  $("message").hidden = true;
  $("results").classList.add("stale");
  $("results").setAttribute("aria-busy", "true");
  const info = state.info;
  const model = info && Object.keys(info.models).length > 1
    ? ` · ${state.view.model || info.default_model}` : "";
  const metric = state.view.metric ? metricLabel(state.view.metric) : "";  // "": the server's
  $("result-info").textContent = ["loading", `${metric}${model}`, "look-alikes…"]
    .filter(Boolean).join(" ");
}

function metricLabel(key) {
  return state.info?.metrics.find((m) => metricKey(m) === metricKey(key)) || key;
}

export function showResult(answer) {
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
  renderMarks(answer);
  setResult(answer);                      // the grid marks them
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

/** A name over a line of detail (`sub`). */
function who(name, sub) {
  const box = document.createElement("div");
  box.className = "who";
  box.innerHTML = '<div class="name"></div><div class="sub"></div>';
  box.querySelector(".name").textContent = name;
  box.querySelector(".sub").textContent = sub;
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
    const outside = ref.upload || ref.text != null;  // not an image of the collection
    const box = frame(outside ? null : ref.id, several ? 96 : 144, ref.name);
    box.title = outside ? ref.name : `${ref.name}${ref.category ? ` — ${ref.category}` : ""}`;
    if (ref.upload && answer.uploadUrl) box.querySelector("img").src = answer.uploadUrl;
    if (ref.text != null) {               // a text: a sign for it instead of a picture
      box.classList.add("text-ref");
      box.replaceChildren("Aa");
    }
    if (!outside) box.addEventListener("click", () => openPreview(refList(answer), i));
    li.append(box);
    if (several) {
      const remove = button("×", "remove", "Remove this reference", () => {
        go({ refs: state.view.refs.filter((r) => r !== ref.id) }, { push: true });
        showLookalikes();
      });
      li.appendChild(remove);
    } else {
      li.appendChild(who(ref.name, ref.text != null ? `text, by ${answer.model}'s text tower`
        : ref.upload ? `uploaded file, ${formatBytes(ref.size)}`
        : [ref.category, formatSize(ref)].filter(Boolean).join(" · ")));
    }
    list.appendChild(li);
  });
}

function renderNeighbors(answer) {
  const list = $("neighbors");
  list.replaceChildren();
  const metric = answer.metric;
  const several = state.info && Object.keys(state.info.models).length > 1;
  $("result-info").textContent = [`${answer.neighbors.length} by ${metric}`,
    marksSummary(answer), several ? answer.model : "",
    answer.category ? `from ${answer.category}` : "", answer.normalised || ""]
    .filter(Boolean).join(" · ");
  renderNotes(answer.notes || []);
  const scale = distanceScale(metric, answer.neighbors);
  const refNames = referenceNames(answer);
  answer.neighbors.forEach((n, i) => {
    const li = document.createElement("li");
    li.dataset.id = String(n.id);
    if (state.view.refs.includes(n.id) && !answer.upload) li.classList.add("ref");
    const rank = document.createElement("span");
    rank.className = "rank";
    rank.textContent = `${n.rank}`;
    const box = frame(n.id, 64, n.name);
    const about = who(n.name, [n.category, formatSize(n)].filter(Boolean).join(" · "));
    if (refNames && n.nearest_reference != null) {
      const near = document.createElement("div");
      near.className = "sub nearest";
      near.textContent = `nearest to ${refNames.get(n.nearest_reference) ?? n.nearest_reference}`;
      near.title = `nearest reference: ${n.nearest_reference}`;
      about.appendChild(near);
    }
    const away = unlikeDistance(n);
    if (away) about.appendChild(away);
    li.append(rank, box, about, distanceElement(n.distance, metric, scale),
              ...(answer.upload ? [] : [markButtons(n)]), zoomButton());
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
  const positives = [...answer.references, ...(answer.like || [])];  // ✓ images count too
  if (positives.length < 2) return null;
  const count = new Map();
  for (const r of positives) count.set(r.name, (count.get(r.name) || 0) + 1);
  return new Map(positives.map((r) => [r.path,
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
  const refs = answer.references.filter((r) => !r.upload && r.text == null);
  return { length: () => refs.length, get: async (i) => refs[i] };
}

function neighborList(answer) {
  return { length: () => answer.neighbors.length, get: async (i) => answer.neighbors[i] };
}

/** An error, at the top of the panel where the look-alikes were (they are cleared: they
 *  would answer another question than the one that failed). */
export function showError(text) {
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
export function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

// -- controls ---------------------------------------------------------------------------------

/** The panel's controls as the view says. */
export function syncPanelControls() {
  const v = state.view;
  $("k").value = v.k;
  const metric = [...$("metric").options].find((o) => o.value === metricKey(v.metric));
  if (metric) $("metric").value = metric.value;
  if (v.model) $("model").value = v.model;
  $("mode").value = v.mode;
  $("include").checked = v.inc;
  $("normalise").checked = Boolean(v.normalise);
  $("norm-controls").value = v.controls;
  $("norm-controls").disabled = !v.normalise;
  $("norm-controls-label").classList.toggle("disabled", !v.normalise);
  syncWithin();
}

/** The column plates are normalised by, when the collection has it (else the control is
 *  not shown). */
export const PLATE_COLUMN = "plate";

/** "only from the grid's category": possible only while the grid shows one. */
export function syncWithin() {
  const cat = state.view.cat;
  $("within").checked = state.view.only;
  $("within").disabled = !cat;
  $("within-label").title = cat ? `Only look-alikes from ${cat}`
    : "Choose a category above the grid first";
  $("within-label").classList.toggle("disabled", !cat);
}

/** Each change of a control changes the view, then `refresh` asks for the look-alikes again. */
export function bindControls(refresh) {
  const onControl = () => {
    const k = Number.parseInt($("k").value, 10);
    if (!(k >= 1 && k <= state.kMax)) return;
    const model = $("model").value === state.info?.default_model ? "" : $("model").value;
    const normalise = $("normalise").checked ? PLATE_COLUMN : "";
    go({ k, metric: $("metric").value, model, mode: $("mode").value, inc: $("include").checked,
         only: $("within").checked, normalise,
         controls: normalise ? $("norm-controls").value.trim() : "" });
    refresh();
  };
  for (const id of ["k", "metric", "model", "include", "within", "mode", "normalise",
                    "norm-controls"]) {
    $(id).addEventListener("change", onControl);
  }
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); onControl(); });
}
