"""Every table, registered in one place so migrations and `alembic check` see the whole schema."""

import tollgate.accounts.models
import tollgate.apikeys.models
import tollgate.audit.models
import tollgate.auth.models
import tollgate.billing.models
import tollgate.controls.models
import tollgate.idempotency
import tollgate.ledger.models
import tollgate.limits.models
import tollgate.metering.models
import tollgate.notifications.models
import tollgate.plans.models
import tollgate.pricing.models
import tollgate.providers.models
import tollgate.subscriptions.models  # noqa: F401
from tollgate.db import Base

metadata = Base.metadata
