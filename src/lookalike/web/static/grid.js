// A virtualised grid of a very long list of images: only the rows in view (plus a margin)
// exist in the DOM, items are fetched a page at a time as they come into view, and cell
// elements are recycled, so 100,000 images scroll like 100.

const PAGE = 200;           // items per /api/images request
const MARGIN_ROWS = 2;      // rows kept beyond each edge of the view
const GAP = 10;
const PAD = 14;
const TITLE = 21;           // title line under a thumbnail

export class VirtualGrid {
  /**
   * @param {HTMLElement} scroller the scrolling element (holds the spacer and the cells layer)
   * @param {object} hooks  fetchPage(offset, limit) -> Promise<{total, items}>,
   *   paintCell(el, item, px) (the cell's parts: `VirtualGrid.part`), onFirstPaint(),
   *   onRender(total)
   */
  constructor(scroller, hooks) {
    this.scroller = scroller;
    this.spacer = scroller.querySelector("#spacer");
    this.layer = scroller.querySelector("#cells");
    this.hooks = hooks;
    this.size = 0;                // thumbnail size in CSS pixels: set before the first reset
    this.total = 0;
    this.pages = new Map();       // page number -> items (or a Promise while loading)
    this.cells = new Map();       // index -> element in the DOM
    this.pool = [];               // detached cells to reuse
    this.generation = 0;          // bumps when the filter changes: late pages are dropped
    this.painted = false;
    this.frame = 0;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => {
      const before = `${this.columns}/${this.left}`;
      this.layout();
      if (`${this.columns}/${this.left}` !== before) {  // the cells moved: place them again now
        this.clearCells();
        this.render();
      } else {
        this.schedule();
      }
    }).observe(scroller);
  }

  /** Start over with a new source of items (a filter changed). */
  async reset() {
    this.generation += 1;
    this.pages.clear();
    this.clearCells();
    this.scroller.scrollTop = 0;
    const first = await this.loadPage(0);
    if (first === null) return;
    this.layout();
    this.render();
  }

  setSize(px) {
    this.size = px;
    // Keep the first visible item in view when the geometry changes.
    const anchor = this.firstVisibleIndex();
    this.layout();
    this.clearCells();
    this.scroller.scrollTop = Math.floor(anchor / this.columns) * this.rowHeight;
    this.render();
  }

  refresh() {  // repaint visible cells (selection or titles changed)
    for (const [index, el] of this.cells) {
      const item = this.itemAt(index);
      if (item) this.hooks.paintCell(el, item, this.thumbPx());
    }
  }

  // -- geometry -------------------------------------------------------------------------

  layout() {
    const width = this.scroller.clientWidth - 2 * PAD;
    this.columns = Math.max(1, Math.floor((width + GAP) / (this.size + GAP)));
    // Spread spare width evenly so the grid is centred.
    const used = this.columns * this.size + (this.columns - 1) * GAP;
    this.left = PAD + Math.max(0, Math.floor((width - used) / 2));
    this.titleHeight = this.size >= 64 ? TITLE : 0;
    this.rowHeight = this.size + this.titleHeight + GAP;
    const rows = Math.ceil(this.total / this.columns);
    this.spacer.style.height = `${rows * this.rowHeight + 2 * PAD}px`;
  }

  firstVisibleIndex() {
    if (!this.rowHeight) return 0;
    return Math.max(0, Math.floor((this.scroller.scrollTop - PAD) / this.rowHeight)) * this.columns;
  }

  thumbPx() { return Math.round(this.size * (window.devicePixelRatio || 1)); }

  /** Scroll so that item `index` is in view (`centre`: in the middle of the view). */
  scrollToIndex(index, { centre = false } = {}) {
    if (!this.columns) this.layout();
    const top = PAD + Math.floor(index / this.columns) * this.rowHeight;
    const view = this.scroller.clientHeight;
    if (centre) {
      this.scroller.scrollTop = Math.max(0, top - Math.floor((view - this.rowHeight) / 2));
    } else if (top < this.scroller.scrollTop) {
      this.scroller.scrollTop = top - PAD;
    } else if (top + this.rowHeight > this.scroller.scrollTop + view) {
      this.scroller.scrollTop = top + this.rowHeight - view;
    }
    this.render();
  }

  /** Move the keyboard focus to item `index` (clamped to the list), scrolling it into view. */
  focusIndex(index, options = {}) {
    if (!this.total) return null;
    const target = Math.min(this.total - 1, Math.max(0, index));
    this.scrollToIndex(target, options);
    const el = this.cells.get(target);
    el?.focus({ preventScroll: true });
    return el ?? null;
  }

  /** The grid index of the focused cell, or null. */
  focusedIndex() {
    const el = document.activeElement;
    return el?.classList.contains("cell") && this.layer.contains(el) ? Number(el.dataset.index)
      : null;
  }

  // -- data -----------------------------------------------------------------------------

  itemAt(index) {
    const page = this.pages.get(Math.floor(index / PAGE));
    return Array.isArray(page) ? page[index % PAGE] : undefined;
  }

  /** Items of the current source, in order, from `start` (fetching pages as needed). */
  async itemsAround(index) {
    await this.loadPage(Math.floor(index / PAGE));
    return this.itemAt(index);
  }

  loadPage(number) {
    const have = this.pages.get(number);
    if (have) return Promise.resolve(have);
    const generation = this.generation;
    const promise = this.hooks.fetchPage(number * PAGE, PAGE).then((data) => {
      if (generation !== this.generation) return null;
      this.total = data.total;
      this.pages.set(number, data.items);
      return data.items;
    }).catch((err) => {
      this.pages.delete(number);
      throw err;
    });
    this.pages.set(number, promise);
    return promise;
  }

  // -- painting ---------------------------------------------------------------------------

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.render(); });
  }

  clearCells() {
    for (const el of this.cells.values()) this.recycle(el);
    this.cells.clear();
  }

  recycle(el) {
    el.remove();
    this.pool.push(el);
  }

  render() {
    if (!this.columns) this.layout();
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight;
    const firstRow = Math.max(0, Math.floor((top - PAD) / this.rowHeight) - MARGIN_ROWS);
    const lastRow = Math.floor((top + height - PAD) / this.rowHeight) + MARGIN_ROWS;
    const first = firstRow * this.columns;
    const last = Math.min(this.total - 1, (lastRow + 1) * this.columns - 1);

    for (const [index, el] of this.cells) {
      if (index < first || index > last) {
        this.cells.delete(index);
        this.recycle(el);
      }
    }
    const wanted = new Set();
    const fragment = document.createDocumentFragment();
    const px = this.thumbPx();
    for (let index = first; index <= last; index++) {
      let el = this.cells.get(index);
      const item = this.itemAt(index);
      if (!el) {
        el = this.pool.pop() || this.makeCell();
        el.dataset.index = String(index);
        const row = Math.floor(index / this.columns);
        const col = index % this.columns;
        el.style.transform = `translate(${this.left + col * (this.size + GAP)}px, ${PAD + row * this.rowHeight}px)`;
        el.style.width = `${this.size}px`;
        el.style.height = `${this.size + this.titleHeight}px`;
        VirtualGrid.part(el, "thumb").style.height = `${this.size}px`;
        el.classList.toggle("small", this.size < 64);
        this.cells.set(index, el);
        fragment.appendChild(el);
        el.dataset.id = "";
      }
      if (item) {
        if (el.dataset.id !== String(item.id)) this.hooks.paintCell(el, item, px);
      } else {
        this.hooks.paintCell(el, null, px);
        wanted.add(Math.floor(index / PAGE));
      }
    }
    this.layer.appendChild(fragment);
    for (const number of wanted) {
      this.loadPage(number).then((items) => { if (items) this.schedule(); }).catch(() => {});
    }
    if (!this.painted && Array.isArray(this.pages.get(0))) {
      this.painted = true;
      this.hooks.onFirstPaint?.();
    }
    this.hooks.onRender?.(this.total);
  }

  makeCell() {
    const el = document.createElement("div");
    el.className = "cell";
    el.tabIndex = -1;  // focused by the arrow keys (the grid itself is the Tab stop)
    const thumb = document.createElement("div");
    thumb.className = "thumb";
    thumb.dataset.part = "thumb";
    const img = document.createElement("img");
    img.decoding = "async";
    img.draggable = false;
    img.dataset.part = "image";
    thumb.appendChild(img);
    const title = document.createElement("div");
    title.className = "title";
    title.dataset.part = "title";
    const zoom = document.createElement("button");
    zoom.type = "button";
    zoom.className = "zoom";
    zoom.title = "Preview";
    zoom.textContent = "⤢";
    zoom.dataset.part = "zoom";
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.hidden = true;
    badge.dataset.part = "badge";
    el.append(thumb, title, zoom, badge);
    return el;
  }

  /** A part of a cell: "thumb" (the image's box), "image", "title", "zoom" or "badge". */
  static part(el, name) {
    return el.querySelector(`[data-part="${name}"]`);
  }

  /** The grid index and item of the cell an event happened in. */
  hit(event) {
    const el = event.target.closest(".cell");
    if (!el) return null;
    const index = Number(el.dataset.index);
    const item = this.itemAt(index);
    return item ? { index, item, el } : null;
  }
}
