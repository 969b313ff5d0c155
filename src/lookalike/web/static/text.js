// Searching with a text: a box shown while the chosen model has a text tower of the user's (a
// CLIP-style pair; `text_models` in /api/collection). The answer is shown, and kept in the
// history entry, as an uploaded file's is: its reference is not an image of the collection.

import { fetchTextNeighbors } from "./api.js";
import { $ } from "./dom.js";
import { showError, showLoading, showResult } from "./panel.js";
import { abortRequest, beginRequest, clearResult, go, isCurrent, lookalikeCategory,
         state } from "./state.js";

/** Whether texts can search the model the view uses. */
function textSearchable() {
  const model = state.view.model || state.info?.default_model;
  return Boolean(model) && (state.info?.text_models || []).includes(model);
}

/** The text box, shown only for a model with a text tower. */
export function syncTextSearch() {
  $("text-search").hidden = !textSearchable();
}

/** Show the images `text` describes; `replace`: in the current history entry (a control
 *  changed), else in a new one. */
export async function searchText(text, { replace = false } = {}) {
  state.lastUpload = { text };
  const category = lookalikeCategory();
  const mine = beginRequest();
  showLoading();
  try {
    const answer = await fetchTextNeighbors(text, mine.signal);
    if (!isCurrent(mine)) return;
    answer.upload = true;                 // searched like an uploaded file: no reference id
    answer.category = category;
    go({ refs: [], like: [], unlike: [] }, { push: !replace, entry: { upload: answer } });
    state.resultFor = "";
    showResult(answer);
  } catch (error) {
    if (error.name === "AbortError" || !isCurrent(mine)) return;
    abortRequest();
    clearResult();
    showError(error.message);
  }
}

export function bindTextSearch() {
  $("text-search").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = $("text-query").value.trim();
    if (text) searchText(text);
  });
}
