"""Bilingual names of colours, categories and product attributes (canonical key → words)."""

from __future__ import annotations

import re
from dataclasses import dataclass

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


# Product attribute keys with their bilingual names and the words shoppers use for them
# (`make catalog` writes the words into data/lookups so the NLU can tag an `attribute` entity).
# kind "flag": a yes/no property (the catalog says yes or no, with details); "text": a value.
@dataclass(frozen=True)
class AttributeTerm:
    name_en: str
    name_zh: str
    kind: str  # "flag" | "text"
    words: tuple[str, ...]  # surface words in both languages, lower-case


PRODUCT_ATTRIBUTES: dict[str, AttributeTerm] = {
    "material": AttributeTerm(
        "material",
        "材质",
        "text",
        ("material", "made of", "fabric", "what is it made", "材质", "面料", "什么材料", "做的"),
    ),
    "fit": AttributeTerm(
        "fit",
        "尺码偏差",
        "text",
        (
            "fit",
            "runs small",
            "runs large",
            "run small",
            "run large",
            "true to size",
            "size up",
            "size down",
            "偏大",
            "偏小",
            "正码",
            "版型",
            "合身",
        ),
    ),
    "waterproof": AttributeTerm(
        "waterproof",
        "防水",
        "flag",
        ("waterproof", "water-resistant", "water resistant", "防水", "防雨"),
    ),
    "weight": AttributeTerm(
        "weight", "重量", "text", ("weight", "how heavy", "weigh", "重量", "多重", "重不重")
    ),
    "care": AttributeTerm(
        "care",
        "洗护",
        "text",
        ("care", "wash", "washing machine", "machine washable", "clean it", "洗", "清洗", "保养"),
    ),
    "features": AttributeTerm(
        "features", "功能特点", "text", ("features", "feature", "功能", "特点", "亮点")
    ),
    "hood": AttributeTerm("hood", "帽兜", "flag", ("hood", "hooded", "连帽", "帽兜", "兜帽")),
    "pockets": AttributeTerm("pockets", "口袋", "flag", ("pocket", "pockets", "口袋")),
    "battery": AttributeTerm(
        "battery life",
        "续航",
        "text",
        ("battery", "battery life", "charge", "续航", "电池", "充电"),
    ),
    "warranty": AttributeTerm(
        "warranty", "保修", "text", ("warranty", "guarantee", "保修", "质保")
    ),
    "size_guide": AttributeTerm(
        "size guide",
        "尺码表",
        "text",
        ("size guide", "size chart", "measurements", "尺码表", "尺码指南", "尺寸表"),
    ),
}


def attribute_in(text: str | None) -> str | None:
    """The attribute key whose longest surface word occurs in ``text``; None when none does.

    >>> attribute_in("Does the rain jacket have a hood?")
    'hood'
    """
    if not text:
        return None
    lowered = text.lower()
    best: tuple[int, str] | None = None
    for key, term in PRODUCT_ATTRIBUTES.items():
        for word in (key.replace("_", " "), *term.words):
            if _word_in(word, lowered) and (best is None or len(word) > best[0]):
                best = (len(word), key)
    return best[1] if best else None


def _word_in(word: str, text: str) -> bool:
    """Whole-word match for Latin words ("fit" is not in "outfit"), substring for Chinese."""
    if not word.isascii():
        return word in text
    return re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text) is not None
