"""metering: holds, usage events, service keys

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", sa.UUID(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("wallet_id", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("pool_wallet_id", sa.BigInteger(), nullable=True),
        sa.Column("pool_credits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("estimated_tokens", sa.BigInteger(), nullable=False),
        sa.Column("estimated_cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("feature", sa.Text(), nullable=True),
        sa.Column("byok", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "credits >= 0 AND pool_credits >= 0", name=op.f("ck_reservations_credits_not_negative")
        ),
        sa.CheckConstraint(
            "status IN ('HELD', 'SETTLED', 'RELEASED', 'EXPIRED')",
            name=op.f("ck_reservations_status"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_reservations_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["pool_wallet_id"], ["wallets.id"], name=op.f("fk_reservations_pool_wallet_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_reservations_wallet_id_wallets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    op.create_index(
        "ix_reservations_expiring",
        "reservations",
        ["expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'HELD'"),
    )
    op.create_index(
        "ix_reservations_held",
        "reservations",
        ["account_id"],
        unique=False,
        postgresql_where=sa.text("status = 'HELD'"),
    )
    op.create_table(
        "usage_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("provider", sa.Text(), nullable=True),
        sa.Column("feature", sa.Text(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=False),
        sa.Column("charge_micros", sa.BigInteger(), nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("uncollected_credits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("byok", sa.Boolean(), nullable=False),
        sa.Column("flags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("reservation_id", sa.UUID(), nullable=True),
        sa.Column("transaction_id", sa.UUID(), nullable=True),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "recorded_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_usage_events_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_usage_events_event_id")),
    )
    op.create_index(
        "ix_usage_events_account_time", "usage_events", ["account_id", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_usage_events_model_time", "usage_events", ["model", "occurred_at"], unique=False
    )
    op.create_index(
        "ix_usage_events_occurred_brin",
        "usage_events",
        ["occurred_at"],
        unique=False,
        postgresql_using="brin",
    )
    op.drop_constraint(op.f("ck_admin_api_keys_role"), "admin_api_keys", type_="check")
    op.create_check_constraint(
        op.f("ck_admin_api_keys_role"),
        "admin_api_keys",
        "role IN ('owner', 'admin', 'analyst', 'service')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_admin_api_keys_role"), "admin_api_keys", type_="check")
    op.create_check_constraint(
        op.f("ck_admin_api_keys_role"), "admin_api_keys", "role IN ('owner', 'admin', 'analyst')"
    )
    op.drop_table("usage_events")
    op.drop_table("reservations")
