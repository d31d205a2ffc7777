"""catalog: per-store variant prices, product attributes, size guides, ratings and sales

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 06:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Server defaults let existing products take the new NOT NULL counters; the seed sets them.
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rating", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("review_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("sales_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("arrived_on", sa.Date(), nullable=True))

    op.create_table(
        "variant_prices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("store", sa.String(length=8), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.ForeignKeyConstraint(
            ["variant_id"],
            ["product_variants.id"],
            name=op.f("fk_variant_prices_variant_id_product_variants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_variant_prices")),
        sa.UniqueConstraint("variant_id", "store", name="uq_variant_prices_variant_store"),
    )
    op.create_table(
        "product_attributes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=30), nullable=False),
        sa.Column("flag", sa.Boolean(), nullable=True),
        sa.Column("value_en", sa.String(length=300), nullable=False),
        sa.Column("value_zh", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["products.id"],
            name=op.f("fk_product_attributes_product_id_products"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_attributes")),
        sa.UniqueConstraint("product_id", "key", name="uq_product_attributes_product_key"),
    )
    op.create_table(
        "size_guides",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("size", sa.String(length=20), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("measurements_en", sa.String(length=200), nullable=False),
        sa.Column("measurements_zh", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_size_guides")),
        sa.UniqueConstraint("category", "size", name="uq_size_guides_category_size"),
    )


def downgrade() -> None:
    op.drop_table("size_guides")
    op.drop_table("product_attributes")
    op.drop_table("variant_prices")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("arrived_on")
        batch_op.drop_column("sales_count")
        batch_op.drop_column("review_count")
        batch_op.drop_column("rating")
