"""pricing catalog and policies

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "catalog_models",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("aliases", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("alias_keys", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_models")),
        sa.UniqueConstraint("name_key", name=op.f("uq_catalog_models_name_key")),
    )
    op.create_table(
        "catalog_prices",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_per_million", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("output_per_million", sa.Numeric(precision=20, scale=10), nullable=False),
        sa.Column("cached_input_per_million", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column(
            "per_image", sa.Numeric(precision=20, scale=10), server_default="0", nullable=False
        ),
        sa.Column(
            "per_request", sa.Numeric(precision=20, scale=10), server_default="0", nullable=False
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "input_per_million >= 0 AND output_per_million >= 0"
            " AND (cached_input_per_million IS NULL OR cached_input_per_million >= 0)"
            " AND per_image >= 0 AND per_request >= 0",
            name=op.f("ck_catalog_prices_prices_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["catalog_models.id"],
            name=op.f("fk_catalog_prices_model_id_catalog_models"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalog_prices")),
        sa.UniqueConstraint("model_id", "effective_from", name=op.f("uq_catalog_prices_model_id")),
    )
    op.create_table(
        "pricing_policies",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("plan_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("multiplier", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("fixed_per_call_usd", sa.Numeric(precision=20, scale=10), nullable=True),
        sa.Column("default_markup", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column(
            "platform_fee_usd",
            sa.Numeric(precision=20, scale=10),
            server_default="0",
            nullable=False,
        ),
        sa.Column(
            "model_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "time_rules",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="[]",
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(scope = 'ACCOUNT') = (account_id IS NOT NULL) AND (scope = 'PLAN') = (plan_id IS NOT NULL)",
            name=op.f("ck_pricing_policies_owner"),
        ),
        sa.CheckConstraint(
            "kind IN ('PASSTHROUGH', 'MULTIPLIER', 'PER_MODEL', 'FIXED_PER_CALL')",
            name=op.f("ck_pricing_policies_kind"),
        ),
        sa.CheckConstraint(
            "scope IN ('GLOBAL', 'ACCOUNT', 'PLAN')", name=op.f("ck_pricing_policies_scope")
        ),
        sa.CheckConstraint(
            "platform_fee_usd >= 0", name=op.f("ck_pricing_policies_platform_fee_not_negative")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_pricing_policies_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pricing_policies")),
        sa.UniqueConstraint("account_id", name=op.f("uq_pricing_policies_account_id")),
        sa.UniqueConstraint("plan_id", name=op.f("uq_pricing_policies_plan_id")),
    )
    op.create_index(
        "ix_pricing_policies_global",
        "pricing_policies",
        ["scope"],
        unique=True,
        postgresql_where=sa.text("scope = 'GLOBAL'"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_pricing_policies_global",
        table_name="pricing_policies",
        postgresql_where=sa.text("scope = 'GLOBAL'"),
    )
    op.drop_table("pricing_policies")
    op.drop_table("catalog_prices")
    op.drop_table("catalog_models")
