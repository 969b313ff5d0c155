// The Map view (/?view=map&method=umap&color=cluster&at=x,y,zoom): every image a point of the
// collection's map (/api/map), drawn into the canvas's pixels from typed arrays in one pass
// per frame; pan (drag), zoom (wheel, pinch, + and - keys) around the pointer; points turn
// into thumbnails once few enough are on screen; hover names an image, a click walks as in
// the grid, the look-alikes shown are ringed; a lasso (shift-drag, or the lasso button)
// makes its images the references or the grid's filter. A map still being computed is
// polled for (202 "computing"), with PCA offered meanwhile. The points come as typed arrays
// (/api/map?format=binary). Level of detail: while the view moves (drag, wheel, keys) a fixed
// evenly spread subsample sized to keep a frame near LOD_MS is drawn, and every point once it rests
// (a drag released, or IDLE_MS without a move); hover, lasso and click always use every point.

import { api, fetchAnalysis, thumbUrl } from "./api.js";
import { $ } from "./dom.js";
import { choose, showLookalikes } from "./panel.js";
import { go, state, subscribe } from "./state.js";

const THUMBS_FROM = 300;          // points on screen at most for them to become thumbnails
const IN_FLIGHT = 8;              // thumbnails loading at once
const KEEP_THUMBS = 3000;         // decoded thumbnails kept
const CELLS = 128;                // the spatial index: CELLS x CELLS cells over the map
const HOVER_PX = 8;               // how near the pointer a point must be to be hovered
const MAX_REFS = 200;             // a lasso's references: the first this many (by id)
const POLL_MS = 1000;
const LOD_MS = 10;                // a frame's budget for points while the view moves
const LOD_FLOOR = 20000;          // a moving frame draws at least this many (or every) point
const IDLE_MS = 150;              // the view rests this long after a move: every point again
const BACKGROUND = 0xfffafafa;    // ABGR (ImageData on little-endian machines)
const GREY = 0xffc8c8c8;
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                 "#ff9da7", "#9c755f", "#7f3c8d", "#11a579", "#3969ac", "#f2b701", "#e73f74",
                 "#80ba5a", "#e68310", "#008695", "#cf1c90", "#f97b72", "#4b4b8f"]
  .map((hex) => abgr(Number.parseInt(hex.slice(1), 16)));

function abgr(rgb) {
  return (0xff000000 | ((rgb & 0xff) << 16) | (rgb & 0xff00) | (rgb >> 16)) >>> 0;
}

/** Blue (usual) to red (unusual) through yellow, t in 0..1. */
function ramp(t) {
  const stops = [[49, 54, 149], [116, 173, 209], [254, 224, 144], [244, 109, 67], [165, 0, 38]];
  const at = Math.min(stops.length - 1.001, Math.max(0, t) * (stops.length - 1));
  const i = Math.floor(at);
  const f = at - i;
  const c = stops[i].map((v, k) => Math.round(v + f * (stops[i + 1][k] - v)));
  return abgr((c[0] << 16) | (c[1] << 8) | c[2]);
}

const map = {
  key: "",                    // method/model of the points loaded
  n: 0, ids: null, xs: null, ys: null, category: null, categories: [],  // ids: sorted
  colour: null, order: null,  // Uint32 colour per point; drawing order (last on top)
  coloured: "",               // what `colour` is by
  cx: 0, cy: 0, scale: 1, fit: 1,
  w: 0, h: 0, dpr: 1, pixels: null, words: null,
  cells: null,                // { x0, y0, cw, ch, start, items }
  selected: null,             // Int32Array of point indices (a lasso), or null
  lasso: null,                // [[x, y], ...] screen points while drawing one
  lassoMode: false,
  thumbs: new Map(),          // id -> Image (loaded or loading), oldest first
  loading: 0, wanted: [],
  thumbsFrom: THUMBS_FROM,
  thumbsDrawn: 0, pointsDrawn: 0, frames: 0,
  moving: false, idle: 0, idleMs: IDLE_MS, held: false,  // level of detail (see the top)
  budget: 0,                  // a moving frame's points (0: not measured yet), see steer()
  movingPoints: 0,            // the same, set by a test (0: measured)
  lod: null,                  // Map: subsample size -> point indices in drawing order
  frame: 0, poll: 0, generation: 0, painted: false, hovered: -1, names: new Map(),
};

// -- loading -----------------------------------------------------------------------------------

function status(text, offerPca = false) {
  $("map-status-text").textContent = text;
  $("map-pca").hidden = !offerPca;
  $("map-status").hidden = !text;
}

/** Load the map the view asks for (polling while it is computed), then draw it. */
async function load() {
  const method = state.view.method || "umap";
  const key = `${method}/${state.view.model}`;
  if (key === map.key) return;
  const generation = ++map.generation;
  clearTimeout(map.poll);
  const p = new URLSearchParams({ method, wait: "1", format: "binary" });
  if (state.view.model) p.set("model", state.view.model);
  let answer;
  try {
    const response = await fetch(`/api/map?${p}`);
    const binary = response.headers.get("content-type")?.startsWith("application/octet-stream");
    answer = binary ? decode(await response.arrayBuffer()) : await response.json();
    if (!response.ok) throw new Error(answer?.error || response.statusText);
    if (generation !== map.generation) return;
    if (response.status === 202) {
      status(`${answer.progress}…`, method !== "pca");
      document.body.dataset.map = "computing";
      // asked again at once: the request itself waits up to a second for the map, so
      // that it is drawn as soon as it is ready rather than up to POLL_MS later
      map.poll = setTimeout(() => { if (generation === map.generation) load(); }, 20);
      return;
    }
  } catch (error) {
    if (generation !== map.generation) return;
    status(error.message);
    document.body.dataset.map = "error";
    return;
  }
  status(answer.method !== method ? `Laid out by ${answer.method.toUpperCase()} (too few images for ${method.toUpperCase()}).` : "");
  adopt(answer, key);
  await colourBy(state.view.color);
  fitView(state.view.at);
  draw();
  if (!map.painted) {
    map.painted = true;
    performance.mark("lookalike:map-painted");
  }
  document.body.dataset.map = "painted";
}

/** /api/map?format=binary: a uint32 header length, the JSON header, then its `arrays`
 *  (little-endian typed arrays, each starting on a multiple of its element size). */
function decode(buffer) {
  const length = new DataView(buffer).getUint32(0, true);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, length)));
  const types = { int32: Int32Array, float32: Float32Array, float64: Float64Array };
  let at = 4 + length;
  for (const [name, type, count] of header.arrays) {
    header[name] = new types[type](buffer, at, count);
    at += count * types[type].BYTES_PER_ELEMENT;
  }
  return header;
}

function adopt(answer, key) {
  const n = answer.ids.length;
  map.key = key;
  map.n = n;
  map.ids = answer.ids instanceof Float64Array ? answer.ids : Float64Array.from(answer.ids);
  map.xs = answer.x instanceof Float32Array ? answer.x : Float32Array.from(answer.x);
  map.ys = answer.y instanceof Float32Array ? answer.y : Float32Array.from(answer.y);
  map.category = answer.category instanceof Int32Array ? answer.category : Int32Array.from(answer.category);
  map.categories = answer.categories;
  map.colour = new Uint32Array(n);
  map.order = null;
  map.coloured = "";
  map.selected = null;
  map.lod = null;
  map.budget = 0;
  buildCells();
}

/** The point of image `id` (ids are sorted: a binary search), or -1. */
function indexOf(id) {
  const ids = map.ids;
  let lo = 0, hi = map.n - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ids[mid] < id) lo = mid + 1;
    else if (ids[mid] > id) hi = mid - 1;
    else return mid;
  }
  return -1;
}

/** The spatial index: point indices bucketed by cell (counting sort), for hover and lasso. */
function buildCells() {
  const { n, xs, ys } = map;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
    y0 = Math.min(y0, ys[i]); y1 = Math.max(y1, ys[i]);
  }
  if (!n) { x0 = y0 = 0; x1 = y1 = 1; }
  const cw = Math.max((x1 - x0) / CELLS, 1e-9), ch = Math.max((y1 - y0) / CELLS, 1e-9);
  const cellOf = new Int32Array(n);
  const start = new Int32Array(CELLS * CELLS + 1);
  for (let i = 0; i < n; i++) {
    const cx = Math.min(CELLS - 1, Math.floor((xs[i] - x0) / cw));
    const cy = Math.min(CELLS - 1, Math.floor((ys[i] - y0) / ch));
    cellOf[i] = cy * CELLS + cx;
    start[cellOf[i] + 1]++;
  }
  for (let c = 0; c < CELLS * CELLS; c++) start[c + 1] += start[c];
  const fill = start.slice(0, -1);
  const items = new Int32Array(n);
  for (let i = 0; i < n; i++) items[fill[cellOf[i]]++] = i;
  map.cells = { x0, y0, x1, y1, cw, ch, start, items };
}

/** Point indices in the map rectangle [ax, bx] x [ay, by] (data units), to `visit`. */
function inRect(ax, ay, bx, by, visit) {
  const { x0, y0, cw, ch, start, items } = map.cells;
  const clamp = (v) => Math.min(CELLS - 1, Math.max(0, v));
  const cx0 = clamp(Math.floor((ax - x0) / cw)), cx1 = clamp(Math.floor((bx - x0) / cw));
  const cy0 = clamp(Math.floor((ay - y0) / ch)), cy1 = clamp(Math.floor((by - y0) / ch));
  for (let cy = cy0; cy <= cy1; cy++) {
    for (let cx = cx0; cx <= cx1; cx++) {
      const c = cy * CELLS + cx;
      for (let k = start[c]; k < start[c + 1]; k++) visit(items[k]);
    }
  }
}

// -- colours -----------------------------------------------------------------------------------

async function duplicateGroups() {
  for (;;) {
    const response = await fetch("/api/map/duplicates?compute=true");
    const answer = await response.json();
    if (!response.ok) throw new Error(answer?.error || response.statusText);
    if (response.status === 200) return answer;
    status(`${answer.progress}…`);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Colour the points by "category", "cluster", "outlier" or "duplicates". */
async function colourBy(by) {
  const { n, colour } = map;
  if (!n || map.coloured === by) return;
  const generation = map.generation;
  let order = null;
  try {
    if (by === "cluster" || by === "outlier") {
      const found = await fetchAnalysis(status);
      if (generation !== map.generation) return;
      colour.fill(GREY);
      const at = found.ids.map(indexOf);
      if (by === "cluster") {
        at.forEach((i, k) => {
          if (i >= 0 && found.cluster[k] >= 0) colour[i] = PALETTE[found.cluster[k] % PALETTE.length];
        });
      } else {
        const ranked = at.map((i, k) => [found.outlier[k], i]).filter(([, i]) => i >= 0)
          .sort((a, b) => a[0] - b[0]);
        ranked.forEach(([, i], r) => { colour[i] = ramp(r / Math.max(1, ranked.length - 1)); });
        order = Int32Array.from(ranked.map(([, i]) => i));  // the most unusual on top
      }
      map.clusters = found.clusters;
    } else if (by === "duplicates") {
      const found = await duplicateGroups();
      if (generation !== map.generation) return;
      colour.fill(GREY);
      const members = [];
      found.ids.forEach((id, k) => {
        const i = indexOf(id);
        if (i >= 0) { colour[i] = PALETTE[found.group[k] % PALETTE.length]; members.push(i); }
      });
      const member = new Uint8Array(n);
      for (const i of members) member[i] = 1;
      const rest = [];
      for (let i = 0; i < n; i++) if (!member[i]) rest.push(i);
      order = Int32Array.from([...rest, ...members]);
      status(`${found.groups.toLocaleString("en")} groups of copies (near tier) in colour.`);
    } else {
      for (let i = 0; i < n; i++) {
        const c = map.category[i];
        colour[i] = c < 0 ? GREY : PALETTE[c % PALETTE.length];
      }
    }
  } catch (error) {
    status(error.message);
    return;
  }
  if (by !== "duplicates") status("");
  map.order = order;
  map.lod = null;                           // the subsample follows the drawing order
  map.coloured = by;
  legend(by);
  document.body.dataset.mapColour = by;
  schedule();
}

function legend(by) {
  const list = $("map-legend");
  list.replaceChildren();
  const swatch = (colour, text) => {
    const li = document.createElement("li");
    const dot = document.createElement("span");
    dot.className = "swatch";
    dot.style.background = colour;
    li.append(dot, text);
    list.append(li);
  };
  const css = (c) => `rgb(${c & 0xff},${(c >> 8) & 0xff},${(c >> 16) & 0xff})`;
  if (by === "category") {
    map.categories.slice(0, 20).forEach((name, i) => swatch(css(PALETTE[i % PALETTE.length]), name));
  } else if (by === "cluster") {
    (map.clusters || []).slice(0, 20).forEach((c) => swatch(
      c.cluster < 0 ? css(GREY) : css(PALETTE[c.cluster % PALETTE.length]),
      c.cluster < 0 ? `in no cluster (${c.size})` : `cluster ${c.cluster} (${c.size})`));
  } else if (by === "outlier") {
    swatch(css(ramp(0)), "typical");
    swatch(css(ramp(1)), "most unusual");
  }
}

// -- geometry ----------------------------------------------------------------------------------

function resize() {
  const canvas = $("map-canvas");
  const box = canvas.parentElement.getBoundingClientRect();
  map.dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(box.width * map.dpr));
  const h = Math.max(1, Math.round(box.height * map.dpr));
  if (w === map.w && h === map.h) return;
  canvas.width = w;
  canvas.height = h;
  map.w = w;
  map.h = h;
  map.pixels = canvas.getContext("2d").createImageData(w, h);
  map.words = new Uint32Array(map.pixels.data.buffer);
  if (map.n) fitScale();
}

function fitScale() {
  const { x0, y0, x1, y1 } = map.cells;
  map.fit = 0.92 * Math.min(map.w / Math.max(x1 - x0, 1e-9), map.h / Math.max(y1 - y0, 1e-9));
  return [(x0 + x1) / 2, (y0 + y1) / 2];
}

/** Show the whole map, or the viewport of the address ("x,y,zoom"). */
function fitView(at = "") {
  resize();
  const [cx, cy] = fitScale();
  const parts = (at || "").split(",").map(Number);
  if (parts.length === 3 && parts.every(Number.isFinite) && parts[2] > 0) {
    [map.cx, map.cy] = parts;
    map.scale = map.fit * parts[2];
  } else {
    map.cx = cx;
    map.cy = cy;
    map.scale = map.fit;
  }
}

const toScreenX = (x) => (x - map.cx) * map.scale + map.w / 2;
const toScreenY = (y) => map.h / 2 - (y - map.cy) * map.scale;
const toMapX = (sx) => (sx - map.w / 2) / map.scale + map.cx;
const toMapY = (sy) => map.cy - (sy - map.h / 2) / map.scale;

/** Zoom by `factor` keeping the map point under (sx, sy) (device pixels) where it is. */
function zoomAt(factor, sx = map.w / 2, sy = map.h / 2) {
  const mx = toMapX(sx), my = toMapY(sy);
  map.scale = Math.min(map.fit * 20000, Math.max(map.fit / 4, map.scale * factor));
  map.cx = mx - (sx - map.w / 2) / map.scale;
  map.cy = my + (sy - map.h / 2) / map.scale;
  moved();
}

function panBy(dx, dy) {
  map.cx -= dx / map.scale;
  map.cy += dy / map.scale;
  moved();
}

let addressTimer = 0;
function moved() {
  map.moving = true;
  clearTimeout(map.idle);
  map.idle = setTimeout(rest, map.idleMs);
  schedule();
  clearTimeout(addressTimer);
  addressTimer = setTimeout(() => {
    const digits = Math.max(2, Math.ceil(Math.log10(map.scale + 1)) + 2);
    go({ at: `${map.cx.toFixed(digits)},${map.cy.toFixed(digits)},${(map.scale / map.fit).toFixed(3)}` });
  }, 300);
}

/** The view rests (a drag released, or no move for IDLE_MS): draw every point again. */
function rest() {
  clearTimeout(map.idle);
  if (!map.moving) return;
  map.moving = false;
  schedule();
}

// -- drawing -----------------------------------------------------------------------------------

/** How many points lie in the cells the view covers (at least those on screen). */
function inView() {
  const { x0, y0, cw, ch, start } = map.cells;
  const clamp = (v) => Math.min(CELLS - 1, Math.max(0, v));
  const cx0 = clamp(Math.floor((toMapX(0) - x0) / cw)), cx1 = clamp(Math.floor((toMapX(map.w) - x0) / cw));
  const cy0 = clamp(Math.floor((toMapY(map.h) - y0) / ch)), cy1 = clamp(Math.floor((toMapY(0) - y0) / ch));
  let count = 0;
  for (let cy = cy0; cy <= cy1; cy++) count += start[cy * CELLS + cx1 + 1] - start[cy * CELLS + cx0];
  return count;
}

/** A moving frame's budget of points, from the frame just drawn in `ms`: first what a full
 *  frame's time per point says fits in LOD_MS (collections of LOD_FLOOR points or more),
 *  then a step of sqrt(2) down when a moving frame took longer than LOD_MS, up when one
 *  drawn with the subsample took under 60 % of it (so that it settles). */
function steer(ms, sample, n) {
  if (!map.budget) {
    if (!sample && n >= LOD_FLOOR) map.budget = Math.max(LOD_FLOOR, (LOD_MS / ms) * n);
    return;
  }
  if (!map.moving) return;
  if (ms > LOD_MS) map.budget = Math.max(LOD_FLOOR, Math.min(map.budget, map.n) / Math.SQRT2);
  else if (sample && ms < 0.6 * LOD_MS) map.budget = Math.min(map.n, map.budget * Math.SQRT2);
}

/** While the view moves: the fixed subsample to draw (point indices in drawing order), or
 *  null when every point in view fits the frame's budget. Its size is the budget rounded
 *  down to a power of sqrt(2); each size's subsample is made once (a pass over the points)
 *  and kept until the points or their drawing order change. */
function movingSample() {
  const budget = map.movingPoints || map.budget;
  if (!budget || budget >= map.n || inView() <= budget) return null;
  const size = map.movingPoints || Math.round(2 ** (Math.floor(2 * Math.log2(budget)) / 2));
  if (!map.lod) map.lod = new Map();
  let lod = map.lod.get(size);
  if (!lod) {
    // golden-ratio hashing of the point index: an even spread, the same at every frame
    const below = (size / map.n) * 2 ** 32, order = map.order, picked = new Int32Array(map.n);
    let m = 0;
    for (let k = 0; k < map.n; k++) {
      const i = order ? order[k] : k;
      if (Math.imul(i, 0x9e3779b9) >>> 0 < below) picked[m++] = i;
    }
    lod = picked.slice(0, m);
    map.lod.set(size, lod);
  }
  return lod;
}

function schedule() {
  if (!map.frame) map.frame = requestAnimationFrame(draw);
}

function draw() {
  map.frame = 0;
  if (!map.n || $("map-view").hidden) return;
  resize();
  const { w, h, words, xs, ys, colour, n } = map;
  const sample = map.moving ? movingSample() : null;
  const started = performance.now();
  const sequence = sample || map.order, count = sample ? sample.length : n;
  words.fill(BACKGROUND);
  const zoom = map.scale / map.fit;
  const r = Math.max(2, Math.min(8, Math.round((1.5 + Math.log2(Math.max(1, zoom)) * 0.75) * map.dpr)));
  const half = r >> 1;
  const visible = [];
  let drawn = 0;
  const scale = map.scale, ox = w / 2 - map.cx * scale, oy = h / 2 + map.cy * scale;
  for (let k = 0; k < count; k++) {
    const i = sequence ? sequence[k] : k;
    const sx = (xs[i] * scale + ox) | 0;
    const sy = (oy - ys[i] * scale) | 0;
    if (sx < -half || sy < -half || sx >= w + half || sy >= h + half) continue;
    drawn++;
    if (visible.length <= map.thumbsFrom) visible.push(i);
    const c = colour[i];
    const xa = Math.max(0, sx - half), xb = Math.min(w, sx - half + r);
    for (let y = Math.max(0, sy - half), yb = Math.min(h, sy - half + r); y < yb; y++) {
      // a plain loop: for a few pixels, 10x faster than words.fill (its call dominates)
      for (let p = y * w + xa, e = y * w + xb; p < e; p++) words[p] = c;
    }
  }
  const ctx = $("map-canvas").getContext("2d");
  ctx.putImageData(map.pixels, 0, 0);
  steer(performance.now() - started, sample, n);
  map.pointsDrawn = drawn;
  map.thumbsDrawn = !sample && drawn <= map.thumbsFrom ? drawThumbnails(ctx, visible, drawn) : 0;
  drawMarks(ctx, r);
  map.frames++;
  $("map-canvas").dataset.points = String(drawn);
  $("map-canvas").dataset.detail = sample ? "moving" : "full";
  $("map-canvas").dataset.thumbnails = String(map.thumbsDrawn);
}

/** The thumbnails of the points on screen, sized by how much room each has; those not yet
 *  loaded are asked for (IN_FLIGHT at a time). Returns how many were drawn. */
function drawThumbnails(ctx, visible, count) {
  const room = Math.sqrt((map.w * map.h) / Math.max(1, count));
  const side = Math.max(24 * map.dpr, Math.min(160 * map.dpr, room * 0.6, map.scale * 0.04 * map.dpr + 40));
  const px = Math.round(side / map.dpr);
  let drawn = 0;
  map.wanted = [];
  for (const i of visible) {
    const id = map.ids[i];
    const image = map.thumbs.get(id);
    if (!image || image.px < px) {
      map.wanted.push([id, px]);
      if (!image?.complete) continue;
    }
    if (!image.complete || !image.naturalWidth) continue;
    const k = side / Math.max(image.naturalWidth, image.naturalHeight);
    const iw = image.naturalWidth * k, ih = image.naturalHeight * k;
    const sx = toScreenX(map.xs[i]), sy = toScreenY(map.ys[i]);
    ctx.drawImage(image, sx - iw / 2, sy - ih / 2, iw, ih);
    ctx.strokeStyle = `rgb(${map.colour[i] & 0xff},${(map.colour[i] >> 8) & 0xff},${(map.colour[i] >> 16) & 0xff})`;
    ctx.lineWidth = 2 * map.dpr;
    ctx.strokeRect(sx - iw / 2, sy - ih / 2, iw, ih);
    drawn++;
  }
  fetchThumbnails();
  return drawn;
}

function fetchThumbnails() {
  while (map.loading < IN_FLIGHT && map.wanted.length) {
    const [id, px] = map.wanted.shift();
    const known = map.thumbs.get(id);
    if (known && (known.px >= px || !known.complete)) continue;
    const image = new Image();
    image.px = px;
    map.loading++;
    const done = () => { map.loading--; schedule(); fetchThumbnails(); };
    image.addEventListener("load", done, { once: true });
    image.addEventListener("error", done, { once: true });
    image.src = thumbUrl(id, px);
    map.thumbs.delete(id);
    map.thumbs.set(id, image);
    if (map.thumbs.size > KEEP_THUMBS) map.thumbs.delete(map.thumbs.keys().next().value);
  }
}

/** Rings: the references (dark) and their look-alikes (by rank); the lasso's selection and
 *  the lasso being drawn. */
function drawMarks(ctx, r) {
  const ring = (i, radius, colour, width) => {
    ctx.beginPath();
    ctx.arc(toScreenX(map.xs[i]), toScreenY(map.ys[i]), radius, 0, 2 * Math.PI);
    ctx.strokeStyle = colour;
    ctx.lineWidth = width;
    ctx.stroke();
  };
  const d = map.dpr;
  if (map.selected && map.selected.length <= 20000) {
    ctx.fillStyle = "rgba(0,0,0,0.85)";
    for (const i of map.selected) {
      ctx.fillRect(toScreenX(map.xs[i]) - r / 2 - d, toScreenY(map.ys[i]) - r / 2 - d, r + 2 * d, r + 2 * d);
    }
  }
  for (const id of state.ranks.keys()) {
    const i = indexOf(id);
    if (i >= 0) ring(i, r + 4 * d, "#d62728", 2 * d);
  }
  for (const id of state.view.refs) {
    const i = indexOf(id);
    if (i >= 0) { ring(i, r + 7 * d, "#111", 3 * d); ring(i, r + 10 * d, "#fff", 2 * d); }
  }
  if (map.lasso && map.lasso.length > 1) {
    ctx.beginPath();
    ctx.moveTo(...map.lasso[0]);
    for (const p of map.lasso.slice(1)) ctx.lineTo(...p);
    ctx.closePath();
    ctx.fillStyle = "rgba(31,119,180,0.12)";
    ctx.fill();
    ctx.strokeStyle = "#1f77b4";
    ctx.lineWidth = 1.5 * d;
    ctx.stroke();
  }
}

// -- pointing ----------------------------------------------------------------------------------

function devicePoint(event) {
  const box = $("map-canvas").getBoundingClientRect();
  return [(event.clientX - box.left) * map.dpr, (event.clientY - box.top) * map.dpr];
}

/** The point nearest (sx, sy) within HOVER_PX, or -1. */
function pointAt(sx, sy) {
  if (!map.n) return -1;
  const reach = (HOVER_PX * map.dpr) / map.scale;
  const mx = toMapX(sx), my = toMapY(sy);
  let best = -1, bestD = reach * reach;
  inRect(mx - reach, my - reach, mx + reach, my + reach, (i) => {
    const d = (map.xs[i] - mx) ** 2 + (map.ys[i] - my) ** 2;
    if (d <= bestD) { best = i; bestD = d; }
  });
  return best;
}

async function hover(i, event) {
  const box = $("map-hover");
  map.hovered = i;
  if (i < 0) { box.hidden = true; return; }
  const id = map.ids[i];
  const img = $("map-hover-img");
  img.src = thumbUrl(id, 128);
  box.style.left = `${event.clientX + 14}px`;
  box.style.top = `${event.clientY + 14}px`;
  box.dataset.id = String(id);
  box.hidden = false;
  let name = map.names.get(id);
  if (name === undefined) {
    $("map-hover-name").textContent = "";
    try {
      const row = await api(`/api/images/${id}`);
      name = `${row.name}${row.category ? ` — ${row.category}` : ""}`;
      map.names.set(id, name);
    } catch { name = ""; }
  }
  if (map.hovered === i) $("map-hover-name").textContent = name;
}

function pointInPolygon(x, y, polygon) {
  let inside = false;
  for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a++) {
    const [xa, ya] = polygon[a], [xb, yb] = polygon[b];
    if ((ya > y) !== (yb > y) && x < ((xb - xa) * (y - ya)) / (yb - ya) + xa) inside = !inside;
  }
  return inside;
}

function finishLasso() {
  const polygon = map.lasso.map(([sx, sy]) => [toMapX(sx), toMapY(sy)]);
  map.lasso = null;
  if (polygon.length < 3) { schedule(); return; }
  const xs = polygon.map((p) => p[0]), ys = polygon.map((p) => p[1]);
  const chosen = [];
  inRect(Math.min(...xs), Math.min(...ys), Math.max(...xs), Math.max(...ys), (i) => {
    if (pointInPolygon(map.xs[i], map.ys[i], polygon)) chosen.push(i);
  });
  select(chosen);
}

function select(indices) {
  map.selected = indices.length ? Int32Array.from(indices) : null;
  const n = indices.length;
  $("map-selection").hidden = !n;
  $("map-selection-count").textContent = `${n.toLocaleString("en")} image${n === 1 ? "" : "s"} in the lasso`;
  $("map-refs").textContent = n > MAX_REFS ? `Make the first ${MAX_REFS} the references` : "Make them the references";
  schedule();
}

function selectedIds() {
  return [...(map.selected || [])].map((i) => map.ids[i]).sort((a, b) => a - b);
}

function bindPointer(canvas) {
  const pointers = new Map();
  let gesture = null;   // { kind: "pan" | "lasso" | "pinch", ... }
  canvas.addEventListener("pointerdown", (e) => {
    canvas.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, devicePoint(e));
    if (pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      gesture = { kind: "pinch", d: Math.hypot(a[0] - b[0], a[1] - b[1]), m: [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2] };
      map.lasso = null;
      return;
    }
    const at = devicePoint(e);
    if (e.shiftKey || map.lassoMode) {
      gesture = { kind: "lasso" };
      map.lasso = [at];
    } else {
      gesture = { kind: "pan", from: at, last: at, moved: 0 };
    }
  });
  canvas.addEventListener("pointermove", (e) => {
    const at = devicePoint(e);
    if (!pointers.has(e.pointerId)) {
      hover(pointAt(...at), e);
      return;
    }
    pointers.set(e.pointerId, at);
    if (gesture?.kind === "pinch" && pointers.size === 2) {
      const [a, b] = [...pointers.values()];
      const d = Math.hypot(a[0] - b[0], a[1] - b[1]);
      const m = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      panBy(m[0] - gesture.m[0], m[1] - gesture.m[1]);
      if (gesture.d > 0) zoomAt(d / gesture.d, ...m);
      gesture.d = d;
      gesture.m = m;
    } else if (gesture?.kind === "lasso") {
      map.lasso.push(at);
      schedule();
    } else if (gesture?.kind === "pan") {
      gesture.moved += Math.abs(at[0] - gesture.last[0]) + Math.abs(at[1] - gesture.last[1]);
      panBy(at[0] - gesture.last[0], at[1] - gesture.last[1]);
      gesture.last = at;
      $("map-hover").hidden = true;
    }
  });
  const end = (e) => {
    pointers.delete(e.pointerId);
    if (!pointers.size) rest();             // a drag or pinch released: every point again
    if (gesture?.kind === "lasso" && map.lasso) finishLasso();
    else if (gesture?.kind === "pan" && gesture.moved < 5 * map.dpr && e.type === "pointerup") {
      const i = pointAt(...devicePoint(e));
      if (i >= 0) choose(map.ids[i], e);      // the same walk as a click in the grid
    }
    if (!pointers.size || gesture?.kind !== "pinch") gesture = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  canvas.addEventListener("pointerleave", () => { $("map-hover").hidden = true; });
  canvas.addEventListener("wheel", (e) => {
    e.preventDefault();
    zoomAt(Math.exp(-e.deltaY * (e.deltaMode === 1 ? 0.05 : 0.0015)), ...devicePoint(e));
  }, { passive: false });
}

// -- the view ----------------------------------------------------------------------------------

/** The map's keys: + and - zoom, 0 shows the whole map, arrows pan, Esc ends a lasso
 *  selection. True if `e` was one of them. */
export function mapKey(e) {
  if (e.target.closest?.("input, select, textarea")) return false;
  const step = 60 * map.dpr;
  const keys = {
    "+": () => zoomAt(1.5), "=": () => zoomAt(1.5), "-": () => zoomAt(1 / 1.5),
    "0": () => { fitView(); moved(); },
    ArrowLeft: () => panBy(step, 0), ArrowRight: () => panBy(-step, 0),
    ArrowUp: () => panBy(0, step), ArrowDown: () => panBy(0, -step),
    Escape: () => select([]),
  };
  if (!(e.key in keys)) return false;
  keys[e.key]();
  return true;
}

/** Show or hide the Map view as the address says. */
export function syncMapView() {
  const on = state.view.map;
  $("map-view").hidden = !on;
  $("grid").hidden = on;
  $("map-link").setAttribute("aria-current", on ? "page" : "false");
  $("map-method").value = state.view.method || "umap";
  $("map-colour").value = state.view.color || "category";
  if (!on) return;
  load().then(() => {
    if (map.n) colourBy(state.view.color || "category");
  });
  schedule();
}

export function bindMap() {
  const canvas = $("map-canvas");
  bindPointer(canvas);
  new ResizeObserver(() => { if (map.n) { resize(); schedule(); } }).observe(canvas.parentElement);
  subscribe(schedule);                    // the look-alikes changed: ring them
  $("map-link").addEventListener("click", (e) => {
    e.preventDefault();
    if (state.view.map) return;
    go({ map: true, dup: false }, { push: true });
    document.dispatchEvent(new Event("lookalike:view"));
  });
  $("map-method").addEventListener("change", () => {
    go({ method: $("map-method").value, at: "" }, { push: true });
    load();
  });
  $("map-pca").addEventListener("click", () => {
    go({ method: "pca", at: "" }, { push: true });
    syncMapView();
  });
  $("map-colour").addEventListener("change", () => {
    go({ color: $("map-colour").value });
    colourBy($("map-colour").value);
  });
  $("map-lasso").addEventListener("click", () => {
    map.lassoMode = !map.lassoMode;
    $("map-lasso").setAttribute("aria-pressed", String(map.lassoMode));
    canvas.classList.toggle("lasso", map.lassoMode);
  });
  $("map-zoom-in").addEventListener("click", () => zoomAt(1.5));
  $("map-zoom-out").addEventListener("click", () => zoomAt(1 / 1.5));
  $("map-fit").addEventListener("click", () => { fitView(); moved(); });
  $("map-refs").addEventListener("click", () => {
    const ids = selectedIds().slice(0, MAX_REFS);
    if (!ids.length) return;
    go({ refs: ids }, { push: true });
    showLookalikes();
  });
  $("map-filter").addEventListener("click", () => {
    const ids = selectedIds();
    if (!ids.length) return;
    go({ sel: ids, map: false }, { push: true });
    document.dispatchEvent(new CustomEvent("lookalike:view", { detail: { reset: true } }));
  });
  $("map-unselect").addEventListener("click", () => select([]));
}

/** For tests and benchmarks: where an image's point is on the page (CSS pixels), the
 *  frames drawn, and a redraw now. */
window.lookalikeMap = {
  get points() { return map.n; },
  get pointsDrawn() { return map.pointsDrawn; },
  get thumbnailsDrawn() { return map.thumbsDrawn; },
  get frames() { return map.frames; },
  get zoom() { return map.scale / map.fit; },
  where(id) {
    const i = indexOf(id);
    if (i < 0) return null;
    const box = $("map-canvas").getBoundingClientRect();
    return [box.left + toScreenX(map.xs[i]) / map.dpr, box.top + toScreenY(map.ys[i]) / map.dpr];
  },
  zoomBy(factor) { zoomAt(factor); },
  /** Points on screen at most for them to be drawn as thumbnails (a test lowers it). */
  set thumbnailsFrom(n) { map.thumbsFrom = n; schedule(); },
  panBy(dx, dy) { panBy(dx * map.dpr, dy * map.dpr); },
  /** Draw now: every point, or (`moving`) as while the view moves. */
  drawNow(moving = false) {
    const was = map.moving;
    map.moving = moving;
    draw();
    map.moving = was;
  },
  /** Whether the view is moving (drawn with the subsample), and for tests: a moving frame's
   *  points (0: measured) and how long the view rests before every point is drawn again. */
  get moving() { return map.moving; },
  set movingPoints(n) { map.movingPoints = n; },
  set idleMs(ms) { map.idleMs = ms; },
};
