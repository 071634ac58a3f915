"""The demo storefront's view of the catalog: prices, category pages and a plain title search, on top of what
:class:`~recstack.client.core.shop.Shop` knows (ids, titles, categories, popularity). A real shop has its own
catalog and search engine; the demo needs just enough of one to show the widgets on real pages."""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass

import polars as pl
from recstack.client.core.shop import Shop
from recstack.preprocessing.layout import PreparedLayout

PAGE_ITEMS = 24


@dataclass
class Catalog:
    shop: Shop
    prices: dict[str, float]

    @classmethod
    def load(cls, shop: Shop, data_dir) -> Catalog:
        items = pl.read_parquet(PreparedLayout(data_dir).items).drop_nulls("item_id")
        prices = (dict(zip(items["item_id"], items["price"], strict=True)) if "price" in items.columns else {})
        return cls(shop, {item: price for item, price in prices.items() if price is not None})

    def describe(self, item_id: str) -> dict | None:
        """Title, price, category and the demo's links of a known item, None for an unknown id."""
        index = self.shop.item_index(item_id)
        if index is None:
            return None
        price = self.prices.get(item_id)
        return {"item_id": item_id, "title": self.shop.titles[index], "category": self.shop.categories[index],
                "price": f"${price:,.2f}" if price is not None else None,
                "url": f"/demo/product/{item_id}", "image": f"/demo/img/{item_id}.svg"}

    def categories(self, limit: int | None = None) -> list[str]:
        """Category names, the ones with the most popular items first."""
        seen: dict[str, None] = {}
        for index in self.shop.popular:
            name = self.shop.categories[int(index)]
            if name:
                seen.setdefault(name)
        return list(seen)[:limit]

    def in_category(self, category: str) -> list[str]:
        """The category page in the shop's default order (most popular first), before personalisation."""
        return [self.shop.item_ids[i] for i in self.shop.popular_items(PAGE_ITEMS, category)]

    def search(self, query: str) -> list[str]:
        """Items whose title or category holds every word of the query, most popular first: the "search engine"
        whose results the demo re-ranks."""
        words = query.lower().split()
        if not words:
            return []
        found = []
        for index in self.shop.popular:
            index = int(index)
            text = f"{self.shop.titles[index]} {self.shop.categories[index]}".lower()
            if all(word in text for word in words):
                found.append(self.shop.item_ids[index])
                if len(found) == PAGE_ITEMS:
                    break
        return found


def placeholder_svg(item_id: str, title: str, category: str) -> str:
    """A product picture the demo can show without images: a colour per category, a shape per item."""
    hue = int(hashlib.sha256(category.encode()).hexdigest()[:4], 16) % 360
    shape = int(hashlib.sha256(item_id.encode()).hexdigest()[:2], 16) % 3
    figure = ('<circle cx="120" cy="100" r="52"/>', '<rect x="70" y="50" width="100" height="100" rx="14"/>',
              '<polygon points="120,42 178,150 62,150"/>')[shape]
    label = html.escape((category.split("/")[-1] or "item")[:18])
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 240 200" role="img" '
            f'aria-label="{html.escape(title[:80])}"><rect width="240" height="200" fill="hsl({hue} 55% 88%)"/>'
            f'<g fill="hsl({hue} 45% 48%)">{figure}</g><text x="120" y="186" text-anchor="middle" '
            f'font-family="sans-serif" font-size="15" fill="hsl({hue} 40% 25%)">{label}</text></svg>')
