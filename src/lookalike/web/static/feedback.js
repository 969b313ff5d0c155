// The user's judgement on the look-alikes: each one can be marked ✓ ("more like this") or ✗
// ("not like this"). ✗ alone makes it a negative reference (images near it drop down the
// list); any ✓ refines the list (Collection.refine of the references and the ✓ images
// against the ✗ ones). Each mark asks again at once; the marks are listed above the
// look-alikes, can be undone, and stay in the address (&like=1,2&unlike=3).

import { thumbUrl } from "./api.js";
import { $, button } from "./dom.js";
import { go, state } from "./state.js";

const SIDES = {
  like: { sign: "✓", label: "More like this", other: "unlike" },
  unlike: { sign: "✗", label: "Not like this", other: "like" },
};

let refresh = () => {};

/** `ask` asks for the look-alikes again once the marks changed. */
export function bindFeedback(ask) {
  refresh = ask;
  $("clear-marks").addEventListener("click", () => setMarks([], []));
}

async function setMarks(like, unlike) {
  go({ like, unlike }, { push: true });
  await refresh();
}

/** Mark image `id` on `side` ("like" or "unlike"); marked there already: undo the mark. */
export function mark(id, side) {
  const v = state.view;
  const other = SIDES[side].other;
  const on = v[side].includes(id) ? v[side].filter((i) => i !== id) : [...v[side], id];
  const off = v[other].filter((i) => i !== id);
  return side === "like" ? setMarks(on, off) : setMarks(off, on);
}

/** The marks when the references change: a plain new reference starts over; one added to
 *  them (`id`) is no longer marked. */
export function marksFor(refs, keep) {
  if (!keep) return { like: [], unlike: [] };
  const v = state.view;
  return { like: v.like.filter((i) => !refs.includes(i)),
           unlike: v.unlike.filter((i) => !refs.includes(i)) };
}

/** The ✓ and ✗ buttons of look-alike `n` (they take keyboard focus like any button). */
export function markButtons(n) {
  const box = document.createElement("span");
  box.className = "marks";
  for (const side of ["like", "unlike"]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = `mark ${side}`;
    b.textContent = SIDES[side].sign;
    b.title = side === "like" ? "More like this: refine the look-alikes with it"
      : "Not like this: images near it drop down the list";
    b.setAttribute("aria-label", `${SIDES[side].label}: ${n.name}`);
    b.addEventListener("click", async (e) => {
      e.stopPropagation();          // not a walk to this look-alike
      const at = [...$("neighbors").children].indexOf(box.closest("li"));
      await mark(n.id, side);
      // the keyboard stays where it was: the same button of the look-alike now in this place
      const items = $("neighbors").querySelectorAll("li[data-id]");
      if (document.activeElement === document.body && items.length) {
        items[Math.min(at, items.length - 1)].querySelector(`.mark.${side}`)?.focus();
      }
    });
    box.appendChild(b);
  }
  return box;
}

/** A look-alike's distance to the nearest ✗ image, when some are given (null: none). */
export function unlikeDistance(n) {
  if (n.unlike_distance == null) return null;
  const line = document.createElement("div");
  line.className = "sub unlike-distance";
  line.textContent = `✗ ${n.unlike_distance.toFixed(4)}`;
  line.title = `distance to the nearest image marked "not like this": ${n.nearest_unlike}`;
  return line;
}

/** What the marks did, for the line above the look-alikes ("" without marks). */
export function marksSummary(answer) {
  const like = answer.like?.length || 0;
  const unlike = answer.unlike?.length || 0;
  if (answer.refine) {
    return `refined (${answer.refine}) from ${like + answer.references.length} ✓` +
      (unlike ? `, ${unlike} ✗` : "");
  }
  return unlike ? `pushed away from ${unlike} ✗` : "";
}

/** The list of marked images above the look-alikes, each with its undo button. */
export function renderMarks(answer) {
  const like = answer?.upload ? [] : answer?.like || [];
  const unlike = answer?.upload ? [] : answer?.unlike || [];
  $("marks").hidden = !like.length && !unlike.length;
  const list = $("mark-list");
  list.replaceChildren();
  for (const [side, items] of [["like", like], ["unlike", unlike]]) {
    for (const item of items) {
      const li = document.createElement("li");
      li.className = side;
      li.dataset.id = String(item.id);
      li.title = `${SIDES[side].label}: ${item.name}${item.category ? ` — ${item.category}` : ""}`;
      const sign = document.createElement("span");
      sign.className = "sign";
      sign.textContent = SIDES[side].sign;
      const img = document.createElement("img");
      img.alt = item.name;
      img.src = thumbUrl(item.id, 48);
      const undo = button("×", "undo", "Undo this mark", () => mark(item.id, side));
      undo.setAttribute("aria-label", `Undo ${SIDES[side].sign} on ${item.name}`);
      li.append(sign, img, undo);
      list.appendChild(li);
    }
  }
}
