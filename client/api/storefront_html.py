"""The demo storefront's pages as HTML. Every piece of item text goes through :func:`html.escape`: titles are
stored as given and may hold markup."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

SHOP = "recstack demo shop"


def page(title: str, kind: str, body: str, *, api: str, key: str, categories: list[str], item_id: str = "",
         query: str = "") -> str:
    nav = "".join(f'<li><a href="/demo/category?name={quote(c)}">{escape(c)}</a></li>' for c in categories)
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · {SHOP}</title>
<link rel="stylesheet" href="/static/demo.css">
<link rel="icon" href="data:,">
</head>
<body data-api="{escape(api)}" data-key="{escape(key)}" data-page="{kind}" data-item="{escape(item_id)}">
<header class="shop-header">
  <a class="shop-name" href="/demo/">{SHOP}</a>
  <form class="shop-search" action="/demo/search" role="search">
    <input name="q" value="{escape(query)}" placeholder="Search products" aria-label="Search products">
    <button>Search</button>
  </form>
  <nav aria-label="Categories"><ul>{nav}</ul></nav>
</header>
<main>
{body}
</main>
<script type="module" src="/static/demo.js"></script>
</body>
</html>
"""


def tile(item: dict) -> str:
    """One product of a list the page renders itself (category, search): recstack.js re-orders these."""
    price = f'<span class="recstack-price">{escape(item["price"])}</span>' if item["price"] else ""
    return (f'<li class="recstack-item" data-recstack-item="{escape(item["item_id"])}">'
            f'<a class="recstack-link" href="{escape(item["url"])}">'
            f'<img class="recstack-image" src="{escape(item["image"])}" alt="" loading="lazy">'
            f'<span class="recstack-title">{escape(item["title"])}</span>{price}'
            f'<span class="recstack-reason"></span></a></li>')


def home() -> str:
    return """<h1>Welcome</h1>
<section class="recstack-block" aria-labelledby="for-you-title">
  <h2 id="for-you-title" class="recstack-heading">Recommended for you</h2>
  <div id="for-you" class="recstack-list recstack-carousel"></div>
</section>"""


def item_list(heading: str, items: list[dict], placement: str, empty: str) -> str:
    if not items:
        return f"<h1>{escape(heading)}</h1><p>{escape(empty)}</p>"
    return (f'<h1>{escape(heading)}</h1><ol id="listing" class="recstack-items recstack-grid" '
            f'data-placement="{placement}">{"".join(tile(i) for i in items)}</ol>')


def product(item: dict) -> str:
    price = f'<p class="product-price">{escape(item["price"])}</p>' if item["price"] else ""
    return f"""<article class="product">
  <img class="product-image" src="{escape(item["image"])}" alt="{escape(item["title"])}">
  <div>
    <h1>{escape(item["title"])}</h1>
    <p><a href="/demo/category?name={quote(item["category"])}">{escape(item["category"])}</a></p>
    {price}
    <button id="add-to-cart" type="button">Add to cart</button>
    <button id="buy-now" type="button">Buy now</button>
    <p id="cart-status" role="status"></p>
  </div>
</article>
<div id="product-blocks"></div>"""
