"""Catalog vocabulary for other components (the catalog entity extractor builds its lookup)."""

from __future__ import annotations

from sqlalchemy import select

from commerce.dto import CatalogProduct, CatalogTerms
from commerce.models import Product, ProductVariant
from commerce.vocabulary import CATEGORIES, COLOURS, SIZES


def list_catalog_terms(session_factory) -> CatalogTerms:
    """Product names and synonyms, sizes, colours and categories in both languages."""
    with session_factory() as session:
        products = session.execute(select(Product).order_by(Product.id)).scalars().all()
        sizes_in_use = {
            s for (s,) in session.execute(select(ProductVariant.size).distinct()) if s is not None
        }
        return CatalogTerms(
            products=tuple(
                CatalogProduct(
                    code=p.code,
                    category=p.category,
                    name_en=p.name_en,
                    name_zh=p.name_zh,
                    synonyms=tuple(s.strip() for s in p.synonyms.split(",") if s.strip()),
                )
                for p in products
            ),
            sizes=tuple(s for s in SIZES if s in sizes_in_use)
            + tuple(sorted(sizes_in_use - set(SIZES))),
            colours=tuple(COLOURS.items()),
            categories=tuple(CATEGORIES.items()),
        )
