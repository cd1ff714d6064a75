"""limits, controls and notifications

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _updated() -> list[sa.Column[object]]:
    return [
        sa.Column("updated_by", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
    ]


def upgrade() -> None:
    limit_columns = (
        "tokens_per_day",
        "tokens_per_month",
        "calls_per_day",
        "calls_per_month",
        "cost_per_day_micros",
        "cost_per_month_micros",
        "max_tokens_per_request",
        "requests_per_minute",
        "low_balance_credits",
    )
    op.create_table(
        "account_limits",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=True) for c in limit_columns),
        sa.Column("allowed_models", sa.ARRAY(sa.Text()), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column(
            "thresholds",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default="{}",
            nullable=False,
        ),
        *_updated(),
        sa.CheckConstraint(
            " AND ".join(f"({c} IS NULL OR {c} >= 0)" for c in limit_columns),
            name=op.f("ck_account_limits_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_limits_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_limits")),
    )
    op.create_table(
        "usage_windows",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_key", sa.String(length=32), nullable=False),
        sa.Column("tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("calls", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint("period IN ('DAY', 'MONTH')", name=op.f("ck_usage_windows_period")),
        sa.CheckConstraint(
            "tokens >= 0 AND calls >= 0 AND cost_micros >= 0",
            name=op.f("ck_usage_windows_not_negative"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_usage_windows_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", "period", "starts_at", name=op.f("pk_usage_windows")),
    )
    op.create_table(
        "global_controls",
        sa.Column("id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("stopped", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("stop_reason", sa.Text(), server_default="", nullable=False),
        *_updated(),
        sa.CheckConstraint("id = 1", name=op.f("ck_global_controls_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_controls")),
    )
    op.create_table(
        "account_controls",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("stopped", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("stop_reason", sa.Text(), server_default="", nullable=False),
        sa.Column("exempt_from_limits", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("suspended", sa.Boolean(), server_default="false", nullable=False),
        *_updated(),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_account_controls_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_account_controls")),
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("window_key", sa.Text(), nullable=False),
        sa.Column(
            "payload", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('WARNING', 'BLOCK', 'LOW_BALANCE', 'EMERGENCY_STOP')",
            name=op.f("ck_notifications_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_notifications_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
    )
    op.create_index(
        "ix_notifications_account_id_id", "notifications", ["account_id", "id"], unique=False
    )
    op.create_index(
        "uq_notifications_account_once",
        "notifications",
        ["account_id", "kind", "subject", "window_key"],
        unique=True,
        postgresql_where=sa.text("account_id IS NOT NULL"),
    )
    op.create_index(
        "uq_notifications_global_once",
        "notifications",
        ["kind", "subject", "window_key"],
        unique=True,
        postgresql_where=sa.text("account_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_notifications_global_once",
        table_name="notifications",
        postgresql_where=sa.text("account_id IS NULL"),
    )
    op.drop_index(
        "uq_notifications_account_once",
        table_name="notifications",
        postgresql_where=sa.text("account_id IS NOT NULL"),
    )
    op.drop_index("ix_notifications_account_id_id", table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("account_controls")
    op.drop_table("global_controls")
    op.drop_table("usage_windows")
    op.drop_table("account_limits")
