// The demo storefront's glue: what a shop's own page script would do with recstack.js.
import { createRecStack } from "/static/recstack.js";

const page = document.body.dataset;

async function details(itemIds) {
  const response = await fetch(`/demo/api/items?ids=${encodeURIComponent(itemIds.join(","))}`);
  return response.ok ? response.json() : {};
}

const rs = createRecStack({ api: page.api, key: page.key, details, rankUrl: "/demo/backend/rank",
                            rerankUrl: "/demo/backend/rerank" });
window.recstack = rs; // for the browser tests and the curious

function ids(list) {
  return Array.from(list.querySelectorAll("[data-recstack-item]"), (node) => node.dataset.recstackItem);
}

const pages = {
  async home() {
    await rs.carousel(document.getElementById("for-you"), { placement: "home-for-you", limit: 8 });
  },
  async category() {
    const list = document.getElementById("listing");
    if (list) rs.arrange(list, await rs.sortCategory(ids(list)), { placement: "category" });
  },
  async search() {
    const list = document.getElementById("listing");
    if (list) rs.arrange(list, await rs.rerankSearch(ids(list)), { placement: "search" });
  },
  async product() {
    const itemId = page.item;
    const status = document.getElementById("cart-status");
    rs.view(itemId, { page: "product" });
    document.getElementById("add-to-cart").addEventListener("click", () => {
      rs.addToCart(itemId, { page: "product" });
      status.textContent = "Added to your cart.";
    });
    document.getElementById("buy-now").addEventListener("click", () => {
      rs.purchase(itemId, { page: "product" });
      status.textContent = "Thank you for your order.";
    });
    await rs.productBlocks(document.getElementById("product-blocks"), { itemId });
  },
};

pages[page.page]?.().finally(() => { document.body.dataset.ready = "true"; });
