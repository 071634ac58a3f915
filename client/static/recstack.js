// recstack.js: storefront widgets and tracking for the recstack facade.
// One dependency-free ES module, no build step: import it from the facade (`/static/recstack.js`).
//
//   import { createRecStack } from "https://reco.shop.example/static/recstack.js";
//   const rs = createRecStack({ api: "https://reco.shop.example", key: "rsk_public_..." });
//   rs.carousel(document.querySelector("#for-you"), { placement: "home-for-you", limit: 8 });
//
// Promise of the module: whatever the facade does (slow, down, degraded), the page keeps working and no
// exception escapes; a list that cannot be shown is replaced by the last good one of its placement, or hidden.

const VISITOR_KEY = "recstack.visitor";
const LISTS_KEY = "recstack.lists";
const QUEUE_KEY = "recstack.queue";
const LIST_TTL_MS = 30 * 60 * 1000; // a cached list older than this is not worth showing instead of nothing
const QUEUE_LIMIT = 200; // events kept for retry while the API is unreachable; the oldest go first
const VISIBLE_RATIO = 0.5;
const VISIBLE_MS = 1000; // an impression: at least half of the item on screen for a second
const CONTEXTS = { home: "homepage", product: "product_page", category: "category_page" };

function storage() {
  // Storage can be disabled or full (private modes): the widgets then work without memory.
  try {
    const probe = "recstack.probe";
    localStorage.setItem(probe, probe);
    localStorage.removeItem(probe);
    return localStorage;
  } catch {
    return null;
  }
}

function readJson(store, key, fallback) {
  try {
    return JSON.parse(store?.getItem(key) ?? "null") ?? fallback;
  } catch {
    return fallback;
  }
}

function writeJson(store, key, value) {
  try {
    store?.setItem(key, JSON.stringify(value));
  } catch {
    // full storage: the cache and the queue are a convenience, never a reason to fail
  }
}

function randomId() {
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return "anon_" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text); // item text is never parsed as HTML
  return node;
}

/**
 * The widgets and trackers of one page. Options:
 *   api        the facade's base URL ("" for the same origin)
 *   key        a public API key bound to this page's origin
 *   userId, userToken   a signed-in shop user and the token the shop's backend signed; anonymous otherwise
 *   details    async (itemIds) => ({ [itemId]: { title, price, url, image, category } }) from the shop's catalog
 *   rankUrl, rerankUrl  the shop backend's routes that forward to /api/v1/rank and /search/rerank with its
 *                       server key (ranking a page's own list is a backend call: see client/README.md)
 *   timeoutMs  how long a list may take before the cached one is shown (1500)
 *   onEvent    called with every event as it is queued (for the page's own analytics or tests)
 */
export function createRecStack(options) {
  return new RecStack(options);
}

class RecStack {
  constructor({ api = "", key, userId = null, userToken = null, details = null, rankUrl = null,
                rerankUrl = null, timeoutMs = 1500, flushMs = 1000, batchSize = 20, onEvent = null } = {}) {
    this.api = api.replace(/\/$/, "");
    this.key = key;
    this.details = details;
    this.rankUrl = rankUrl;
    this.rerankUrl = rerankUrl;
    this.timeoutMs = timeoutMs;
    this.flushMs = flushMs;
    this.batchSize = batchSize;
    this.onEvent = onEvent;
    this.store = storage();
    this.pending = [];
    this.flushTimer = null;
    this.retryMs = 2000;
    this.retryTimer = null;
    this.seen = new Set(); // request id + item: one impression each
    this.timers = new Map();
    this.identify(userId, userToken);
    this.observer = "IntersectionObserver" in window
      ? new IntersectionObserver((entries) => this.#visibility(entries), { threshold: [0, VISIBLE_RATIO] })
      : null;
    // Leaving the page: what is queued goes out as a beacon, which outlives the page.
    addEventListener("pagehide", () => this.flush(true));
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "hidden") this.flush(true);
    });
    addEventListener("online", () => this.flush());
    if (this.#queued().length) this.#scheduleRetry();
  }

  /** The visitor: a shop user once the shop passes its id (with a user token), else a stable anonymous id. */
  identify(userId, userToken = null) {
    if (userId) {
      this.userId = userId;
      this.userToken = userToken;
      return;
    }
    let visitor = this.store?.getItem(VISITOR_KEY);
    if (!visitor || !visitor.startsWith("anon_")) {
      visitor = randomId();
      try { this.store?.setItem(VISITOR_KEY, visitor); } catch { /* a new id per page without storage */ }
    }
    this.userId = visitor;
    this.userToken = null;
  }

  // -- widgets -----------------------------------------------------------------------------------------------

  /** A personalised list ("for you"): `placement` names it for the cache and the tracking; `context` is the
   *  page type (homepage, product_page, category_page); `category` keeps it within one category. */
  async carousel(target, { placement = "carousel", limit = 8, context = "homepage", category = "",
                           itemId = null } = {}) {
    const params = { limit, context: CONTEXTS[context] ?? context };
    if (category) params.category = category;
    if (itemId) params.item_id = itemId;
    const path = `/api/v1/recommendations/${encodeURIComponent(this.userId)}`;
    return this.#list(target, placement, () => this.#get(path, params));
  }

  /** The product page's blocks: one titled list per kind (similar, also_viewed, bought_together). */
  async productBlocks(target, { itemId, kinds = ["similar", "also_viewed", "bought_together"], limit = 6,
                                titles = {} } = {}) {
    const names = { similar: "Similar products", also_viewed: "Customers also viewed",
                    bought_together: "Frequently bought together", ...titles };
    target.replaceChildren();
    return Promise.all(kinds.map((kind) => {
      const block = element("section", `recstack-block recstack-${kind}`);
      block.append(element("h2", "recstack-heading", names[kind] ?? kind));
      const list = element("div", "recstack-list");
      block.append(list);
      target.append(block);
      const path = `/api/v1/similar/${encodeURIComponent(itemId)}`;
      return this.#list(list, `product-${kind}`, () => this.#get(path, { kind, limit }), block);
    }));
  }

  /** A category page's items in the order for this visitor, each with its reason: `{ items: [{ item_id,
   *  reason }], requestId, degraded }`. Never rejects: on any failure, the page's own order. */
  async sortCategory(itemIds, { url = this.rankUrl } = {}) {
    return this.#order(url, { user_id: this.userId, item_ids: itemIds }, itemIds);
  }

  /** Search results re-ordered for this visitor, keeping `keepOrderWeight` of the search engine's order. */
  async rerankSearch(itemIds, { url = this.rerankUrl, keepOrderWeight = 0.5 } = {}) {
    return this.#order(url, { user_id: this.userId, item_ids: itemIds, keep_order_weight: keepOrderWeight },
                       itemIds);
  }

  /** Re-arrange a list the page rendered (children with `data-recstack-item`) in the order of `ranked`, put
   *  each reason in its `.recstack-reason`, and track impressions and clicks under `placement`. */
  arrange(container, ranked, { placement }) {
    const byId = new Map(Array.from(container.querySelectorAll("[data-recstack-item]"),
                                    (node) => [node.dataset.recstackItem, node]));
    ranked.items.forEach((item, position) => {
      const node = byId.get(item.item_id);
      if (!node) return;
      const reason = node.querySelector(".recstack-reason");
      if (reason) reason.textContent = item.reason ?? "";
      container.append(node); // appending an attached node moves it: the DOM ends in the ranked order
      this.#track(node, { itemId: item.item_id, requestId: ranked.requestId, placement, position });
    });
  }

  // -- tracking ----------------------------------------------------------------------------------------------

  view(itemId, context = {}) { this.#event("view", itemId, context); }
  click(itemId, context = {}) { this.#event("click", itemId, context, true); }
  addToCart(itemId, context = {}) { this.#event("add_to_cart", itemId, context, true); }
  purchase(itemIds, context = {}) {
    for (const itemId of [].concat(itemIds)) this.#event("purchase", itemId, context);
    this.flush();
  }

  /** Send what is queued now; `leaving`: the page is going away, so a beacon (which outlives it). */
  flush(leaving = false) {
    clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const batch = this.#queued().concat(this.pending);
    this.pending = [];
    writeJson(this.store, QUEUE_KEY, []);
    if (!batch.length) return;
    if (navigator.onLine === false) {
      this.#requeue(batch);
      return;
    }
    const url = `${this.api}/api/v1/events/beacon?${new URLSearchParams(this.#credentials())}`;
    const body = JSON.stringify({ events: batch }); // a string goes as text/plain: no CORS preflight
    // A beacon's fate is unknown to the page, so it is kept for leaving; while the page lives, a keepalive
    // fetch tells whether the events arrived and keeps them for retry when they did not.
    if (leaving && navigator.sendBeacon?.(url, body)) return;
    fetch(url, { method: "POST", body, keepalive: body.length < 60000, mode: "cors", credentials: "omit" })
      .then((response) => {
        // Other 4xx: the events themselves were refused; sending them again would be refused again.
        if (response.status >= 500 || response.status === 429 || response.status === 408) this.#requeue(batch);
        else this.retryMs = 2000;
      })
      .catch(() => this.#requeue(batch));
  }

  #credentials() {
    const params = { key: this.key };
    if (this.userToken) params.user_token = this.userToken;
    return params;
  }

  #event(type, itemId, context = {}, urgent = false) {
    const event = { user_id: this.userId, item_id: String(itemId), event_type: type,
                    timestamp: new Date().toISOString(), context };
    this.pending.push(event);
    try { this.onEvent?.(event); } catch { /* the page's hook must not stop tracking */ }
    // A click or a cart often leaves the page: send at once (a keepalive request outlives the page).
    if (urgent || this.pending.length >= this.batchSize) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), this.flushMs);
  }

  #queued() { return readJson(this.store, QUEUE_KEY, []); }

  #requeue(batch) {
    writeJson(this.store, QUEUE_KEY, this.#queued().concat(batch).slice(-QUEUE_LIMIT));
    this.#scheduleRetry();
  }

  #scheduleRetry() {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.retryMs = Math.min(this.retryMs * 2, 60000);
      this.flush();
    }, this.retryMs);
  }

  #track(node, { itemId, requestId, placement, position }) {
    const context = { request_id: requestId, placement, position };
    node.dataset.recstackItem = itemId;
    node.addEventListener("click", () => this.click(itemId, context));
    node.recstackContext = context;
    this.observer?.observe(node);
  }

  #visibility(entries) {
    for (const entry of entries) {
      const node = entry.target;
      const { request_id: requestId } = node.recstackContext;
      const once = `${requestId}|${node.dataset.recstackItem}`;
      if (this.seen.has(once)) {
        this.observer.unobserve(node);
        continue;
      }
      if (entry.isIntersecting && entry.intersectionRatio >= VISIBLE_RATIO) {
        if (!this.timers.has(node)) {
          this.timers.set(node, setTimeout(() => {
            this.timers.delete(node);
            this.seen.add(once);
            this.observer.unobserve(node);
            this.#event("impression", node.dataset.recstackItem, node.recstackContext);
          }, VISIBLE_MS));
        }
      } else {
        clearTimeout(this.timers.get(node));
        this.timers.delete(node);
      }
    }
  }

  // -- lists -------------------------------------------------------------------------------------------------

  async #get(path, params) {
    const headers = { "X-API-Key": this.key };
    if (this.userToken) headers["X-User-Token"] = this.userToken;
    const url = `${this.api}${path}?${new URLSearchParams(params)}`;
    const response = await fetch(url, { headers, mode: "cors", credentials: "omit",
                                        signal: AbortSignal.timeout(this.timeoutMs) });
    if (!response.ok) throw new Error(`recstack: ${response.status} from ${path}`);
    return response.json();
  }

  async #order(url, body, itemIds) {
    const unchanged = { items: itemIds.map((id) => ({ item_id: id, reason: "" })), requestId: null,
                        degraded: true };
    if (!url || !itemIds.length) return unchanged;
    try {
      const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json" },
                                          body: JSON.stringify(body),
                                          signal: AbortSignal.timeout(this.timeoutMs) });
      if (!response.ok) return unchanged;
      const answer = await response.json();
      return { items: answer.recommendations, requestId: answer.request_id, degraded: answer.degraded };
    } catch {
      return unchanged;
    }
  }

  /** Fetch, fall back to the cache, render: a list that cannot be shown hides `hideable`. */
  async #list(target, placement, fetchList, hideable = target) {
    const cacheKey = `${this.userId}|${placement}`;
    const cached = readJson(this.store, LISTS_KEY, {})[cacheKey];
    const usable = cached && Date.now() - cached.at < LIST_TTL_MS ? cached : null;
    let list = null;
    try {
      const answer = await fetchList();
      list = { items: answer.recommendations, requestId: answer.request_id, degraded: answer.degraded };
    } catch {
      // timeout, network error or refusal: the cached list below, or nothing
    }
    if (list && !list.degraded && list.items.length) {
      const lists = readJson(this.store, LISTS_KEY, {});
      for (const [name, entry] of Object.entries(lists)) {
        if (Date.now() - entry.at >= LIST_TTL_MS) delete lists[name];
      }
      lists[cacheKey] = { ...list, at: Date.now() };
      writeJson(this.store, LISTS_KEY, lists);
    } else if (usable) {
      list = usable; // a degraded answer is popular items; the last personal list is better
    }
    if (!list || !list.items.length) {
      target.replaceChildren();
      hideable.hidden = true;
      return null;
    }
    try {
      await this.#render(target, list, placement);
      hideable.hidden = false;
    } catch {
      target.replaceChildren();
      hideable.hidden = true;
      return null;
    }
    return list;
  }

  async #render(target, list, placement) {
    let details = {};
    try {
      details = (await this.details?.(list.items.map((item) => item.item_id))) ?? {};
    } catch {
      // without the catalog's details the items show their ids
    }
    const items = element("ol", "recstack-items");
    list.items.forEach((item, position) => {
      const about = details[item.item_id] ?? {};
      const entry = element("li", "recstack-item");
      const link = element("a", "recstack-link");
      link.href = about.url ?? "#";
      if (about.image) {
        const image = element("img", "recstack-image");
        image.src = about.image;
        image.alt = "";
        image.loading = "lazy";
        link.append(image);
      }
      link.append(element("span", "recstack-title", about.title ?? item.item_id));
      if (about.price !== undefined && about.price !== null) {
        link.append(element("span", "recstack-price", about.price));
      }
      link.append(element("span", "recstack-reason", item.reason));
      entry.append(link);
      items.append(entry);
      this.#track(entry, { itemId: item.item_id, requestId: list.requestId, placement, position });
    });
    target.replaceChildren(items);
    target.dataset.recstackRequest = list.requestId ?? "";
  }
}
