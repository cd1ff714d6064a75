"""The model price catalog: writing price versions, finding and listing them.

`upsert_model_price` is the admin's edit: a new `effective_from` adds a version, an existing one
has its prices replaced, and given aliases replace the model's. `add_missing` is what loading a
catalog file does: it adds models, aliases and versions that are not there yet and never
changes or removes anything, so loading twice is loading once and admin edits survive.

Every write takes one catalog-wide transaction lock first, so two writers can never both
claim the same name or alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, Select, any_, case, func, literal, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from tollgate.errors import ValidationFailed
from tollgate.pricing.charge import ModelPriceVersion
from tollgate.pricing.lookup import CatalogIndex
from tollgate.pricing.models import CatalogModel, CatalogPrice
from tollgate.pricing.validation import (
    check_aware,
    check_name,
    check_optional,
    check_usd,
    first_failure,
    plain,
    storable,
)

MAX_ALIASES = 50
# Any fixed 64-bit number, used by no other lock in the application.
CATALOG_LOCK = 7_311_225_418_201_563_001


@dataclass(frozen=True)
class PriceInput:
    provider: str
    model: str
    input_per_million: Decimal
    output_per_million: Decimal
    cached_input_per_million: Decimal | None = None
    per_image: Decimal = Decimal(0)
    per_request: Decimal = Decimal(0)
    # None keeps the model's aliases; a tuple replaces them (upsert) or adds to them (load).
    aliases: tuple[str, ...] | None = None
    # None means now.
    effective_from: datetime | None = None


def normalize(price: PriceInput, *, now: datetime) -> PriceInput | ValidationFailed:
    """Checked and tidied: trimmed names, lowercase provider, unique aliases, a start time."""
    cached = price.cached_input_per_million
    invalid = first_failure(
        check_name("provider", price.provider),
        check_name("model", price.model),
        check_usd("inputPerMillion", price.input_per_million),
        check_usd("outputPerMillion", price.output_per_million),
        check_optional(check_usd, "cachedInputPerMillion", cached),
        check_usd("perImage", price.per_image),
        check_usd("perRequest", price.per_request),
        check_optional(check_aware, "effectiveFrom", price.effective_from),
    )
    if invalid is not None:
        return invalid
    model = price.model.strip()
    aliases: tuple[str, ...] | None = None
    if price.aliases is not None:
        if len(price.aliases) > MAX_ALIASES:
            return ValidationFailed("aliases", f"at most {MAX_ALIASES}")
        seen, kept = {model.lower()}, []
        for alias in price.aliases:
            if (bad := check_name("aliases", alias)) is not None:
                return bad
            if alias.strip().lower() not in seen:
                seen.add(alias.strip().lower())
                kept.append(alias.strip())
        aliases = tuple(kept)
    return replace(
        price,
        provider=price.provider.strip().lower(),
        model=model,
        aliases=aliases,
        effective_from=(price.effective_from or now).astimezone(UTC),
    )


def version_of(model: CatalogModel, row: CatalogPrice) -> ModelPriceVersion:
    cached = row.cached_input_per_million
    return ModelPriceVersion(
        id=row.id,
        provider=model.provider,
        model=model.name,
        aliases=tuple(model.aliases),
        input_per_million=plain(row.input_per_million),
        output_per_million=plain(row.output_per_million),
        cached_input_per_million=None if cached is None else plain(cached),
        per_image=plain(row.per_image),
        per_request=plain(row.per_request),
        effective_from=row.effective_from,
    )


async def upsert_model_price(
    session: AsyncSession, price: PriceInput, *, now: datetime | None = None
) -> ModelPriceVersion | ValidationFailed:
    result = await _write(session, price, now=now, overwrite=True)
    return result if isinstance(result, ValidationFailed) else result[0]


async def add_missing(
    session: AsyncSession, price: PriceInput, *, now: datetime | None = None
) -> bool | ValidationFailed:
    """Add the model, its missing aliases and this version unless present; True if the version
    was added."""
    result = await _write(session, price, now=now, overwrite=False)
    return result if isinstance(result, ValidationFailed) else result[1]


async def _write(
    session: AsyncSession, price: PriceInput, *, now: datetime | None, overwrite: bool
) -> tuple[ModelPriceVersion, bool] | ValidationFailed:
    clean = normalize(price, now=now or datetime.now(UTC))
    if isinstance(clean, ValidationFailed):
        return clean
    await session.execute(select(func.pg_advisory_xact_lock(CATALOG_LOCK)))
    model = await session.scalar(
        select(CatalogModel).where(CatalogModel.name_key == clean.model.lower())
    )
    if model is not None and model.provider != clean.provider:
        return ValidationFailed(
            "model", f"{model.name!r} is already in the catalog for provider {model.provider!r}"
        )
    aliases = list(clean.aliases or ())
    if model is not None and not overwrite:
        aliases = [a for a in aliases if a.lower() not in model.alias_keys]
    clash = await _clash(session, [clean.model, *aliases], model)
    if clash is not None:
        return clash
    if model is None:
        model = CatalogModel(
            provider=clean.provider, name=clean.model, name_key=clean.model.lower()
        )
        model.aliases, model.alias_keys = [], []
        session.add(model)
        await session.flush()
    if clean.aliases is not None:
        keep = [] if overwrite else list(model.aliases)
        model.aliases = keep + aliases
        model.alias_keys = [a.lower() for a in model.aliases]
    row, added = await _write_version(session, model.id, clean, overwrite=overwrite)
    await session.flush()
    return version_of(model, row), added


async def _clash(
    session: AsyncSession, names: list[str], model: CatalogModel | None
) -> ValidationFailed | None:
    keys = [name.lower() for name in names]
    query = select(CatalogModel).where(
        or_(CatalogModel.name_key.in_(keys), CatalogModel.alias_keys.overlap(keys))
    )
    if model is not None:
        query = query.where(CatalogModel.id != model.id)
    other = (await session.scalars(query.limit(1))).first()
    if other is None:
        return None
    taken = {other.name_key, *other.alias_keys}
    index = next(i for i, key in enumerate(keys) if key in taken)
    return ValidationFailed(
        "model" if index == 0 else "aliases",
        f"{names[index]!r} already names model {other.name!r} of {other.provider!r}",
    )


async def _write_version(
    session: AsyncSession, model_id: int, clean: PriceInput, *, overwrite: bool
) -> tuple[CatalogPrice, bool]:
    row = await session.scalar(
        select(CatalogPrice).where(
            CatalogPrice.model_id == model_id, CatalogPrice.effective_from == clean.effective_from
        )
    )
    if row is not None and not overwrite:
        return row, False
    added = row is None
    if row is None:
        row = CatalogPrice(model_id=model_id, effective_from=clean.effective_from)
        session.add(row)
    row.input_per_million = clean.input_per_million
    row.output_per_million = clean.output_per_million
    row.cached_input_per_million = clean.cached_input_per_million
    row.per_image = clean.per_image
    row.per_request = clean.per_request
    row.updated_at = datetime.now(UTC)
    return row, added


def _named(model: str) -> ColumnElement[bool]:
    key = model.strip().lower()
    return or_(CatalogModel.name_key == key, literal(key) == any_(CatalogModel.alias_keys))


async def _versions(session: AsyncSession, *where: ColumnElement[bool]) -> list[ModelPriceVersion]:
    rows = await session.execute(
        select(CatalogModel, CatalogPrice)
        .join(CatalogPrice, CatalogPrice.model_id == CatalogModel.id)
        .where(*where)
    )
    return [version_of(model, row) for model, row in rows.tuples()]


async def all_versions(session: AsyncSession) -> list[ModelPriceVersion]:
    return await _versions(session)


async def find_price(
    session: AsyncSession, model: str, at: datetime, provider: str | None = None
) -> ModelPriceVersion | None:
    """The version in force at `at` for a model named by its name or an alias."""
    if not storable(model):
        return None
    return CatalogIndex(await _versions(session, _named(model))).price_at(model, at, provider)


async def list_prices(
    session: AsyncSession,
    *,
    first: int,
    after_id: int | None,
    model: str | None = None,
    include_history: bool = False,
    now: datetime | None = None,
) -> Sequence[ModelPriceVersion]:
    """By model name, then start. Without history, one version per model: the one in force
    now, or for a model whose prices all start later, the first of those. `after_id` is the
    version id of the last row of the previous page; one extra row says another page exists."""
    now = now or datetime.now(UTC)
    order = (CatalogModel.name_key, CatalogPrice.effective_from, CatalogPrice.id)
    query = (
        select(CatalogModel, CatalogPrice)
        .join(CatalogPrice, CatalogPrice.model_id == CatalogModel.id)
        .order_by(*order)
        .limit(first + 1)
    )
    if model is not None:
        if not storable(model):
            return []
        query = query.where(_named(model))
    if not include_history:
        query = query.where(CatalogPrice.id.in_(_current_ids(now)))
    if after_id is not None:
        last = (
            await session.execute(
                select(CatalogModel.name_key, CatalogPrice.effective_from, CatalogPrice.id)
                .join(CatalogPrice, CatalogPrice.model_id == CatalogModel.id)
                .where(CatalogPrice.id == after_id)
            )
        ).first()
        if last is None:
            return []
        query = query.where(tuple_(*order) > tuple_(*last))
    rows = await session.execute(query)
    return [version_of(m, row) for m, row in rows.tuples()]


def _current_ids(now: datetime) -> Select[int]:
    version = aliased(CatalogPrice)
    in_force = version.effective_from <= now
    # Per model: in-force versions first, then the one closest to now (latest in force, or
    # else the earliest still to come).
    distance = case(
        (in_force, literal(now) - version.effective_from),
        else_=version.effective_from - literal(now),
    )
    return (
        select(version.id)
        .distinct(version.model_id)
        .order_by(version.model_id, in_force.desc(), distance)
    )
