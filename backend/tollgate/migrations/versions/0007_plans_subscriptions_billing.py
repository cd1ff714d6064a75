"""plans with versions, features, token packages, subscriptions, invoice lines and payments

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_constraint(op.f("ck_notifications_kind"), "notifications", type_="check")
    op.create_check_constraint(
        "kind",
        "notifications",
        "kind IN ('WARNING', 'BLOCK', 'LOW_BALANCE', 'EMERGENCY_STOP', 'PLAN_PUBLISHED')",
    )
    op.create_table(
        "features",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=50), nullable=True),
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
            "kind IN ('BOOLEAN', 'LIMIT', 'METERED')", name=op.f("ck_features_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features")),
        sa.UniqueConstraint("key", name=op.f("uq_features_key")),
    )
    op.create_table(
        "plans",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plans")),
        sa.UniqueConstraint("code", name=op.f("uq_plans_code")),
    )
    op.create_table(
        "token_packages",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.Text(), server_default="", nullable=False),
        sa.Column("credits", sa.BigInteger(), nullable=False),
        sa.Column("prices", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("validity_days", sa.BigInteger(), nullable=True),
        sa.Column("available_to_plans", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
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
        sa.CheckConstraint("credits > 0", name=op.f("ck_token_packages_credits_positive")),
        sa.CheckConstraint(
            "validity_days IS NULL OR validity_days > 0", name=op.f("ck_token_packages_validity")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_token_packages")),
        sa.UniqueConstraint("code", name=op.f("uq_token_packages_code")),
    )
    op.create_table(
        "plan_versions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("content", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
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
            "(status = 'PUBLISHED') = (published_at IS NOT NULL)",
            name=op.f("ck_plan_versions_published"),
        ),
        sa.CheckConstraint(
            "status IN ('DRAFT', 'PUBLISHED')", name=op.f("ck_plan_versions_status")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_plan_versions_plan_id_plans")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_plan_versions")),
        sa.UniqueConstraint("plan_id", "version", name=op.f("uq_plan_versions_plan_id")),
    )
    op.create_index(
        "uq_plan_versions_one_draft",
        "plan_versions",
        ["plan_id"],
        unique=True,
        postgresql_where=sa.text("status = 'DRAFT'"),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_version_id", sa.BigInteger(), nullable=False),
        sa.Column("next_plan_version_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cycle", sa.String(length=16), nullable=False),
        sa.Column("interval_unit", sa.String(length=8), nullable=False),
        sa.Column("interval_count", sa.BigInteger(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("trial_ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("anchor_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("current_period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "cancel_at_period_end", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("canceled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
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
            "cycle IN ('MONTHLY', 'ANNUAL', 'CUSTOM')", name=op.f("ck_subscriptions_cycle")
        ),
        sa.CheckConstraint(
            "interval_unit IN ('DAY', 'MONTH')", name=op.f("ck_subscriptions_interval_unit")
        ),
        sa.CheckConstraint(
            "status IN ('TRIALING', 'ACTIVE', 'PAST_DUE', 'CANCELED', 'EXPIRED')",
            name=op.f("ck_subscriptions_status"),
        ),
        sa.CheckConstraint(
            "current_period_end > current_period_start", name=op.f("ck_subscriptions_period")
        ),
        sa.CheckConstraint(
            "interval_count > 0 AND amount_minor >= 0", name=op.f("ck_subscriptions_price")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_subscriptions_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["next_plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_subscriptions_next_plan_version_id_plan_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_subscriptions_plan_version_id_plan_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(
        op.f("ix_subscriptions_account_id"), "subscriptions", ["account_id"], unique=False
    )
    op.create_index(
        "ix_subscriptions_due",
        "subscriptions",
        ["current_period_end"],
        unique=False,
        postgresql_where=sa.text("status IN ('TRIALING', 'ACTIVE', 'PAST_DUE')"),
    )
    op.create_index(
        op.f("ix_subscriptions_plan_version_id"), "subscriptions", ["plan_version_id"], unique=False
    )
    op.create_index(
        "uq_subscriptions_live_account",
        "subscriptions",
        ["account_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('TRIALING', 'ACTIVE', 'PAST_DUE')"),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=8), server_default="OPEN", nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('SUBSCRIPTION', 'PRORATION_CREDIT', 'PRORATION_CHARGE', 'TOKEN_PACKAGE')",
            name=op.f("ck_invoice_lines_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('OPEN', 'PAID', 'VOID')", name=op.f("ck_invoice_lines_status")
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_invoice_lines_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_invoice_lines_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("key", name=op.f("uq_invoice_lines_key")),
    )
    op.create_index(
        op.f("ix_invoice_lines_account_id"), "invoice_lines", ["account_id"], unique=False
    )
    op.create_index(
        op.f("ix_invoice_lines_subscription_id"), "invoice_lines", ["subscription_id"], unique=False
    )
    op.create_table(
        "subscription_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("from_plan_version_id", sa.BigInteger(), nullable=True),
        sa.Column("to_plan_version_id", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("actor", sa.String(length=200), server_default="", nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('SUBSCRIBED', 'RENEWED', 'TRIAL_ENDED', 'PLAN_CHANGED', 'MIGRATED', 'MIGRATION_SCHEDULED', 'CANCEL_SCHEDULED', 'CANCELED', 'PAST_DUE', 'REACTIVATED', 'EXPIRED')",
            name=op.f("ck_subscription_events_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_subscription_events_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["from_plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_subscription_events_from_plan_version_id_plan_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_events_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(
            ["to_plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_subscription_events_to_plan_version_id_plan_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_events")),
    )
    op.create_index(
        op.f("ix_subscription_events_account_id"),
        "subscription_events",
        ["account_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_subscription_events_subscription_id"),
        "subscription_events",
        ["subscription_id"],
        unique=False,
    )
    op.create_table(
        "subscription_periods",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("subscription_id", sa.BigInteger(), nullable=False),
        sa.Column("plan_version_id", sa.BigInteger(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("allocated", sa.BigInteger(), nullable=False),
        sa.Column("rolled_over", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("grant_ids", sa.ARRAY(sa.BigInteger()), server_default="{}", nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["plan_version_id"],
            ["plan_versions.id"],
            name=op.f("fk_subscription_periods_plan_version_id_plan_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_periods_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_periods")),
        sa.UniqueConstraint(
            "subscription_id", "starts_at", name=op.f("uq_subscription_periods_subscription_id")
        ),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("invoice_line_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="PENDING", nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('PENDING', 'SUCCEEDED', 'FAILED', 'CANCELED')",
            name=op.f("ck_payments_status"),
        ),
        sa.CheckConstraint("amount_minor >= 0", name=op.f("ck_payments_amount")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_payments_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_line_id"],
            ["invoice_lines.id"],
            name=op.f("fk_payments_invoice_line_id_invoice_lines"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
    )
    op.create_index(op.f("ix_payments_account_id"), "payments", ["account_id"], unique=False)


def downgrade() -> None:
    op.drop_constraint(op.f("ck_notifications_kind"), "notifications", type_="check")
    op.create_check_constraint(
        "kind", "notifications", "kind IN ('WARNING', 'BLOCK', 'LOW_BALANCE', 'EMERGENCY_STOP')"
    )
    op.drop_index(op.f("ix_payments_account_id"), table_name="payments")
    op.drop_table("payments")
    op.drop_table("subscription_periods")
    op.drop_index(op.f("ix_subscription_events_subscription_id"), table_name="subscription_events")
    op.drop_index(op.f("ix_subscription_events_account_id"), table_name="subscription_events")
    op.drop_table("subscription_events")
    op.drop_index(op.f("ix_invoice_lines_subscription_id"), table_name="invoice_lines")
    op.drop_index(op.f("ix_invoice_lines_account_id"), table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index(
        "uq_subscriptions_live_account",
        table_name="subscriptions",
        postgresql_where=sa.text("status IN ('TRIALING', 'ACTIVE', 'PAST_DUE')"),
    )
    op.drop_index(op.f("ix_subscriptions_plan_version_id"), table_name="subscriptions")
    op.drop_index(
        "ix_subscriptions_due",
        table_name="subscriptions",
        postgresql_where=sa.text("status IN ('TRIALING', 'ACTIVE', 'PAST_DUE')"),
    )
    op.drop_index(op.f("ix_subscriptions_account_id"), table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(
        "uq_plan_versions_one_draft",
        table_name="plan_versions",
        postgresql_where=sa.text("status = 'DRAFT'"),
    )
    op.drop_table("plan_versions")
    op.drop_table("token_packages")
    op.drop_table("plans")
    op.drop_table("features")
