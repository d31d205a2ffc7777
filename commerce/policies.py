"""Business rules as pure functions over plain data: return policies, what a return or an
exchange takes, and complaint triage.

Return policies: the rules below are the defaults the seed writes into the ``return_policies``
table; the services read the table (so operators can change a window without a deploy) and hand
the row to these functions as a :class:`PolicyRule`.

Complaint triage: the category comes from keywords a designer edits in
``data/complaint_keywords.yml`` (:func:`load_complaint_keywords`); the severity from the
frustration score and the cut-offs of :mod:`contract`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml

from commerce.dto import ItemEligibility, VariantStock
from commerce.errors import (
    REASON_ALREADY_RETURNED,
    REASON_FINAL_SALE,
    REASON_NON_RETURNABLE_CATEGORY,
    REASON_NOT_DELIVERED,
    REASON_ORDER_CANCELLED,
    REASON_WINDOW_EXPIRED,
    ConfigurationError,
)
from commerce.models import ORDER_CANCELLED, ORDER_DELIVERED, ORDER_RETURNED, TICKET_CATEGORIES
from contract import STRONG_FRUSTRATION, URGENT_FRUSTRATION


@dataclass(frozen=True)
class PolicyRule:
    """One return rule; ``category`` None is the region's default."""

    region: str
    category: str | None
    returnable: bool
    window_days: int
    no_reason: bool
    description_en: str
    description_zh: str


DEFAULT_POLICIES: tuple[PolicyRule, ...] = (
    PolicyRule("CN", None, True, 7, True, "7-day no-reason return", "七天无理由退货"),
    PolicyRule("US", None, True, 30, False, "30-day returns", "30天退货"),
    PolicyRule("INTL", None, True, 30, False, "30-day returns", "30天退货"),
    PolicyRule("US", "electronics", True, 15, False, "15-day returns on electronics", "电子产品15天退货"),
    PolicyRule("INTL", "electronics", True, 15, False, "15-day returns on electronics", "电子产品15天退货"),
    PolicyRule("CN", "underwear", False, 0, False, "Underwear cannot be returned for hygiene reasons", "贴身衣物不支持退货"),
    PolicyRule("US", "underwear", False, 0, False, "Underwear cannot be returned for hygiene reasons", "贴身衣物不支持退货"),
    PolicyRule("INTL", "underwear", False, 0, False, "Underwear cannot be returned for hygiene reasons", "贴身衣物不支持退货"),
    PolicyRule("CN", "gift-cards", False, 0, False, "Gift cards cannot be returned", "礼品卡不支持退货"),
    PolicyRule("US", "gift-cards", False, 0, False, "Gift cards cannot be returned", "礼品卡不支持退货"),
    PolicyRule("INTL", "gift-cards", False, 0, False, "Gift cards cannot be returned", "礼品卡不支持退货"),
)  # fmt: skip

# Used when the table holds no rule for a region at all (fail closed would block every return;
# the standard 30-day window is the documented default).
FALLBACK_POLICY = PolicyRule("*", None, True, 30, False, "30-day returns", "30天退货")


def pick_policy(rules: Iterable[PolicyRule], region: str, category: str) -> PolicyRule:
    """Pick the most specific rule: (region, category), else (region, default), else fallback."""
    default = None
    for rule in rules:
        if rule.region != region:
            continue
        if rule.category == category:
            return rule
        if rule.category is None:
            default = rule
    return default or FALLBACK_POLICY


def return_deadline(delivered_at: datetime | date, window_days: int) -> date:
    """Last day a return can be opened: delivery day + window (inclusive)."""
    day = delivered_at.date() if isinstance(delivered_at, datetime) else delivered_at
    return day + timedelta(days=window_days)


def order_return_block(order_status: str, delivered_at: datetime | None) -> str | None:
    """Order-level reason nothing can be returned, or None.

    Not-yet-delivered orders are not returnable (the customer should cancel instead).
    """
    if order_status == ORDER_CANCELLED:
        return REASON_ORDER_CANCELLED
    if order_status == ORDER_RETURNED:
        return REASON_ALREADY_RETURNED
    if order_status != ORDER_DELIVERED or delivered_at is None:
        return REASON_NOT_DELIVERED
    return None


def item_return_block(
    *,
    policy: PolicyRule,
    final_sale: bool,
    delivered_at: datetime,
    today: date,
    returnable_quantity: int,
) -> str | None:
    """Item-level reason the item cannot be returned, or None when it can.

    Checks, most permanent first: final sale, non-returnable category, already returned,
    window expired.
    """
    if final_sale:
        return REASON_FINAL_SALE
    if not policy.returnable:
        return REASON_NON_RETURNABLE_CATEGORY
    if returnable_quantity <= 0:
        return REASON_ALREADY_RETURNED
    if today > return_deadline(delivered_at, policy.window_days):
        return REASON_WINDOW_EXPIRED
    return None


# ---- what a return or an exchange takes ------------------------------------------------------


def returnable_items(
    items: Iterable[ItemEligibility], product: str | None = None
) -> list[ItemEligibility]:
    """The items a return takes: every eligible one, or only those of the product the customer
    named (English or Chinese name, or SKU) when any match.

    Args:
        items: an order's items with their eligibility.
        product: what the customer called the product, if anything.
    """
    eligible = [i for i in items if i.eligible and i.returnable_quantity > 0]
    if product:
        wanted = str(product).casefold()
        named = [
            i
            for i in eligible
            if wanted in (i.name_en.casefold(), i.name_zh.casefold(), i.sku.casefold())
        ]
        if named:
            return named
    return eligible


def pick_replacement(
    variants: Iterable[VariantStock],
    returned_sku: str,
    *,
    returned_colour: str | None,
    colour_named: bool,
) -> VariantStock | None:
    """The variant an exchange sends instead of ``returned_sku``, or None.

    The first in-stock variant other than the returned one; the colour stays the returned
    item's unless the customer named one (any colour when the same one is not in stock).

    Args:
        variants: the product's variants in the size (and colour) asked for.
        returned_colour: the returned variant's colour.
        colour_named: whether the customer asked for a colour.
    """
    options = [v for v in variants if v.sku != returned_sku and v.available > 0]
    if not colour_named and returned_colour is not None:
        options = [v for v in options if v.colour == returned_colour] or options
    return options[0] if options else None


# ---- complaint triage ---------------------------------------------------------------------------

#: Where a designer edits the complaint keywords.
COMPLAINT_KEYWORDS_PATH = Path(__file__).resolve().parent.parent / "data" / "complaint_keywords.yml"
#: The category of a complaint none of whose words are listed.
DEFAULT_COMPLAINT_CATEGORY = "complaint"
SEVERITY_NORMAL = "normal"
SEVERITY_HIGH = "high"
SEVERITY_URGENT = "urgent"


@dataclass(frozen=True)
class CategoryKeywords:
    """The words (lower-case) that file a complaint under ``category``."""

    category: str
    keywords: tuple[str, ...]


@functools.lru_cache(maxsize=8)
def load_complaint_keywords(
    path: str | Path = COMPLAINT_KEYWORDS_PATH,
) -> tuple[CategoryKeywords, ...]:
    """The complaint categories and their keywords, in the file's order (read once per path).

    Raises:
        ConfigurationError: the file is missing or unreadable, or names a category that is not a
            ticket category, or a category without keywords.
    """
    hint = f"fix {path} (see the comment at its top)"
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigurationError(f"complaint keywords: cannot read {path}: {e}; {hint}") from e
    entries = data.get("categories") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigurationError(
            f"complaint keywords: expected a non-empty 'categories' list in {path}; {hint}"
        )
    rules = []
    for entry in entries:
        category = entry.get("category") if isinstance(entry, dict) else None
        words = entry.get("keywords") if isinstance(entry, dict) else None
        if category not in TICKET_CATEGORIES:
            raise ConfigurationError(
                f"complaint keywords: unknown category {category!r} in {path}; expected one of "
                f"{', '.join(TICKET_CATEGORIES)}"
            )
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w for w in words)
        ):
            raise ConfigurationError(
                f"complaint keywords: category {category!r} needs a list of words in {path}"
            )
        rules.append(CategoryKeywords(category, tuple(w.casefold() for w in words)))
    return tuple(rules)


def complaint_category(text: str, rules: Sequence[CategoryKeywords] | None = None) -> str:
    """The ticket category of a complaint: the first category with a keyword in ``text``.

    Args:
        rules: categories and keywords; by default :func:`load_complaint_keywords`.
    """
    lowered = (text or "").casefold()
    for rule in load_complaint_keywords() if rules is None else rules:
        if any(word in lowered for word in rule.keywords):
            return rule.category
    return DEFAULT_COMPLAINT_CATEGORY


def complaint_severity(frustration: float, repeated: bool) -> str:
    """How urgent a complaint's ticket is, from the latest message's frustration score and
    whether the customer has been strongly negative repeatedly (cut-offs in :mod:`contract`)."""
    if repeated and frustration >= URGENT_FRUSTRATION:
        return SEVERITY_URGENT
    if frustration >= STRONG_FRUSTRATION or repeated:
        return SEVERITY_HIGH
    return SEVERITY_NORMAL
