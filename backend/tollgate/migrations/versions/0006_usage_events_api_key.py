"""usage events remember the virtual key that made the call

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("usage_events", sa.Column("api_key_id", sa.BigInteger(), nullable=True))
    op.create_foreign_key(
        op.f("fk_usage_events_api_key_id_api_keys"),
        "usage_events",
        "api_keys",
        ["api_key_id"],
        ["id"],
    )


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_usage_events_api_key_id_api_keys"), "usage_events", type_="foreignkey"
    )
    op.drop_column("usage_events", "api_key_id")
