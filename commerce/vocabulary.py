"""Bilingual names of colours and categories (canonical English key → Chinese)."""

from __future__ import annotations

COLOURS: dict[str, str] = {
    "black": "黑色",
    "white": "白色",
    "grey": "灰色",
    "navy": "藏青色",
    "blue": "蓝色",
    "red": "红色",
    "green": "绿色",
    "beige": "米色",
    "brown": "棕色",
    "pink": "粉色",
    "yellow": "黄色",
    "silver": "银色",
}
# Extra spellings users type, mapped to the canonical key.
COLOUR_ALIASES: dict[str, str] = {
    "gray": "grey",
    "navy blue": "navy",
    "dark blue": "navy",
    "黑": "black",
    "白": "white",
    "灰": "grey",
    "蓝": "blue",
    "红": "red",
    "绿": "green",
    "深蓝色": "navy",
    "藏青": "navy",
    "咖啡色": "brown",
    "银": "silver",
}

CATEGORIES: dict[str, str] = {
    "shoes": "鞋",
    "t-shirts": "T恤",
    "jackets": "夹克",
    "dresses": "连衣裙",
    "bags": "包",
    "accessories": "配饰",
    "electronics": "电子产品",
    "underwear": "内衣",
    "gift-cards": "礼品卡",
}

SIZES: tuple[str, ...] = (
    "XS",
    "S",
    "M",
    "L",
    "XL",
    "XXL",
    "36",
    "37",
    "38",
    "39",
    "40",
    "41",
    "42",
    "43",
    "44",
    "45",
)


def normalize_colour(raw: str | None) -> str | None:
    """Map an English or Chinese colour name to its canonical key; None if unknown/empty."""
    if raw is None:
        return None
    text = raw.strip().lower()
    if not text:
        return None
    if text in COLOURS:
        return text
    if text in COLOUR_ALIASES:
        return COLOUR_ALIASES[text]
    for key, zh in COLOURS.items():
        if text == zh:
            return key
    return None


def normalize_size(raw: str | None) -> str | None:
    """Upper-case a size and map common words (medium → M, 中号 → M); None if empty."""
    if raw is None:
        return None
    text = raw.strip().upper()
    words = {
        "EXTRA SMALL": "XS",
        "SMALL": "S",
        "MEDIUM": "M",
        "LARGE": "L",
        "EXTRA LARGE": "XL",
        "小号": "S",
        "中号": "M",
        "大号": "L",
        "加大号": "XL",
        "2XL": "XXL",
    }
    text = words.get(text, text)
    return text.removesuffix("码") or None
