// The look-alikes shown, downloaded as CSV or JSON: the record fields the API lists
// (/api/collection `record_fields`) in its order, then any other field (a table's columns).

import { $, saveBlob } from "./dom.js";
import { state } from "./state.js";

function download(name, type, text) {
  saveBlob(name, new Blob([text], { type }));
}

function csvCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return String(value);
  const text = String(value);
  return /[",\n\r]/.test(text) || text.trim() !== text ? `"${text.replace(/"/g, '""')}"` : text;
}

function exportName(ext) {
  const first = state.result?.references?.[0]?.name || "lookalikes";
  return `lookalikes-${first}.${ext}`.replace(/[^\w.-]+/g, "_");
}

export function toCsv(neighbors) {
  const fields = state.info?.record_fields ?? [];
  const extra = [...new Set(neighbors.flatMap(Object.keys))].filter((f) => !fields.includes(f));
  const columns = [...fields, ...extra];
  const lines = [columns.join(",")];
  for (const n of neighbors) lines.push(columns.map((c) => csvCell(n[c])).join(","));
  return lines.join("\n") + "\n";
}

export function bindExport() {
  $("export-json").addEventListener("click", () => {
    if (state.result) download(exportName("json"), "application/json",
                               JSON.stringify(state.result.neighbors, null, 2) + "\n");
  });
  $("export-csv").addEventListener("click", () => {
    if (state.result) download(exportName("csv"), "text/csv", toCsv(state.result.neighbors));
  });
}
