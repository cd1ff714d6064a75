"""Every table, imported in one place so migrations and `alembic check` see the whole schema."""

from tollgate.accounts.models import Account, Organization
from tollgate.audit.models import AuditEntry
from tollgate.auth.models import AdminApiKey
from tollgate.db import Base
from tollgate.idempotency import IdempotencyKey
from tollgate.ledger.models import CreditGrant, LedgerEntry, LedgerTransaction, Wallet

metadata = Base.metadata

__all__ = [
    "Account",
    "AdminApiKey",
    "AuditEntry",
    "CreditGrant",
    "IdempotencyKey",
    "LedgerEntry",
    "LedgerTransaction",
    "Organization",
    "Wallet",
    "metadata",
]
