"""Seeded synthetic e-commerce logs with the structure real recommenders learn from.

This is the default dataset of the demo and of most tests, so every part of it leaves a signal a
model can pick up, and a most-popular baseline leaves most of that signal on the table:

* **Catalog.** Items belong to categories (``"electronics/audio"``-like names) and brands, have a
  category-dependent lognormal price and a title. Popularity is Zipf-like, assigned through a random
  permutation so it is independent of the id order. Ids follow listing order, as in most shops:
  about ``new_item_share`` of the items are listed during the window and are never interacted with
  before their ``created_at``.
* **Users.** Each user has one to three favourite categories; most sessions are about one of them
  (the signal a two-tower model learns). Activity is heavy-tailed, and ``new_user_share`` of the
  users sign up during the window (ids follow sign-up order, no events before it).
* **Sessions.** Several per user, with a daily rhythm, at least ``session_gap_minutes`` apart
  (hours or days in practice); seconds to minutes between the events inside one.
* **Sequences.** Every item has a hidden successor in its category (a random cycle through the
  category). With probability ``sequential_strength`` the next view of a session is the successor
  of the previous one (the signal a sequential model learns); :func:`synthetic_successors` returns
  the mapping for diagnostics and tests.
* **Funnels.** A view may lead to a click, an add-to-cart and a purchase of the same item, each
  step a few seconds after the previous one, with the configured conditional probabilities. By default
  every item converts alike; ``conversion_spread`` and ``price_sensitivity`` make the funnel depend on
  the item (a hidden appeal, and its price against its category's median), the signal the ranker's
  objective heads learn (:func:`synthetic_conversion` returns each item's shift for tests).

Everything is vectorised numpy over chunks of users (loops only over a session's positions), so
10M events take well under a minute; all randomness derives from ``SyntheticConfig.seed``.
"""

from __future__ import annotations

import math
import numbers
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl
from recstack.preprocessing.schema import EVENT_COLUMNS, ITEM_COLUMNS, RawDataset
from tqdm import tqdm

FUNNEL_EVENT_TYPES: tuple[str, ...] = ("view", "click", "add_to_cart", "purchase")

# Times are int64 microseconds relative to ``SyntheticConfig.start`` until the final frames.
_SECOND = 1_000_000
_HOUR = 3600 * _SECOND
_DAY = 24 * _HOUR
_EPOCH = datetime(1970, 1, 1)

_MAX_SESSION_VIEWS = 50
_EVENTS_PER_CHUNK = 1_000_000  # bounds the working memory of one chunk to a few hundred MB
_CATALOG_AGE = 3 * 365 * _DAY  # items that predate the window were listed up to three years before it
_MAX_DWELL = 20 * 60 * _SECOND
_MAX_FUNNEL_STEP = 60 * _SECOND
_OWN_BRAND_SHARE = 0.9  # share of a category's items made by brands based in that category

# Relative shopping activity per hour of the day (evening peak, quiet nights).
_HOURLY_ACTIVITY = np.array([0.25, 0.15, 0.10, 0.08, 0.08, 0.10, 0.20, 0.35, 0.50, 0.60, 0.65, 0.70,
                             0.75, 0.70, 0.65, 0.65, 0.70, 0.75, 0.85, 0.95, 1.00, 0.95, 0.75, 0.45])

# Cumulative choice of the favourite a session is about, by the user's number of favourites.
_FAVOURITE_CDF = np.array([[1.0, 1.0, 1.0], [0.65, 1.0, 1.0], [0.5, 0.8, 1.0]])
_FAVOURITE_COUNT_P = (0.3, 0.4, 0.3)

# (name, median price, nouns used in titles)
_CATEGORIES: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("electronics/audio", 79.0, ("Headphones", "Earbuds", "Speaker", "Soundbar")),
    ("electronics/phones", 249.0, ("Smartphone", "Phone Case", "Charger", "Screen Protector")),
    ("electronics/computers", 399.0, ("Laptop", "Keyboard", "Mouse", "Monitor")),
    ("electronics/cameras", 299.0, ("Camera", "Lens", "Tripod", "Camera Bag")),
    ("electronics/gaming", 59.0, ("Controller", "Gaming Headset", "Console", "Game")),
    ("electronics/wearables", 149.0, ("Smartwatch", "Fitness Tracker", "Watch Strap")),
    ("home/kitchen", 39.0, ("Blender", "Kettle", "Frying Pan", "Knife Set")),
    ("home/appliances", 129.0, ("Air Fryer", "Coffee Maker", "Toaster", "Vacuum")),
    ("home/furniture", 189.0, ("Chair", "Desk", "Bookshelf", "Sofa")),
    ("home/decor", 29.0, ("Lamp", "Vase", "Rug", "Wall Clock")),
    ("home/bedding", 49.0, ("Pillow", "Duvet", "Sheet Set", "Blanket")),
    ("home/garden", 35.0, ("Hose", "Planter", "Pruner", "Garden Chair")),
    ("home/tools", 45.0, ("Drill", "Screwdriver Set", "Tool Box", "Tape Measure")),
    ("home/cleaning", 12.0, ("Mop", "Cleaner", "Sponges", "Laundry Basket")),
    ("fashion/women", 45.0, ("Dress", "Blouse", "Skirt", "Cardigan")),
    ("fashion/men", 45.0, ("Shirt", "Chinos", "Jacket", "Polo")),
    ("fashion/shoes", 69.0, ("Sneakers", "Boots", "Sandals", "Loafers")),
    ("fashion/bags", 49.0, ("Backpack", "Tote", "Wallet", "Duffel")),
    ("fashion/accessories", 25.0, ("Sunglasses", "Belt", "Scarf", "Cap")),
    ("fashion/kids", 19.0, ("T-Shirt", "Hoodie", "Pyjamas", "Raincoat")),
    ("fashion/jewelry", 59.0, ("Ring", "Necklace", "Earrings", "Bracelet")),
    ("beauty/skincare", 22.0, ("Moisturiser", "Serum", "Cleanser", "Sunscreen")),
    ("beauty/makeup", 15.0, ("Lipstick", "Mascara", "Foundation", "Eyeliner")),
    ("beauty/haircare", 14.0, ("Shampoo", "Conditioner", "Hair Dryer", "Hair Oil")),
    ("beauty/fragrance", 55.0, ("Eau de Parfum", "Cologne", "Body Mist")),
    ("health/personal-care", 39.0, ("Electric Toothbrush", "Shaver", "Bathroom Scale")),
    ("sports/fitness", 29.0, ("Yoga Mat", "Dumbbells", "Resistance Bands", "Kettlebell")),
    ("sports/outdoor", 79.0, ("Tent", "Sleeping Bag", "Hiking Poles", "Headlamp")),
    ("sports/cycling", 39.0, ("Bike Helmet", "Bike Light", "Cycling Gloves", "Bike Lock")),
    ("sports/running", 49.0, ("Running Shoes", "Running Vest", "Water Bottle", "Armband")),
    ("toys/building", 35.0, ("Building Set", "Marble Run", "Construction Kit")),
    ("toys/dolls", 25.0, ("Doll", "Plush Toy", "Dollhouse", "Action Figure")),
    ("toys/games", 25.0, ("Board Game", "Card Game", "Puzzle")),
    ("books/fiction", 12.0, ("Novel", "Thriller", "Short Stories", "Fantasy Saga")),
    ("books/nonfiction", 18.0, ("Biography", "Cookbook", "History Book", "Travel Guide")),
    ("books/kids", 9.0, ("Picture Book", "Activity Book", "Bedtime Stories")),
    ("grocery/coffee-tea", 11.0, ("Coffee Beans", "Ground Coffee", "Green Tea", "Coffee Pods")),
    ("grocery/snacks", 4.0, ("Granola", "Chocolate", "Crisps", "Trail Mix")),
    ("grocery/pantry", 6.0, ("Olive Oil", "Pasta", "Spice Set", "Honey")),
    ("pets/dogs", 25.0, ("Dog Bed", "Dog Food", "Leash", "Chew Toy")),
    ("pets/cats", 22.0, ("Cat Tree", "Cat Food", "Litter", "Scratcher")),
    ("baby/gear", 149.0, ("Stroller", "Car Seat", "Baby Carrier", "High Chair")),
    ("baby/care", 15.0, ("Diapers", "Baby Wipes", "Bottle", "Bib Set")),
    ("auto/accessories", 19.0, ("Car Charger", "Phone Mount", "Seat Cover", "Dash Cam")),
    ("office/supplies", 9.0, ("Notebook", "Pen Set", "Desk Organiser", "Planner")),
    ("music/instruments", 149.0, ("Guitar", "Ukulele", "Keyboard Stand", "Guitar Strings")),
    ("crafts/art", 16.0, ("Sketchbook", "Paint Set", "Brushes", "Markers")),
    ("electronics/smart-home", 59.0, ("Smart Plug", "Smart Bulb", "Security Camera", "Doorbell")),
)
_GENERIC_NOUNS = ("Item", "Set", "Kit", "Pack")
_ADJECTIVES = ("Classic", "Pro", "Compact", "Essential", "Premium", "Ultra", "Eco", "Smart", "Deluxe",
               "Lite", "Max", "Original", "Everyday", "Urban", "Vintage", "Sport", "Travel", "Studio",
               "Signature", "Air")
_BRAND_HEADS = ("Nor", "Vel", "Ast", "Kin", "Lum", "Bri", "Cor", "Zen", "Mar", "Oak", "Pix", "Sol",
                "Tri", "Ver", "Hal", "Rio", "Fen", "Gal", "Jun", "Qua", "Sky", "Ton", "Wex", "Ely")
_BRAND_TAILS = ("vex", "ora", "ix", "ton", "ara", "elo", "ium", "ada", "ent", "ico", "a", "o", "ly",
                "worth", "berg", "field", "nova", "line", "craft", "ware")
_MODEL_LETTERS = tuple("ABCDEFGHKLMNPRSTVXZ")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class SyntheticConfig:
    """Size, time window and behaviour of the synthetic shop.

    Attributes
    ----------
    n_events : int
        Approximate total number of events of all types (the result is within a few percent).
    n_items : int or None
        Catalog size; ``None`` derives it from ``n_events`` (see :attr:`item_count`).
    n_users : int or None
        Number of users; ``None`` derives it from ``n_events`` (see :attr:`user_count`). Users with
        no session (only when there are more users than sessions) do not appear in the events.
    n_categories : int
        Number of categories; up to 48 get readable names like ``"electronics/audio"``.
    n_brands : int
        Number of brands; each is based in one category and makes most of its items there.
    weeks : int
        Length of the event window, starting at ``start``.
    start : datetime
        First instant of the window (naive, read as UTC).
    seed : int
        Seed of every random choice: the same config always gives the same dataset.
    zipf_exponent : float
        Item popularity is proportional to ``rank ** -zipf_exponent``.
    sequential_strength : float
        Probability that a view after the first of a session is the successor of the previous view.
    category_affinity : float
        Probability that a session is about one of the user's favourite categories.
    session_focus : float
        Probability that a view that does not follow the successor stays in the session's category.
    mean_session_views : float
        Mean number of views per session (geometric, at most 50).
    session_gap_minutes : float
        Minimum inactivity between two sessions of a user; gaps inside a session are always shorter,
        so splitting a user's events at this gap recovers the sessions.
    p_click, p_add_to_cart, p_purchase : float
        Funnel probabilities: click given view, add-to-cart given click, purchase given add-to-cart.
    conversion_spread : float
        Standard deviation of each item's hidden appeal, added to the log-odds of every funnel step
        (0: every item converts alike, the dataset of earlier versions).
    price_sensitivity : float
        Log-odds of every funnel step fall by this much per unit of log(price / category median), so
        dearer items of a category convert less (0: price plays no part).
    new_item_share : float
        Share of the items listed during the window (the others predate it).
    new_user_share : float
        Share of the users who sign up during the window (the others are active from the start).

    Examples
    --------
    >>> config = SyntheticConfig(n_events=1_000_000, seed=7)
    >>> config.item_count, config.user_count
    (25000, 40000)
    >>> SyntheticConfig(p_click=1.5)
    Traceback (most recent call last):
    ...
    ValueError: SyntheticConfig.p_click must be a probability in [0, 1] (got 1.5)
    """

    n_events: int = 200_000
    n_items: int | None = None
    n_users: int | None = None
    n_categories: int = 40
    n_brands: int = 300
    weeks: int = 8
    start: datetime = datetime(2026, 1, 5)
    seed: int = 42
    zipf_exponent: float = 1.0
    sequential_strength: float = 0.5
    category_affinity: float = 0.8
    session_focus: float = 0.85
    mean_session_views: float = 5.0
    session_gap_minutes: float = 30.0
    p_click: float = 0.3
    p_add_to_cart: float = 0.3
    p_purchase: float = 0.5
    conversion_spread: float = 0.0
    price_sensitivity: float = 0.0
    new_item_share: float = 0.15
    new_user_share: float = 0.25

    def __post_init__(self) -> None:
        self._validate()

    @property
    def item_count(self) -> int:
        """``n_items``, or one item per 40 events clamped to [200, 1,000,000]."""
        if self.n_items is not None:
            return self.n_items
        return min(max(self.n_events // 40, 200), 1_000_000)

    @property
    def user_count(self) -> int:
        """``n_users``, or one user per 25 events clamped to [50, 10,000,000]."""
        if self.n_users is not None:
            return self.n_users
        return min(max(self.n_events // 25, 50), 10_000_000)

    @property
    def end(self) -> datetime:
        """First instant after the window."""
        return self.start + timedelta(weeks=self.weeks)

    def _validate(self) -> None:
        def fail(name: str, requirement: str) -> None:
            raise ValueError(f"SyntheticConfig.{name} must be {requirement} (got {getattr(self, name)!r})")

        for name, low in (("n_events", 100), ("n_categories", 1), ("n_brands", 1), ("weeks", 1), ("seed", 0)):
            if not _is_int(getattr(self, name)) or getattr(self, name) < low:
                fail(name, f"an integer >= {low}")
        if self.weeks > 520:
            fail("weeks", "at most 520 (ten years)")
        if self.n_users is not None and (not _is_int(self.n_users) or self.n_users < 1):
            fail("n_users", "None or an integer >= 1")
        if self.n_items is not None and not _is_int(self.n_items):
            fail("n_items", "None or an integer")
        if not isinstance(self.start, datetime) or self.start.tzinfo is not None:
            fail("start", "a naive datetime (read as UTC)")
        for name in ("sequential_strength", "category_affinity", "session_focus", "p_click",
                     "p_add_to_cart", "p_purchase"):
            value = getattr(self, name)
            if not _is_number(value) or not 0.0 <= value <= 1.0:
                fail(name, "a probability in [0, 1]")
        if not _is_number(self.new_item_share) or not 0.0 <= self.new_item_share <= 0.9:
            fail("new_item_share", "a share in [0, 0.9]")
        if not _is_number(self.new_user_share) or not 0.0 <= self.new_user_share < 1.0:
            fail("new_user_share", "a share in [0, 1)")
        for name in ("conversion_spread", "price_sensitivity"):
            if not _is_number(getattr(self, name)) or not 0.0 <= getattr(self, name) <= 5.0:
                fail(name, "a number in [0, 5]")
        if not _is_number(self.zipf_exponent) or not 0.0 <= self.zipf_exponent <= 3.0:
            fail("zipf_exponent", "a number in [0, 3]")
        if not _is_number(self.mean_session_views) or not 1.0 <= self.mean_session_views <= 20.0:
            fail("mean_session_views", "a number in [1, 20]")
        # Gaps inside a session reach half the session gap plus three funnel steps of up to a minute.
        if not _is_number(self.session_gap_minutes) or not 10.0 <= self.session_gap_minutes <= 7 * 24 * 60:
            fail("session_gap_minutes", "a number of minutes in [10, 10080]")
        old_items = self.item_count - round(self.item_count * self.new_item_share)
        if old_items < 2 * self.n_categories:
            raise ValueError(
                f"SyntheticConfig: {self.item_count} items with new_item_share={self.new_item_share} leave "
                f"{old_items} items that predate the window; at least 2 per category "
                f"({2 * self.n_categories}) are needed: raise n_items or lower n_categories"
            )


@dataclass
class _Sampler:
    """Draws items of given categories in proportion to their popularity."""

    by_category: np.ndarray  # item ids grouped by category
    cum_weight: np.ndarray  # cumulative popularity along by_category
    first: np.ndarray  # per category: its first and one-past-last positions in by_category
    last: np.ndarray

    @classmethod
    def build(cls, items: np.ndarray, category: np.ndarray, weight: np.ndarray, n_categories: int) -> _Sampler:
        by_category = items[np.argsort(category[items], kind="stable")]
        bounds = np.searchsorted(category[by_category], np.arange(n_categories + 1))
        return cls(by_category, np.cumsum(weight[by_category]), bounds[:-1], bounds[1:])

    def draw(self, rng: np.random.Generator, category: np.ndarray) -> np.ndarray:
        first, last = self.first[category], self.last[category]
        lo = np.where(first > 0, self.cum_weight[first - 1], 0.0)
        hi = self.cum_weight[last - 1]
        position = np.searchsorted(self.cum_weight, lo + rng.random(category.size) * (hi - lo), side="right")
        return self.by_category[np.clip(position, first, last - 1)]


@dataclass
class _Catalog:
    category: np.ndarray  # category of each item
    created: np.ndarray  # listing time (us relative to start; negative before the window)
    successor: np.ndarray  # the item that tends to be viewed next
    category_share: np.ndarray  # share of the traffic per category (its total popularity)
    category_cdf: np.ndarray
    items: _Sampler  # the whole catalog
    old_items: _Sampler  # the items listed before the window (every category has some)
    frame: pl.DataFrame  # the items table
    # Each item's shift of the funnel's log-odds; None when every item converts alike.
    conversion: np.ndarray | None = None


@dataclass
class _Users:
    join: np.ndarray  # sign-up time (us relative to start; 0 for users active from the start)
    sessions: np.ndarray  # number of sessions
    favourites: np.ndarray  # (n_users, 3) favourite categories, most favourite first
    n_favourites: np.ndarray  # how many of the three are used (1 to 3)


def generate_synthetic(config: SyntheticConfig = SyntheticConfig()) -> RawDataset:
    """Generate the synthetic shop's events and catalog.

    Parameters
    ----------
    config : SyntheticConfig
        Size, window, seed and behaviour knobs; the defaults give about 200,000 events.

    Returns
    -------
    RawDataset
        ``name="synthetic"``, ``has_timestamps=True``; ``events`` has the columns of
        ``EVENT_COLUMNS`` (event types ``view``, ``click``, ``add_to_cart``, ``purchase``; weight 1.0)
        sorted by ``(timestamp, user_id)``, ``items`` the columns of ``ITEM_COLUMNS``.

    Examples
    --------
    >>> ds = generate_synthetic(SyntheticConfig(n_events=10_000, seed=1))
    >>> ds.events.columns
    ['user_id', 'item_id', 'event_type', 'timestamp', 'weight']
    >>> sorted(ds.events["event_type"].unique())
    ['add_to_cart', 'click', 'purchase', 'view']
    >>> ds.items.columns
    ['item_id', 'category', 'brand', 'title', 'price', 'created_at']
    """
    catalog_seed, users_seed, events_seed = np.random.SeedSequence(config.seed).spawn(3)
    catalog = _build_catalog(config, np.random.default_rng(catalog_seed))
    users = _build_users(config, catalog, np.random.default_rng(users_seed))

    n_chunks = max(1, math.ceil(config.n_events / _EVENTS_PER_CHUNK))
    bounds = np.linspace(0, config.user_count, n_chunks + 1).astype(np.int64)
    parts = []
    with tqdm(total=config.n_events, unit="ev", unit_scale=True, desc="synthetic events",
              disable=config.n_events < 1_000_000 or not sys.stderr.isatty()) as progress:
        for (lo, hi), seed in zip(zip(bounds[:-1], bounds[1:], strict=True), events_seed.spawn(n_chunks),
                                  strict=True):
            part = _simulate_users(config, catalog, users, int(lo), int(hi), np.random.default_rng(seed))
            parts.append(part)
            progress.update(part["t"].len())

    events = pl.concat(parts).sort(["t", "u"])
    del parts
    start_us = _to_us(config.start)
    kinds = pl.Series(FUNNEL_EVENT_TYPES)
    events = pl.DataFrame({
        "user_id": _ids("u", config.user_count).gather(events["u"]),
        "item_id": catalog.frame["item_id"].gather(events["i"]),
        "event_type": kinds.gather(events["k"]),
        "timestamp": (events["t"] + start_us).cast(pl.Datetime("us")),
        "weight": pl.repeat(1.0, events.height, dtype=pl.Float32, eager=True),
    }, schema=EVENT_COLUMNS)
    return RawDataset(name="synthetic", events=events, items=catalog.frame, has_timestamps=True)


def synthetic_successors(config: SyntheticConfig = SyntheticConfig()) -> pl.DataFrame:
    """The hidden successor of every item: the sequential pattern planted in the sessions.

    With probability ``config.sequential_strength`` a session's next view is the successor of its
    previous view (when the successor is already listed). A successor is in its item's category and
    never the item itself. Useful to check that a sequential model learned the pattern.

    Parameters
    ----------
    config : SyntheticConfig
        The config the dataset was generated with (only the catalog settings and seed matter).

    Returns
    -------
    pl.DataFrame
        Columns ``item_id`` and ``successor_id`` (strings), one row per catalog item.

    Examples
    --------
    >>> successors = synthetic_successors(SyntheticConfig(n_events=10_000, seed=1))
    >>> successors.columns, successors.height
    (['item_id', 'successor_id'], 250)
    """
    catalog_seed = np.random.SeedSequence(config.seed).spawn(3)[0]
    catalog = _build_catalog(config, np.random.default_rng(catalog_seed))
    ids = catalog.frame["item_id"]
    return pl.DataFrame({"item_id": ids, "successor_id": ids.gather(catalog.successor)})


def synthetic_conversion(config: SyntheticConfig = SyntheticConfig()) -> pl.DataFrame:
    """Each item's shift of the funnel's log-odds (0 for all when the funnel ignores the item).

    Examples
    --------
    >>> shift = synthetic_conversion(SyntheticConfig(n_events=10_000, seed=1, conversion_spread=1.0))
    >>> shift.columns, shift.height
    (['item_id', 'conversion_shift'], 250)
    """
    catalog_seed = np.random.SeedSequence(config.seed).spawn(3)[0]
    catalog = _build_catalog(config, np.random.default_rng(catalog_seed))
    shift = catalog.conversion if catalog.conversion is not None else np.zeros(catalog.frame.height)
    return pl.DataFrame({"item_id": catalog.frame["item_id"], "conversion_shift": shift})


def _funnel_reached(config: SyntheticConfig, draws: np.ndarray, shift: np.ndarray | float) -> np.ndarray:
    """(3, views) whether each view reached click, add-to-cart and purchase, from uniform ``draws``: each step
    needs the one before, with its configured probability moved by ``shift`` on the log-odds scale."""
    reached = np.empty(draws.shape, dtype=bool)
    previous = np.ones(draws.shape[1], dtype=bool)
    for step, p in enumerate((config.p_click, config.p_add_to_cart, config.p_purchase)):
        if np.ndim(shift) == 0 and shift == 0:
            chance = p  # exactly the configured probability (a round trip through log-odds is not exact)
        else:
            with np.errstate(divide="ignore"):
                chance = 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p) + shift)))
        reached[step] = previous & (draws[step] < chance)
        previous = reached[step]
    return reached


def _to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _ids(prefix: str, n: int) -> pl.Series:
    """``prefix`` + zero-padded number: fixed width, so string order is numeric order."""
    width = max(7, len(str(n - 1)))
    return pl.select(
        (pl.lit(prefix) + pl.int_range(0, n, dtype=pl.Int64).cast(pl.String).str.zfill(width)).alias("id")
    ).to_series()


def _window_us(config: SyntheticConfig) -> int:
    return config.weeks * 7 * _DAY


def _category_specs(n_categories: int, rng: np.random.Generator) -> list[tuple[str, float, tuple[str, ...]]]:
    if n_categories <= len(_CATEGORIES):
        return [_CATEGORIES[i] for i in np.sort(rng.choice(len(_CATEGORIES), n_categories, replace=False))]
    medians = rng.lognormal(np.log(30.0), 0.8, n_categories - len(_CATEGORIES))
    return list(_CATEGORIES) + [(f"misc/cat_{len(_CATEGORIES) + i:03d}", float(m), _GENERIC_NOUNS)
                                for i, m in enumerate(medians)]


def _brand_names(n_brands: int, rng: np.random.Generator) -> list[str]:
    """Distinct pronounceable names; past the syllable combinations a number keeps them distinct."""
    combos = len(_BRAND_HEADS) * len(_BRAND_TAILS)
    codes = rng.choice(max(n_brands, combos), n_brands, replace=False)
    names = []
    for code in codes.tolist():
        head = _BRAND_HEADS[code % len(_BRAND_HEADS)]
        tail = _BRAND_TAILS[code // len(_BRAND_HEADS) % len(_BRAND_TAILS)]
        names.append(f"{head}{tail}" + (f" {code // combos + 1}" if code >= combos else ""))
    return names


def _build_catalog(config: SyntheticConfig, rng: np.random.Generator) -> _Catalog:
    n, n_cat = config.item_count, config.n_categories
    n_new = round(n * config.new_item_share)
    n_old = n - n_new
    # Ids follow listing order, so the items listed during the window have the highest ids.
    created = np.concatenate([np.sort(-rng.integers(1, _CATALOG_AGE, n_old)),
                              np.sort(rng.integers(0, _window_us(config), n_new))]) // _SECOND * _SECOND

    specs = _category_specs(n_cat, rng)
    category = rng.choice(n_cat, size=n, p=rng.dirichlet(np.full(n_cat, 2.0)))
    # Two pre-window items per category: every category then has items to draw from at any time, and
    # two members keep the successor cycle from mapping an item to itself.
    category[rng.choice(n_old, 2 * n_cat, replace=False)] = np.tile(np.arange(n_cat), 2)
    weight = (rng.permutation(n) + 1.0) ** -config.zipf_exponent

    items = _Sampler.build(rng.permutation(n), category, weight, n_cat)
    # The successor is the next item of a random cycle through the category (the sampler's order).
    position_category = category[items.by_category]
    following = np.arange(1, n + 1)
    wraps = following == items.last[position_category]
    following[wraps] = items.first[position_category[wraps]]
    successor = np.empty(n, dtype=np.int64)
    successor[items.by_category] = items.by_category[following]
    category_weight = np.bincount(category, weights=weight, minlength=n_cat)

    brand_names = _brand_names(config.n_brands, rng)
    home = rng.integers(n_cat, size=config.n_brands)
    if config.n_brands >= n_cat:
        home[rng.choice(config.n_brands, n_cat, replace=False)] = np.arange(n_cat)
    brands_by_home = np.argsort(home, kind="stable")
    home_bounds = np.searchsorted(home[brands_by_home], np.arange(n_cat + 1))
    home_count = np.diff(home_bounds)[category]
    # A category's leading brands make most of its items (squaring the uniform skews towards them).
    own = (home_count > 0) & (rng.random(n) < _OWN_BRAND_SHARE)
    brand = rng.integers(config.n_brands, size=n)
    pick = home_bounds[:-1][category] + (rng.random(n) ** 2 * home_count).astype(np.int64)
    brand[own] = brands_by_home[pick[own]]

    median = np.array([spec[1] for spec in specs])[category]
    brand_tier = rng.lognormal(0.0, 0.3, config.n_brands)[brand]
    raw_price = median * brand_tier * rng.lognormal(0.0, 0.5, n)
    price = np.round(np.maximum(np.round(raw_price), 1.0) - 0.01, 2)  # shop prices end in .99

    nouns = [noun for spec in specs for noun in spec[2]]
    noun_count = np.array([len(spec[2]) for spec in specs])
    noun_first = np.cumsum(noun_count) - noun_count
    noun = noun_first[category] + rng.integers(0, noun_count[category])
    parts = pl.DataFrame({
        "brand": pl.Series(brand_names).gather(brand),
        "adjective": pl.Series(_ADJECTIVES).gather(rng.integers(len(_ADJECTIVES), size=n)),
        "noun": pl.Series(nouns).gather(noun),
        "letter": pl.Series(_MODEL_LETTERS).gather(rng.integers(len(_MODEL_LETTERS), size=n)),
        "number": rng.integers(10, 1000, size=n),
    })
    titles = parts.select(pl.concat_str(
        "brand", "adjective", "noun", pl.concat_str("letter", pl.col("number").cast(pl.String)), separator=" "
    )).to_series()
    frame = pl.DataFrame({
        "item_id": _ids("i", n),
        "category": pl.Series([spec[0] for spec in specs]).gather(category),
        "brand": parts["brand"],
        "title": titles,
        "price": price,
        "created_at": pl.Series(created + _to_us(config.start)).cast(pl.Datetime("us")),
    }, schema=ITEM_COLUMNS)
    category_share = category_weight / category_weight.sum()
    conversion = None
    if config.conversion_spread > 0 or config.price_sensitivity > 0:
        # Drawn last, so the rest of the catalog is the same with or without it.
        conversion = (config.conversion_spread * rng.standard_normal(n)
                      - config.price_sensitivity * np.log(price / median))
    return _Catalog(category=category, created=created, successor=successor, category_share=category_share,
                    category_cdf=np.cumsum(category_share), items=items,
                    old_items=_Sampler.build(np.arange(n_old), category, weight, n_cat), frame=frame,
                    conversion=conversion)


def _draw_categories(catalog: _Catalog, rng: np.random.Generator, n: int) -> np.ndarray:
    """Categories drawn in proportion to their total popularity."""
    return np.minimum(np.searchsorted(catalog.category_cdf, rng.random(n), side="right"),
                      catalog.category_cdf.size - 1)


def _diurnal_times(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray, start_us: int) -> np.ndarray:
    """Times in [lo, hi) following the daily activity rhythm (rejection sampling)."""
    span = hi - lo
    times = lo + (rng.random(lo.size) * span).astype(np.int64)
    pending = np.arange(lo.size)
    for _ in range(32):  # acceptance averages over 50%, so 32 rounds leave no measurable bias
        hour = (start_us + times[pending]) // _HOUR % 24
        pending = pending[rng.random(pending.size) >= _HOURLY_ACTIVITY[hour]]
        if pending.size == 0:
            break
        times[pending] = lo[pending] + (rng.random(pending.size) * span[pending]).astype(np.int64)
    return times


def _build_users(config: SyntheticConfig, catalog: _Catalog, rng: np.random.Generator) -> _Users:
    n = config.user_count
    window = _window_us(config)
    n_new = round(n * config.new_user_share)
    join = np.zeros(n, dtype=np.int64)
    # Ids follow sign-up order, as in most shops.
    join[n - n_new:] = np.sort(_diurnal_times(rng, np.zeros(n_new, dtype=np.int64),
                                              np.full(n_new, window, dtype=np.int64), _to_us(config.start)))
    # Heavy-tailed activity, scaled by the part of the window a user is signed up for.
    activity = rng.lognormal(0.0, 1.0, n) * ((window - join) / window)

    events_per_view = 1 + config.p_click * (1 + config.p_add_to_cart * (1 + config.p_purchase))
    q = 1.0 / config.mean_session_views
    views_per_session = (1 - (1 - q) ** _MAX_SESSION_VIEWS) / q  # mean of the capped geometric length
    target_sessions = config.n_events / (events_per_view * views_per_session)
    # Everyone gets a session when the budget allows; the rest follows activity.
    guaranteed = 1 if target_sessions >= n else 0
    sessions = guaranteed + rng.poisson((target_sessions - guaranteed * n) * activity / activity.sum())

    # Favourites lean to big categories, but less than traffic does, so niche categories have fans too.
    appeal = np.cumsum(np.sqrt(catalog.category_share))
    favourites = np.searchsorted(appeal / appeal[-1], rng.random((n, 3)), side="right")
    favourites = np.minimum(favourites, config.n_categories - 1)
    n_favourites = rng.choice(np.arange(1, 4), size=n, p=_FAVOURITE_COUNT_P)
    return _Users(join=join, sessions=sessions, favourites=favourites, n_favourites=n_favourites)


def _draw_items(catalog: _Catalog, rng: np.random.Generator, category: np.ndarray,
                times: np.ndarray) -> np.ndarray:
    """Items of the given categories, by popularity, among those listed at the given times."""
    items = catalog.items.draw(rng, category)
    pending = np.flatnonzero(catalog.created[items] > times)
    for _ in range(4):  # redraw unlisted picks: exact, and few remain since most items predate the window
        if pending.size == 0:
            break
        items[pending] = catalog.items.draw(rng, category[pending])
        pending = pending[catalog.created[items[pending]] > times[pending]]
    # The rare leftovers (early in the window with many new items) come from the pre-window catalog.
    items[pending] = catalog.old_items.draw(rng, category[pending])
    return items


def _segment_exclusive_cumsum(values: np.ndarray, segment_start: np.ndarray) -> np.ndarray:
    """Sum of the earlier values of the same segment; ``segment_start`` marks each segment's first row."""
    before = np.cumsum(values) - values
    first_row = np.maximum.accumulate(np.where(segment_start, np.arange(values.size), 0))
    return before - before[first_row]


def _lognormal_us(rng: np.random.Generator, median_s: float, sigma: float, size, low_s: float,
                  high_us: int) -> np.ndarray:
    seconds = rng.lognormal(np.log(median_s), sigma, size)
    return np.clip(seconds * _SECOND, low_s * _SECOND, high_us).astype(np.int64)


def _simulate_users(config: SyntheticConfig, catalog: _Catalog, users: _Users, lo: int, hi: int,
                    rng: np.random.Generator) -> pl.DataFrame:
    """Events of users ``lo`` to ``hi - 1``: columns u (user), i (item), k (event type), t (us)."""
    window = _window_us(config)
    start_us = _to_us(config.start)
    gap = int(config.session_gap_minutes * 60 * _SECOND)

    counts = users.sessions[lo:hi]
    owner = np.repeat(np.arange(lo, hi), counts)
    n_sessions = owner.size
    starts = _diurnal_times(rng, users.join[owner], np.full(n_sessions, window, dtype=np.int64), start_us)
    first_session = np.diff(owner, prepend=-1) != 0
    # A newcomer's first session is at sign-up.
    newcomer = first_session & (users.join[owner] > 0)
    starts[newcomer] = users.join[owner[newcomer]]
    starts = starts[np.lexsort((starts, owner))]

    length = np.minimum(rng.geometric(1.0 / config.mean_session_views, n_sessions), _MAX_SESSION_VIEWS)
    n_views = int(length.sum())
    session = np.repeat(np.arange(n_sessions), length)
    session_first_view = np.cumsum(length) - length
    view_first = np.zeros(n_views, dtype=bool)
    view_first[session_first_view] = True

    # Funnel steps happen before the next view, a few seconds apart. When the funnel depends on the item, how far
    # a view gets is known once its item is drawn (below), so each view keeps room for the whole funnel.
    funnel = rng.random((3, n_views))
    steps = _lognormal_us(rng, 5.0, 0.6, (3, n_views), 1.0, _MAX_FUNNEL_STEP)
    if catalog.conversion is None:
        reached = _funnel_reached(config, funnel, 0.0)
        room = np.cumsum(steps * reached, axis=0)[2]
    else:
        room = steps.sum(axis=0)
    dwell = _lognormal_us(rng, 25.0, 1.0, n_views, 2.0, min(_MAX_DWELL, gap // 2))
    offset = _segment_exclusive_cumsum(room + dwell, view_first)
    last_view = session_first_view + length - 1
    duration = offset[last_view] + room[last_view]

    # Push sessions that would start within `gap` of the previous one's end: with the reserved room
    # before each session summed per user, start = reserved + running max of (drawn start - reserved).
    # The random extra pause keeps pushed sessions from piling up at exactly `gap`.
    pause = gap + (rng.exponential(1.0, n_sessions) * gap).astype(np.int64)
    reserved = _segment_exclusive_cumsum(duration + pause, first_session)
    pushed = pl.DataFrame({"owner": owner, "slack": starts - reserved}).select(
        pl.col("slack").cum_max().over("owner")).to_series().to_numpy()
    starts = reserved + pushed
    times = starts[session] + offset

    # Sessions are mostly about a favourite category; single views wander to the whole shop.
    favourite_cdf = _FAVOURITE_CDF[users.n_favourites[owner] - 1]
    favourite = (rng.random(n_sessions)[:, None] > favourite_cdf).sum(axis=1)
    session_category = np.where(rng.random(n_sessions) < config.category_affinity,
                                users.favourites[owner, favourite],
                                _draw_categories(catalog, rng, n_sessions))
    view_category = np.where(rng.random(n_views) < config.session_focus, session_category[session],
                             _draw_categories(catalog, rng, n_views))
    items = _draw_items(catalog, rng, view_category, times)

    # The successor chain needs the previous view's final item, so walk the positions in order; sessions
    # sorted by length make those still running at a position a prefix.
    follows = rng.random(n_views) < config.sequential_strength
    by_length = np.argsort(-length, kind="stable")
    descending = -length[by_length]
    first_views = session_first_view[by_length]
    for position in range(1, int(length.max(initial=0))):
        running = np.searchsorted(descending, -position, side="left")
        view = first_views[:running] + position
        view = view[follows[view]]
        candidate = catalog.successor[items[view - 1]]
        listed = catalog.created[candidate] <= times[view]
        items[view[listed]] = candidate[listed]

    if catalog.conversion is not None:
        reached = _funnel_reached(config, funnel, catalog.conversion[items])
    step_end = np.cumsum(steps * reached, axis=0)
    user = owner[session]
    event_times = np.concatenate([times[None, :], times[None, :] + step_end])
    keep = np.concatenate([np.ones((1, n_views), dtype=bool), reached]) & (event_times < window)
    return pl.DataFrame({
        "u": np.broadcast_to(user, (4, n_views))[keep].astype(np.int32),
        "i": np.broadcast_to(items, (4, n_views))[keep].astype(np.int32),
        "k": np.broadcast_to(np.arange(4, dtype=np.int8)[:, None], (4, n_views))[keep],
        "t": event_times[keep],
    })
