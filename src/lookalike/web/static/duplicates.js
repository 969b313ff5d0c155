// The Duplicates view (/?view=duplicates&tier=...): groups of copies from /api/duplicates,
// largest first, a page at a time as the list scrolls (10,000 groups open at once); each
// member with its dimensions, format, size, date and path; the keeper changed with one
// click, "not duplicates" with an undo (both kept in sessionStorage, so a reload keeps
// them), two members compared, and the decisions downloaded as CSV or a move script.

import { api, thumbUrl } from "./api.js";
import { openCompare } from "./compare.js";
import { $, button, formatBytes, formatSize, saveBlob } from "./dom.js";
import { go, state } from "./state.js";

const PAGE = 40;                 // groups asked for (and added to the page) at a time
const STORE = "lookalike-duplicates";

const view = { answer: null, loaded: 0, loading: null, generation: 0, groups: new Map() };

/** What this tab decided: chosen keepers {representative: id}, dismissed groups. */
function decided() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "{}");
    return { keep: saved.keep || {}, dismissed: saved.dismissed || [] };
  } catch {
    return { keep: {}, dismissed: [] };
  }
}

function remember(change) {
  sessionStorage.setItem(STORE, JSON.stringify({ ...decided(), ...change }));
}

/** The groups the address asks for, as the API takes them. */
function asked() {
  const body = {};
  if (state.view.tier) body.tier = state.view.tier;
  if (state.view.threshold !== "") body.threshold = Number(state.view.threshold);
  return body;
}

function post(path, body) {
  return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                       body: JSON.stringify(body) });
}

function status(text, undo = null) {
  const line = $("dup-status");
  line.replaceChildren(text);
  if (undo) {
    const again = button("Undo", "small-button", "", undo);
    again.id = "dup-undo";
    line.append(" ", again);
  }
  line.hidden = !text;
}

function summary() {
  const a = view.answer;
  if (!a) return;
  const n = a.groups_total;
  $("dup-summary").textContent = n
    ? `${n.toLocaleString("en")} group${n === 1 ? "" : "s"}, ${a.images_total.toLocaleString("en")} images; ` +
      `moving the copies not kept would free ${formatBytes(a.bytes_freed)}`
    : "No copies found.";
}

// -- painting a group ----------------------------------------------------------------------------

function describe(image) {
  const date = image.modified ? new Date(image.modified) : null;
  const when = date ? `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-` +
    `${String(date.getDate()).padStart(2, "0")}` : "";
  return [formatSize(image), image.format || "?", formatBytes(image.size), when]
    .filter(Boolean).join(" · ");
}

function member(group, image) {
  const li = document.createElement("li");
  li.className = "dup-member";
  li.dataset.id = String(image.id);
  const look = document.createElement("a");
  look.href = `/?ref=${image.id}`;
  look.className = "dup-thumb";
  look.title = "Its look-alikes";
  const img = document.createElement("img");
  img.loading = "lazy";
  img.alt = image.name;
  img.src = thumbUrl(image.id, 160);
  look.append(img);
  const keep = document.createElement("button");
  keep.type = "button";
  keep.className = "dup-keep small-button";
  keep.addEventListener("click", () => setKeeper(group, image.id));
  const pick = document.createElement("label");
  pick.className = "dup-pick check";
  pick.innerHTML = '<input type="checkbox"> compare';
  const facts = document.createElement("p");
  facts.className = "dup-facts";
  facts.textContent = `${describe(image)} · distance ${image.distance.toFixed(4)}`;
  facts.title = "Distance: the cosine distance to the group's first image";
  const path = document.createElement("p");
  path.className = "dup-path";
  path.textContent = image.path;
  path.title = image.path;
  li.append(look, keep, pick, facts, path);
  return li;
}

function paintKeeper(group) {
  for (const li of group.el.querySelectorAll(".dup-member")) {
    const kept = Number(li.dataset.id) === group.keep;
    li.classList.toggle("kept", kept);
    const keep = li.querySelector(".dup-keep");
    keep.textContent = kept ? "Kept" : "Keep this";
    keep.setAttribute("aria-pressed", String(kept));
  }
}

function paintGroup(group) {
  const li = document.createElement("li");
  li.className = "dup-group";
  li.dataset.group = String(group.group);
  li.dataset.rep = String(group.rep);
  const head = document.createElement("div");
  head.className = "dup-head";
  const title = document.createElement("h3");
  title.textContent = `Group ${group.group} · ${group.images.length} images`;
  const compare = button("Compare", "small-button dup-compare",
    "Compare the two members ticked (else the kept one and the nearest other)",
    () => compareIn(group));
  const not = button("Not duplicates", "small-button dup-not",
    "These are not copies of each other: never group them again", () => dismiss(group));
  head.append(title, compare, not);
  const list = document.createElement("ul");
  list.className = "dup-members";
  list.append(...group.images.map((image) => member(group, image)));
  li.append(head, list);
  group.el = li;
  paintKeeper(group);
  return li;
}

// -- what a person decides ------------------------------------------------------------------------

function setKeeper(group, id) {
  if (id === group.keep) return;
  const size = (i) => group.images.find((m) => m.id === i)?.size || 0;
  view.answer.bytes_freed += size(group.keep) - size(id);
  group.keep = id;
  remember({ keep: { ...decided().keep, [group.rep]: id } });
  paintKeeper(group);
  summary();
}

function compareIn(group) {
  const ticked = [...group.el.querySelectorAll(".dup-member")]
    .filter((li) => li.querySelector(".dup-pick input").checked).map((li) => Number(li.dataset.id));
  const ids = ticked.length === 2 ? ticked
    : [group.keep, group.images.find((m) => m.id !== group.keep).id];
  const [a, b] = ids.map((i) => group.images.find((m) => m.id === i));
  openCompare(a, b);
}

async function dismiss(group) {
  const ids = group.images.map((m) => m.id);
  const response = await post("/api/duplicates/not-duplicates", { ids });
  if (!response.ok) {
    status((await response.json()).error);
    return;
  }
  remember({ dismissed: [...decided().dismissed,
                         { group: group.group, ids, distances: group.images.map((m) => m.distance) }] });
  const a = view.answer;
  a.groups_total -= 1;
  a.images_total -= ids.length;
  a.bytes_freed -= group.images.filter((m) => m.id !== group.keep).reduce((s, m) => s + m.size, 0);
  group.el.remove();
  view.groups.delete(group.rep);
  summary();
  status(`Group ${group.group} marked as not duplicates.`, () => undo(ids));
}

async function undo(ids) {
  const response = await post("/api/duplicates/not-duplicates", { ids, undo: true });
  if (!response.ok) {
    status((await response.json()).error);
    return;
  }
  const key = ids.join(",");
  remember({ dismissed: decided().dismissed.filter((d) => d.ids.join(",") !== key) });
  status("");
  showDuplicates();
}

// -- loading ---------------------------------------------------------------------------------------

async function loadMore() {
  if (view.loading || (view.answer && view.loaded >= view.answer.groups_total)) return;
  const generation = view.generation;
  const body = { ...asked(), keep: decided().keep, offset: view.loaded, limit: PAGE };
  view.loading = api("/api/duplicates", { method: "POST", body: JSON.stringify(body),
                                          headers: { "Content-Type": "application/json" } });
  const poll = view.loaded ? null : setInterval(() => showProgress(generation), 1000);
  let answer;
  try {
    answer = await view.loading;
  } catch (error) {
    if (generation === view.generation) {
      $("dup-summary").textContent = "";
      status(error.message);
      document.body.dataset.duplicates = "error";
    }
    return;
  } finally {
    if (poll) clearInterval(poll);
    if (generation === view.generation) view.loading = null;
  }
  if (generation !== view.generation) return;
  if (!view.answer) view.answer = answer;
  const groups = answer.groups.map((g) => ({ ...g, rep: g.images[0].representative }));
  for (const g of groups) view.groups.set(g.rep, g);
  $("dup-groups").append(...groups.map(paintGroup));
  view.loaded += answer.groups.length;
  summary();
  document.body.dataset.duplicates = "shown";
  if (!answer.groups.length) view.loaded = view.answer.groups_total;
  else if (sentinelInView()) loadMore();
}

/** While the groups are computed: "checked N of M pairs" from /api/duplicates/progress. */
async function showProgress(generation) {
  let p;
  try {
    p = await api("/api/duplicates/progress");
  } catch {
    return;
  }
  if (generation !== view.generation || !view.loading || !p.computing || !p.total) return;
  $("dup-summary").textContent = `Finding copies… checked ${p.checked.toLocaleString()} of ` +
    `${p.total.toLocaleString()} pairs`;
}

function sentinelInView() {
  const box = $("duplicates").getBoundingClientRect();
  return $("dup-more").getBoundingClientRect().top < box.bottom + 400;
}

/** Show the view the address asks for, from its first page. */
export function showDuplicates() {
  view.generation += 1;
  view.answer = null;
  view.loaded = 0;
  view.loading = null;
  view.groups = new Map();
  $("dup-groups").replaceChildren();
  $("dup-tier").value = state.view.tier || "near";
  $("dup-threshold").value = state.view.threshold;
  $("dup-summary").textContent = "Finding copies… (on a large collection this takes a while)";
  document.body.dataset.duplicates = "loading";
  loadMore();
}

/** Show or hide the view as the address says. */
export function syncDuplicatesView() {
  const on = state.view.dup;
  $("duplicates").hidden = !on;
  document.querySelector("main").hidden = on;
  $("dup-link").setAttribute("aria-current", on ? "page" : "false");
  if (on) showDuplicates();
}

// -- exports -----------------------------------------------------------------------------------------

async function download(path, extra, name) {
  const { keep, dismissed } = decided();
  const response = await post(path, { ...asked(), keep, dismissed, ...extra });
  if (!response.ok) {
    status((await response.json()).error);
    return;
  }
  saveBlob(name, await response.blob());
}

export function bindDuplicates() {
  $("dup-link").addEventListener("click", (e) => {
    e.preventDefault();
    if (state.view.dup) return;
    go({ dup: true }, { push: true });
    syncDuplicatesView();
  });
  $("dup-controls").addEventListener("submit", (e) => {
    e.preventDefault();
    const tier = $("dup-tier").value;
    go({ tier: tier === "near" ? "" : tier, threshold: $("dup-threshold").value.trim() },
       { push: true });
    status("");
    showDuplicates();
  });
  $("dup-tier").addEventListener("change", () => $("dup-controls").requestSubmit());
  $("dup-csv").addEventListener("click", () => download("/api/duplicates/decisions.csv", {},
                                                        "duplicates.csv"));
  $("dup-move").addEventListener("submit", (e) => {
    e.preventDefault();
    download("/api/duplicates/move-script", { target: $("dup-target").value.trim() },
             "move-duplicates.sh");
  });
  $("duplicates").addEventListener("scroll", () => { if (sentinelInView()) loadMore(); },
                                   { passive: true });
}
