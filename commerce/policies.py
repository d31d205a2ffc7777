"""Return policies by region and category, as pure functions over plain data.

The rules below are the defaults the seed writes into the ``return_policies`` table; the
services read the table (so operators can change a window without a deploy) and hand the row to
these functions as a :class:`PolicyRule`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from commerce.errors import (
    REASON_ALREADY_RETURNED,
    REASON_FINAL_SALE,
    REASON_NON_RETURNABLE_CATEGORY,
    REASON_NOT_DELIVERED,
    REASON_ORDER_CANCELLED,
    REASON_WINDOW_EXPIRED,
)
from commerce.models import ORDER_CANCELLED, ORDER_DELIVERED, ORDER_RETURNED


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
