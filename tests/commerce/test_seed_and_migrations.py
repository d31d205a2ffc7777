"""The Alembic migration matches the models; the demo seed is deterministic and usable."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from commerce.__main__ import alembic_config
from commerce.db import make_engine, make_session_factory
from commerce.models import (
    Base,
    Customer,
    Inventory,
    Order,
    OrderItem,
    Product,
    ProductAttribute,
    ProductVariant,
    Refund,
    SizeGuide,
    TrackingEvent,
    VariantPrice,
)
from commerce.seed import seed
from commerce.services.identity import verify_order_owner
from commerce.services.orders import cancel_order, track_order
from commerce.services.refunds import get_refund
from commerce.services.returns import check_return_eligibility
from commerce.services.stock import check_stock
from commerce.services.support import conversation_handoff, get_handoff
from commerce.vocabulary import PRODUCT_ATTRIBUTES


def test_migration_creates_the_model_schema(tmp_path):
    url = f"sqlite:///{tmp_path / 'migrated.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    engine = make_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    command.downgrade(cfg, "base")
    with engine.connect() as conn:
        names = {
            r[0] for r in conn.execute(text("select name from sqlite_master where type='table'"))
        }
    assert names <= {"alembic_version"}
    engine.dispose()


def test_the_handoff_risk_revision_keeps_queued_handoffs(tmp_path):
    """0003 adds ``handoff_queue.risk`` to a live queue (NULL for entries already there) and
    its downgrade drops only the column (SQLite rebuilds the table in batch mode)."""
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "head")
    engine = make_engine(url)
    queued = conversation_handoff(make_session_factory(engine), "c-1", "help", risk=0.8)
    command.downgrade(cfg, "0002")
    with engine.connect() as conn:
        assert "risk" not in {c["name"] for c in inspect(conn).get_columns("handoff_queue")}
        assert conn.execute(text("SELECT id, priority FROM handoff_queue")).all() == [
            (queued.handoff_id, 1)
        ]
    command.upgrade(cfg, "head")
    view = get_handoff(make_session_factory(engine), queued.handoff_id)
    assert (view.conversation_id, view.risk, view.at_risk, view.priority) == ("c-1", None, False, 1)
    engine.dispose()


def test_the_catalog_revision_keeps_the_products_it_finds(tmp_path):
    """0004 gives products already there zero counters and no rating, and its downgrade drops
    only the catalog's new tables and columns."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    cfg = alembic_config(url)
    command.upgrade(cfg, "0003")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO products (id, code, category, name_en, name_zh, description_en,"
                " description_zh, synonyms, tags) VALUES (1, 'CAP', 'accessories', 'Cap', '帽',"
                " '', '', '', '')"
            )
        )
    command.upgrade(cfg, "0004")
    with engine.connect() as conn:
        assert conn.execute(
            text("SELECT code, rating, review_count, sales_count, arrived_on FROM products")
        ).all() == [("CAP", None, 0, 0, None)]
    command.downgrade(cfg, "0003")
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        assert not tables & {"variant_prices", "product_attributes", "size_guides"}
        assert conn.execute(text("SELECT code FROM products")).scalars().all() == ["CAP"]
    engine.dispose()


def test_the_seed_catalog_is_bilingual_and_priced_per_store(session_factory):
    seed(session_factory.kw["bind"])
    with session_factory() as s:
        products = s.execute(select(Product)).scalars().all()
        prices = s.execute(select(VariantPrice)).scalars().all()
        variants = {v.id: v for v in s.execute(select(ProductVariant)).scalars()}
        keys = set(s.execute(select(ProductAttribute.key)).scalars())
        guides = set(s.execute(select(SizeGuide.category)).scalars())
    for p in products:
        en, zh = p.description_en.split("\n\n"), p.description_zh.split("\n\n")
        assert len(en) == len(zh) >= 1 and all(en) and all(zh), p.code
        assert p.sales_count > 0 and (p.rating is None or 1 <= p.rating <= 5), p.code
    by_variant: dict[int, dict[str, VariantPrice]] = {}
    for price in prices:
        by_variant.setdefault(price.variant_id, {})[price.store] = price
    assert set(by_variant) == set(variants)
    for vid, stores in by_variant.items():
        intl, cn = stores["INTL"], stores["CN"]
        assert (intl.currency, cn.currency) == ("USD", "CNY")
        assert intl.price_cents == variants[vid].price_cents  # the variant keeps its INTL price
        assert cn.price_cents == intl.price_cents * 7
    xl = next(v for v in variants.values() if v.sku == "RAIN-JACKET-XL-NAVY")
    m = next(v for v in variants.values() if v.sku == "RAIN-JACKET-M-NAVY")
    assert xl.price_cents - m.price_cents == 500
    assert keys <= set(PRODUCT_ATTRIBUTES) and {"material", "fit", "waterproof"} <= keys
    assert guides == {"shoes", "t-shirts", "jackets", "dresses", "underwear"}


@pytest.mark.postgres
def test_migration_on_postgres(pg_engine):
    with pg_engine.connect() as conn:
        original = conn.execute(text("SHOW search_path")).scalar_one()
        conn.execute(text("CREATE SCHEMA mig_test"))
        conn.execute(text("SET search_path TO mig_test"))
        conn.commit()
        cfg = alembic_config("postgresql://unused")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        conn.commit()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        conn.execute(text("DROP SCHEMA mig_test CASCADE"))
        conn.execute(text(f"SET search_path TO {original}"))
        conn.commit()
    assert diff == []


def _snapshot(sf):
    with sf() as s:
        return {
            model.__tablename__: [
                tuple(getattr(r, c.key) for c in model.__table__.columns)
                for r in s.execute(select(model).order_by(model.id)).scalars()
            ]
            for model in (Customer, Order, OrderItem, Inventory, Refund, TrackingEvent)
        }


def test_seed_is_idempotent_and_deterministic(session_factory):
    engine = session_factory.kw["bind"]
    counts = seed(engine)
    first = _snapshot(session_factory)
    assert seed(engine) == counts
    assert _snapshot(session_factory) == first
    assert counts["customers"] == 20 and counts["products"] == 40 and counts["orders"] >= 100
    with session_factory() as s:
        statuses = set(s.execute(select(Order.status)).scalars())
    assert statuses == {
        "placed", "paid", "packed", "shipped", "out_for_delivery", "delivered", "cancelled", "returned"
    }  # fmt: skip


def test_seed_scenarios_documented_in_seed_md(session_factory):
    seed(session_factory.kw["bind"])
    alice = verify_order_owner(
        session_factory, "KF-100006", email="alice@example.com", conversation_id="t"
    )
    wang = verify_order_owner(
        session_factory, "KF-200003", phone="138 0013 8001", conversation_id="t"
    )
    bob = verify_order_owner(
        session_factory, "KF-100010", email="bob@example.com", conversation_id="t"
    )
    assert check_return_eligibility(session_factory, alice.customer_id, "KF-100006").eligible
    assert (
        check_return_eligibility(session_factory, alice.customer_id, "KF-100007").reason
        == "window_expired"
    )
    assert (
        check_return_eligibility(session_factory, bob.customer_id, "KF-100010").reason
        == "final_sale"
    )
    cn = check_return_eligibility(session_factory, wang.customer_id, "KF-200003")
    assert cn.eligible and cn.no_reason and cn.window_days == 7
    assert (
        check_return_eligibility(session_factory, wang.customer_id, "KF-200004").reason
        == "window_expired"
    )
    assert track_order(session_factory, wang.customer_id, "KF-200002").carrier.startswith(
        "SF Express"
    )
    out = check_stock(session_factory, "Trail Runner 2", size="42", colour="black")
    assert not out.in_stock and out.next_restock_date is not None and out.alternatives
    carol = verify_order_owner(
        session_factory, "KF-100013", email="carol@example.com", conversation_id="t"
    )
    assert get_refund(session_factory, carol.customer_id, "RF-SEED0003").status == "processing"
    # New rows after seeding get fresh ids (PostgreSQL sequences were moved past the seed).
    assert cancel_order(session_factory, alice.customer_id, "KF-100002").refund_number


def test_cli_seed_if_empty_keeps_what_chats_changed(tmp_path, capsys):
    from commerce.__main__ import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["upgrade", "--url", url]) == 0
    assert main(["seed", "--if-empty", "--url", url]) == 0
    assert "seeded" in capsys.readouterr().out
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE orders SET status = 'cancelled' WHERE number = 'KF-100001'"))
    assert main(["seed", "--if-empty", "--url", url]) == 0
    assert "kept existing data" in capsys.readouterr().out
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM orders WHERE number = 'KF-100001'"))
        assert status.scalar_one() == "cancelled"
    assert main(["seed", "--url", url]) == 0  # a plain seed reloads the demo data
    with engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM orders WHERE number = 'KF-100001'"))
        assert status.scalar_one() == "placed"
    engine.dispose()
