// The JSON API the viewer shows (see /docs): fetch wrappers and the addresses of its queries.

import { lookalikeCategory, state } from "./state.js";

/** The JSON answer of `path`; an Error with the API's own message (and `status`) if refused. */
export async function api(path, options = {}) {
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

/** A thumbnail at least `px` wide, at one of the collection's thumbnail sizes (so that the
 *  browser's cache serves a size step again); before /api/collection answers, `px` as it is
 *  (the server takes the next step itself). */
export function thumbUrl(id, px) {
  const steps = state.info?.thumbnail_sizes;
  const step = steps?.length ? steps.find((s) => s >= px) || steps[steps.length - 1] : px;
  return `/api/images/${id}/thumbnail?size=${step}`;
}

/** The grid's filter: its category, name and tag search, its sort, cluster and quality flag. */
function filterParams(extra = {}) {
  const p = new URLSearchParams(extra);
  const v = state.view;
  if (v.cat) p.set("category", v.cat);
  if (v.q) p.set("q", v.q);
  if (v.sort) p.set("sort", v.sort);
  if (v.cluster !== "") p.set("cluster", v.cluster);
  if (v.flag) p.set("flag", v.flag);
  if (v.tag) p.set("tag", v.tag);
  if (v.model && (v.sort || v.cluster !== "" || v.tag)) p.set("model", v.model);
  return p;
}

/** One page of the grid; among a lasso's selection (too many ids for an address) by POST. */
export function fetchImages(offset, limit) {
  const p = filterParams({ offset, limit });
  if (!state.view.sel.length) return api(`/api/images?${p}`);
  const body = Object.fromEntries(p);
  for (const key of ["offset", "limit"]) body[key] = Number(body[key]);
  if ("cluster" in body) body.cluster = Number(body.cluster);
  body.ids = state.view.sel;
  return api("/api/images", { method: "POST", body: JSON.stringify(body),
                              headers: { "Content-Type": "application/json" } });
}

/** What `analyze` found (/api/analysis), computed first if need be: `progress(text)` says
 *  so meanwhile. */
export async function fetchAnalysis(progress = () => {}) {
  for (;;) {
    const p = new URLSearchParams({ wait: "1" });
    if (state.view.model) p.set("model", state.view.model);
    const response = await fetch(`/api/analysis?${p}`);
    let answer = null;
    try { answer = await response.json(); } catch { /* not JSON */ }
    if (!response.ok) throw new Error(answer?.error || `${response.status} ${response.statusText}`);
    if (response.status === 200) return answer;
    progress(`${answer.progress}…`);
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

/** Where image `id` is in the grid as filtered now (null: the filter leaves it out). */
export async function fetchPosition(id) {
  if (state.view.sel.length) return null;  // a lasso's selection: show the whole collection
  return (await api(`/api/images/${id}/position?${filterParams()}`)).position;
}

/** The search the view asks for, as (name, value) pairs: k, metric (left to the server's
 *  default until the collection has said which it is), model, mode, references, category. */
function searchParams() {
  const v = state.view;
  const pairs = [["k", v.k]];
  if (v.metric) pairs.push(["metric", v.metric]);
  if (v.model) pairs.push(["model", v.model]);
  if (v.mode) pairs.push(["approximate", v.mode]);
  const category = lookalikeCategory();
  if (category) pairs.push(["category", category]);
  return pairs;
}

/** The look-alikes query of the view's references (also the key of the answer shown). */
export function neighborsQuery() {
  const p = new URLSearchParams();
  for (const r of state.view.refs) p.append("ref", r);
  for (const r of state.view.like) p.append("like", r);
  for (const r of state.view.unlike) p.append("unlike", r);
  for (const [name, value] of searchParams()) p.set(name, value);
  if (state.view.inc) p.set("include_references", "true");
  if (state.view.normalise) {  // the references' plates are known: not for uploads or texts
    p.set("normalise", state.view.normalise);
    if (state.view.controls) p.set("controls", state.view.controls);
  }
  return `/api/neighbors?${p}`;
}

/** The look-alikes of an image file, searched as the view asks. */
export function fetchUploadNeighbors(file, signal) {
  const form = new FormData();
  form.append("file", file, file.name);
  for (const [name, value] of searchParams()) form.append(name, value);
  return api("/api/neighbors/upload", { method: "POST", body: form, signal });
}

/** The images a text describes (the model's text tower), searched as the view asks. */
export function fetchTextNeighbors(text, signal) {
  const p = new URLSearchParams({ q: text });
  for (const [name, value] of searchParams()) p.set(name, value);
  return api(`/api/neighbors/text?${p}`, { signal });
}
