// Small helpers for building the page: element look-up, select options, links, byte counts.

export const $ = (id) => document.getElementById(id);

/** Replace a <select>'s options with (value, label) pairs, `selected` chosen. */
export function fillSelect(select, options, selected) {
  select.replaceChildren(...options.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    o.selected = value === selected;
    return o;
  }));
}

/** A button (type "button", not a form's submit) with its text, classes, tooltip and action. */
export function button(text, className, title, action) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  if (title) b.title = title;
  b.addEventListener("click", action);
  return b;
}

/** A link that runs `action` instead of going anywhere. */
export function link(text, action) {
  const a = document.createElement("a");
  a.href = "#";
  a.textContent = text;
  a.addEventListener("click", (e) => { e.preventDefault(); action(); });
  return a;
}

export function formatBytes(n) {
  if (n == null) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / (1 << 20)).toFixed(1)} MB`;
}

/** "640×480", or "" when the size is unknown (an image imported with its vector only). */
export function formatSize(item) {
  return item.width != null && item.height != null ? `${item.width}×${item.height}` : "";
}

/** Let the browser save `blob` as the file `name` (a download started from the page). */
export function saveBlob(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
