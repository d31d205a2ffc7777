"""Product questions answered from the catalog: facts, attributes, prices, comparisons and open
questions (nearest description passage or FAQ answer).

Every answer comes in both languages, worded here; the action server only picks the language
and formats. Nothing is guessed: an attribute the catalog does not list gets an honest "not
listed" answer, and an open question whose best passage scores below the calibrated
:data:`ANSWER_MIN_SCORE` gets ``None`` (the caller offers a colleague).
"""

from __future__ import annotations

import difflib
import re

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from commerce.dto import Money, ProductAnswer, ProductFacts, ProductLookup
from commerce.errors import InvalidInput, ProductNotFound
from commerce.models import (
    REGION_CN,
    REGIONS,
    STORE_CN,
    STORE_CURRENCIES,
    STORE_INTL,
    STORES,
    Inventory,
    Product,
    ProductAttribute,
    ProductVariant,
    SizeGuide,
)
from commerce.services._common import check_text
from commerce.services.catalog import PassageIndex, passage_index
from commerce.vocabulary import CATEGORIES, COLOURS, PRODUCT_ATTRIBUTES, attribute_in

#: An open question is answered only when its best passage's cosine similarity reaches the bar
#: of its language (E5 scores Chinese pairs higher across the board, so one bar cannot serve
#: both). Calibrated with the real multilingual-e5-small on the calibration split of
#: bench/data/product_questions.yml (`bench/product_qa_bench.py --calibrate`): per language, the
#: bar that maximises correct answers plus correct refusals there; the test split never sets it.
ANSWER_MIN_SCORE: dict[str, float] = {"en": 0.831, "zh": 0.877}
#: How many near names a "we don't carry that" answer offers.
CANDIDATES = 3
_MAX_QUESTION = 500
_CURRENCY_SIGNS = {"USD": "$", "CNY": "¥"}
_PRICE_WORDS = re.compile(
    r"\b(price|prices|cost|costs|how much|expensive|cheap)\b|多少钱|价格|价钱|贵不贵|几块钱|售价"
)


def store_for(region: str | None, language: str) -> str:
    """The store whose prices and currency apply to a shopper.

    Args:
        region: the verified customer's region ("CN", "US", "INTL"), None for guests.
        language: the conversation's language ("en" / "zh"); decides for guests.

    Returns:
        "CN" (CNY prices) or "INTL" (USD prices).
    """
    if region is not None:
        if region not in REGIONS:
            raise InvalidInput("region", f"expected one of {', '.join(REGIONS)}, got {region!r}")
        return STORE_CN if region == REGION_CN else STORE_INTL
    return STORE_CN if language == "zh" else STORE_INTL


def _check_store(store: object) -> str:
    if store not in STORES:
        raise InvalidInput("store", f"expected one of {', '.join(STORES)}, got {store!r}")
    return store  # type: ignore[return-value]


def format_money(money: Money) -> str:
    """``$129.00`` / ``¥903`` (whole yuan without decimals, as Chinese shops show them)."""
    sign = _CURRENCY_SIGNS.get(money.currency, money.currency + " ")
    whole, cents = divmod(money.amount_cents, 100)
    if money.currency == "CNY" and cents == 0:
        return f"{sign}{whole:,}"
    return f"{sign}{whole:,}.{cents:02d}"


# ---------------------------------------------------------------- facts


def _load_products(session: Session, codes: list[str] | None = None) -> list[Product]:
    query = (
        select(Product)
        .options(selectinload(Product.variants).selectinload(ProductVariant.prices))
        .order_by(Product.id)
    )
    if codes is not None:
        query = query.where(Product.code.in_(codes))
    return list(session.execute(query).scalars())


def variant_price(variant: ProductVariant, store: str) -> Money:
    """The variant's price in ``store``; a catalog without a price list falls back to the
    variant's own (INTL) price, and never shows a USD amount as the CN store's."""
    for price in variant.prices:
        if price.store == store:
            return Money(price.price_cents, price.currency)
    if store == STORE_INTL or variant.currency == STORE_CURRENCIES[store]:
        return Money(variant.price_cents, variant.currency)
    raise ProductNotFound(f"{variant.sku} has no price in the {store} store")


def _facts(session: Session, products: list[Product], store: str) -> list[ProductFacts]:
    ids = [p.id for p in products]
    attributes: dict[int, list[ProductAttribute]] = {}
    for row in session.execute(
        select(ProductAttribute)
        .where(ProductAttribute.product_id.in_(ids))
        .order_by(ProductAttribute.id)
    ).scalars():
        attributes.setdefault(row.product_id, []).append(row)
    in_stock_ids = set(
        session.execute(
            select(ProductVariant.product_id)
            .join(Inventory, Inventory.variant_id == ProductVariant.id)
            .where(ProductVariant.product_id.in_(ids), Inventory.on_hand - Inventory.reserved > 0)
            .distinct()
        ).scalars()
    )
    facts = []
    for p in products:
        prices = [variant_price(v, store) for v in p.variants]
        low = min(prices, key=lambda m: m.amount_cents)
        high = max(prices, key=lambda m: m.amount_cents)
        facts.append(
            ProductFacts(
                code=p.code,
                category=p.category,
                name_en=p.name_en,
                name_zh=p.name_zh,
                description_en=p.description_en,
                description_zh=p.description_zh,
                attributes=tuple((a.key, a.value_en, a.value_zh) for a in attributes.get(p.id, [])),
                price_min=low,
                price_max=high,
                sizes=tuple(dict.fromkeys(v.size for v in p.variants if v.size)),
                colours=tuple(dict.fromkeys(v.colour for v in p.variants if v.colour)),
                in_stock=p.id in in_stock_ids,
                rating=p.rating,
                review_count=p.review_count or 0,
                sales_count=p.sales_count or 0,
            )
        )
    return facts


def product_facts(session_factory, code: str, store: str) -> ProductFacts:
    """Everything the catalog states about one product, priced for ``store``.

    Raises:
        ProductNotFound: no product has that code.
        InvalidInput: unknown store.
    """
    _check_store(store)
    code = check_text(code, "code", max_len=40).upper()
    with session_factory() as session:
        products = _load_products(session, [code])
        if not products:
            raise ProductNotFound(f"no product {code!r}")
        return _facts(session, products, store)[0]


# ---------------------------------------------------------------- finding the product


def _phrases(product: Product) -> list[str]:
    synonyms = [s.strip() for s in product.synonyms.split(",") if s.strip()]
    return [product.code, product.name_en, product.name_zh, *synonyms]


def _normal(text: str) -> str:
    return re.sub(r"\s+", " ", text.casefold()).strip()


def _mentions(phrase: str, text: str) -> bool:
    """Whole words for Latin phrases ("cap" is not in "capacity"), substring for Chinese."""
    if not phrase.isascii():
        return phrase.replace(" ", "") in text.replace(" ", "")
    return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-])", text) is not None


def lookup_product(session_factory, text: str, language: str, store: str) -> ProductLookup:
    """The product a text names by code, name or synonym, in either language.

    The longest matching phrase wins ("trail runner 1" over "trail runner"); when it names
    several products, or nothing matches, ``found`` is None and ``candidates`` holds the
    nearest products by name, so the caller can ask "did you mean …?" or say the shop does not
    carry it.

    Args:
        text: an entity value or the customer's whole message.
        language: "en" / "zh", which names the near-match search compares first.
        store: prices of the returned facts.
    """
    _check_store(store)
    text = check_text(text, "text", max_len=_MAX_QUESTION)
    with session_factory() as session:
        products = _load_products(session)
        owners, _phrase = _named(products, _normal(text))
        if len(owners) == 1:
            return ProductLookup(found=_facts(session, owners, store)[0], candidates=())
        if not owners:
            owners = _nearest(products, _normal(text), language)
        return ProductLookup(found=None, candidates=tuple(_facts(session, owners, store)))


def _named(products: list[Product], wanted: str) -> tuple[list[Product], str]:
    """The products whose longest phrase found in ``wanted`` is the longest, and that phrase."""
    best, owners = "", []
    for p in products:
        found = max(
            (ph for ph in map(_normal, _phrases(p)) if ph and _mentions(ph, wanted)),
            key=len,
            default="",
        )
        if len(found) > len(best):
            best, owners = found, [p]
        elif found and len(found) == len(best):
            owners.append(p)
    return owners, best


def _nearest(products: list[Product], wanted: str, language: str) -> list[Product]:
    """Up to :data:`CANDIDATES` products whose names look most like ``wanted``."""

    def likeness(p: Product) -> float:
        names = [_normal(n) for n in _phrases(p)]
        first = _normal(p.name_zh if language == "zh" else p.name_en)
        best = max(difflib.SequenceMatcher(None, wanted, n).ratio() for n in names)
        return best + 0.01 * difflib.SequenceMatcher(None, wanted, first).ratio()

    scored = sorted(products, key=lambda p: (-likeness(p), p.id))
    return [p for p in scored[:CANDIDATES] if likeness(p) >= 0.3]


# ---------------------------------------------------------------- answers


def answer_attribute(session_factory, code: str, attribute: str, store: str) -> ProductAnswer:
    """One attribute of one product, from the structured catalog only.

    Args:
        attribute: a key of :data:`commerce.vocabulary.PRODUCT_ATTRIBUTES` (or one of its
            surface words: "waterproof", "防水", "runs small").

    Returns:
        The value (score 1.0), or a "not listed" answer (score 0) when the catalog does not
        state it, never a guess.

    Raises:
        ProductNotFound: unknown code. InvalidInput: unknown attribute or store.
    """
    key = attribute if attribute in PRODUCT_ATTRIBUTES else attribute_in(attribute)
    if key is None:
        raise InvalidInput(
            "attribute", f"expected one of {', '.join(PRODUCT_ATTRIBUTES)}, got {attribute!r}"
        )
    facts = product_facts(session_factory, code, store)
    term = PRODUCT_ATTRIBUTES[key]
    if key == "size_guide":
        value = _size_guide(session_factory, facts)
    else:
        value = next(((en, zh) for k, en, zh in facts.attributes if k == key), None)
    if value is None:
        return ProductAnswer(
            code=facts.code,
            name_en=facts.name_en,
            name_zh=facts.name_zh,
            text_en=f"The {facts.name_en} listing doesn't state its {term.name_en}, "
            "so I'd rather not guess.",
            text_zh=f"{facts.name_zh}的商品信息里没有写明{term.name_zh}，我不想乱猜。",
            source="attribute",
            score=0.0,
            ref=key,
        )
    return ProductAnswer(
        code=facts.code,
        name_en=facts.name_en,
        name_zh=facts.name_zh,
        text_en=f"{facts.name_en} — {term.name_en}: {value[0]}",
        text_zh=f"{facts.name_zh} — {term.name_zh}：{value[1]}",
        source="attribute",
        score=1.0,
        ref=key,
    )


def _size_guide(session_factory, facts: ProductFacts) -> tuple[str, str] | None:
    """The category's size guide for the sizes the product comes in, one line per size."""
    if not facts.sizes:
        return None
    with session_factory() as session:
        rows = session.execute(
            select(SizeGuide)
            .where(SizeGuide.category == facts.category, SizeGuide.size.in_(facts.sizes))
            .order_by(SizeGuide.position)
        ).scalars()
        rows = list(rows)
    if not rows:
        return None
    return (
        "; ".join(f"{r.size}: {r.measurements_en}" for r in rows),
        "；".join(f"{r.size}：{r.measurements_zh}" for r in rows),
    )


def price_answer(session_factory, code: str, store: str) -> ProductAnswer:
    """The product's price in the store's currency, naming the variants that cost more.

    Raises:
        ProductNotFound: unknown code (or no price in that store). InvalidInput: unknown store.
    """
    _check_store(store)
    code = check_text(code, "code", max_len=40).upper()
    with session_factory() as session:
        products = _load_products(session, [code])
        if not products:
            raise ProductNotFound(f"no product {code!r}")
        product = products[0]
        prices = [(v, variant_price(v, store)) for v in product.variants]
    low = min(m.amount_cents for _, m in prices)
    currency = prices[0][1].currency
    base = format_money(Money(low, currency))
    if all(m.amount_cents == low for _, m in prices):
        text_en = f"{product.name_en}: {base} in our {_store_en(store)} store."
        text_zh = f"{product.name_zh}在{_store_zh(store)}售价{base}。"
    else:
        dearer: dict[int, list[str]] = {}
        for v, m in prices:
            if m.amount_cents > low:
                dearer.setdefault(m.amount_cents, []).append(_variant_label(v))
        extra_en = "; ".join(
            f"{', '.join(dict.fromkeys(labels))}: {format_money(Money(amount, currency))}"
            for amount, labels in sorted(dearer.items())
        )
        extra_zh = "；".join(
            f"{'、'.join(dict.fromkeys(_variant_label(v, zh=True) for v, m in prices if m.amount_cents == amount))}"
            f"：{format_money(Money(amount, currency))}"
            for amount in sorted(dearer)
        )
        text_en = f"{product.name_en}: from {base} in our {_store_en(store)} store ({extra_en})."
        text_zh = f"{product.name_zh}在{_store_zh(store)}售价{base}起（{extra_zh}）。"
    return ProductAnswer(
        code=product.code,
        name_en=product.name_en,
        name_zh=product.name_zh,
        text_en=text_en,
        text_zh=text_zh,
        source="price",
        score=1.0,
        ref="price",
    )


def _store_en(store: str) -> str:
    return "China" if store == STORE_CN else "international"


def _store_zh(store: str) -> str:
    return "中国站" if store == STORE_CN else "国际站"


def _variant_label(variant: ProductVariant, zh: bool = False) -> str:
    """``size XL`` / ``XL码``, or the colour for one-size products."""
    if variant.size:
        return f"{variant.size}码" if zh else f"size {variant.size}"
    if variant.colour:
        return COLOURS.get(variant.colour, variant.colour) if zh else variant.colour
    return "一款" if zh else "one size"


def compare_products(
    session_factory, code_a: str, code_b: str, store: str, language: str
) -> ProductAnswer:
    """Two products side by side: price, rating and every attribute on which they differ.

    ``code`` / ``name_*`` of the answer are the first product's; both names are in the text.
    ``language`` orders nothing today (both texts are always given); it is kept so a caller
    never has to change when the wording starts to depend on it.

    Raises:
        ProductNotFound: either code unknown. InvalidInput: the same product twice.
    """
    a = product_facts(session_factory, code_a, store)
    b = product_facts(session_factory, code_b, store)
    if a.code == b.code:
        raise InvalidInput("code_b", "compare two different products")
    lines_en = [f"{a.name_en} vs {b.name_en}:"]
    lines_zh = [f"{a.name_zh} 对比 {b.name_zh}："]
    lines_en.append(f"- price: {_price_range(a)} vs {_price_range(b)}")
    lines_zh.append(f"- 价格：{_price_range(a)} 对比 {_price_range(b)}")
    if a.rating is not None and b.rating is not None and a.rating != b.rating:
        lines_en.append(f"- rating: {a.rating:.1f} vs {b.rating:.1f}")
        lines_zh.append(f"- 评分：{a.rating:.1f} 对比 {b.rating:.1f}")
    values_a = {k: (en, zh) for k, en, zh in a.attributes}
    values_b = {k: (en, zh) for k, en, zh in b.attributes}
    flags = _flags(session_factory, (a.code, b.code))
    for key, term in PRODUCT_ATTRIBUTES.items():
        va, vb = values_a.get(key), values_b.get(key)
        if va == vb:
            continue
        flag_a, flag_b = flags.get((a.code, key)), flags.get((b.code, key))
        if flag_a is not None and flag_a == flag_b:
            continue  # both yes or both no: the details differ, the answer does not
        none_en, none_zh = "not listed", "未注明"
        lines_en.append(
            f"- {term.name_en}: {va[0] if va else none_en} vs {vb[0] if vb else none_en}"
        )
        lines_zh.append(
            f"- {term.name_zh}：{va[1] if va else none_zh} 对比 {vb[1] if vb else none_zh}"
        )
    return ProductAnswer(
        code=a.code,
        name_en=a.name_en,
        name_zh=a.name_zh,
        text_en="\n".join(lines_en),
        text_zh="\n".join(lines_zh),
        source="attribute",
        score=1.0,
    )


def _flags(session_factory, codes: tuple[str, ...]) -> dict[tuple[str, str], bool]:
    """``{(code, key): flag}`` of the yes/no attributes of ``codes``."""
    with session_factory() as session:
        rows = session.execute(
            select(Product.code, ProductAttribute.key, ProductAttribute.flag)
            .join(Product, Product.id == ProductAttribute.product_id)
            .where(Product.code.in_(codes), ProductAttribute.flag.is_not(None))
        ).all()
    return {(code, key): bool(flag) for code, key, flag in rows}


def _price_range(facts: ProductFacts) -> str:
    low, high = format_money(facts.price_min), format_money(facts.price_max)
    return low if low == high else f"{low}–{high}"


def answer_question(
    session_factory,
    question: str,
    language: str,
    store: str,
    code: str | None = None,
    *,
    index: PassageIndex | None = None,
    min_score: float | None = None,
) -> ProductAnswer | None:
    """The description passage or FAQ answer nearest to an open question.

    Args:
        question: the customer's words.
        language: "en" / "zh" (the answer carries both texts either way).
        store: the store the shopper sees (checked; passages carry no prices).
        code: the product in context; limits the search to its passages and the FAQ answers.
        index: the passage index (default: the one `make catalog` built, see
            :func:`commerce.services.catalog.passage_index`).
        min_score: the refusal bar (default: :data:`ANSWER_MIN_SCORE` of ``language``).

    Returns:
        The passage (``source`` "passage", ``score`` its cosine similarity), or None when even
        the best passage scores below the bar: the caller hands over instead of guessing.

    Raises:
        ConfigurationError: no index built (`make catalog`). ProductNotFound: unknown ``code``.
    """
    _check_store(store)
    question = check_text(question, "question", max_len=_MAX_QUESTION)
    index = index or passage_index()
    if code is not None:
        code = check_text(code, "code", max_len=40).upper()
        with session_factory() as session:
            if not session.execute(select(Product.id).where(Product.code == code)).first():
                raise ProductNotFound(f"no product {code!r}")
    hits = index.search(question, code=code, top=1)
    bar = ANSWER_MIN_SCORE.get(language, max(ANSWER_MIN_SCORE.values()))
    bar = bar if min_score is None else min_score
    if not hits or hits[0].score < bar:
        return None
    hit = hits[0]
    name_en = name_zh = ""
    if hit.passage.code:
        with session_factory() as session:
            row = session.execute(
                select(Product.name_en, Product.name_zh).where(Product.code == hit.passage.code)
            ).first()
        if row is None:  # the index is older than the catalog: never answer for a lost product
            return None
        name_en, name_zh = row
    return ProductAnswer(
        code=hit.passage.code,
        name_en=name_en,
        name_zh=name_zh,
        text_en=hit.passage.text_en,
        text_zh=hit.passage.text_zh,
        source="passage",
        score=round(hit.score, 4),
        ref=hit.passage.key,
    )


def answer_product_question(
    session_factory,
    text: str,
    language: str,
    store: str,
    code: str | None = None,
    *,
    index: PassageIndex | None = None,
    min_score: float | None = None,
) -> ProductAnswer | None:
    """One free-text product question, routed as the dialogue routes it: an attribute word →
    the attribute, a price word → the price, anything else → the nearest passage.

    The product is the one named in ``text`` (:func:`lookup_product`), else ``code`` (the one in
    context). Used by REST callers that have no NLU and by bench/product_qa_bench.py.

    Returns:
        The answer, or None when the question cannot be answered with confidence (no product
        for a price/attribute question, or no passage above the bar).
    """
    _check_store(store)
    text = check_text(text, "text", max_len=_MAX_QUESTION)
    wanted = _normal(text)
    with session_factory() as session:
        owners, phrase = _named(_load_products(session), wanted)
    if len(owners) == 1:
        code = owners[0].code
    # The product's own name must not count as a question word (充电宝 is not about charging).
    rest = wanted.replace(phrase, " ") if phrase and len(owners) == 1 else wanted
    attribute = attribute_in(rest)
    if code is not None and attribute is not None:
        # Not listed stays not listed: a passage search would find the product's own passages
        # (they carry its name) and answer something else than what was asked.
        return answer_attribute(session_factory, code, attribute, store)
    if code is not None and _PRICE_WORDS.search(rest):
        return price_answer(session_factory, code, store)
    return answer_question(
        session_factory, text, language, store, code, index=index, min_score=min_score
    )


def category_name(category: str, language: str) -> str:
    """The category's name in ``language`` ("running shoes" stays the key in English)."""
    return CATEGORIES.get(category, category) if language == "zh" else category
