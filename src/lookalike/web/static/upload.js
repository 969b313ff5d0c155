// Looking up an image file that is not in the collection: chosen with the button or dropped
// anywhere on the page. Its look-alikes are kept in the history entry (Back shows them again).

import { fetchUploadNeighbors } from "./api.js";
import { $, formatBytes } from "./dom.js";
import { showError, showLoading, showResult } from "./panel.js";
import { abortRequest, beginRequest, clearResult, go, isCurrent, lookalikeCategory,
         state } from "./state.js";

/** Show the look-alikes of `file`; `replace`: in the current history entry (a control
 *  changed), else in a new one. */
export async function upload(file, { replace = false } = {}) {
  if (!file.type.startsWith("image/") && file.type) {
    uploadFailed(`${file.name}: not an image file; choose a JPEG, PNG, WebP, HEIC, ... image`);
    return;
  }
  const limit = state.info?.max_upload_bytes;
  if (limit && file.size > limit) {
    uploadFailed(`${file.name}: larger than ${formatBytes(limit)}, the upload limit`);
    return;
  }
  state.lastUpload = file;
  const category = lookalikeCategory();
  const mine = beginRequest();
  showLoading();
  try {
    const answer = await fetchUploadNeighbors(file, mine.signal);
    if (!isCurrent(mine)) return;
    answer.upload = true;
    answer.category = category;
    answer.uploadUrl = URL.createObjectURL(file);
    go({ refs: [] }, { push: !replace, entry: { upload: { ...answer, uploadUrl: null } } });
    state.resultFor = "";
    showResult(answer);
  } catch (error) {
    if (error.name !== "AbortError" && isCurrent(mine)) uploadFailed(error.message);
  }
}

/** A file that could not be looked up: say so where the look-alikes were, and take the
 *  earlier reference out of the view (Back shows it again). */
function uploadFailed(text) {
  abortRequest();
  if (state.view.refs.length || history.state?.upload) go({ refs: [], like: [], unlike: [] }, { push: true });
  clearResult();
  showError(text);
}

/** The file button, and dropping a file anywhere on the page. */
export function bindUploads() {
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) upload(file);
    $("file").value = "";
  });
  let dragDepth = 0;
  const hasFiles = (e) => [...(e.dataTransfer?.types || [])].includes("Files");
  window.addEventListener("dragenter", (e) => {
    if (!hasFiles(e)) return;
    dragDepth += 1;
    $("drop").hidden = false;
  });
  window.addEventListener("dragleave", (e) => {
    if (!hasFiles(e)) return;
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) $("drop").hidden = true;
  });
  window.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
  window.addEventListener("drop", (e) => {
    if (!hasFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    $("drop").hidden = true;
    const file = [...e.dataTransfer.files].find((f) => !f.type || f.type.startsWith("image/"));
    if (file) upload(file);
    else uploadFailed(`${e.dataTransfer.files[0]?.name || "that"}: not an image file; drop a JPEG, PNG, WebP, HEIC, ... image`);
  });
}
