"""The providers table: one row per OpenAI-compatible upstream, addressed by its name."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Float, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from tollgate.db import Base, CreatedAt

MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 600


class Provider(CreatedAt, Base):
    __tablename__ = "providers"
    __table_args__ = (
        CheckConstraint(
            f"timeout_seconds >= {MIN_TIMEOUT_SECONDS}"
            f" AND timeout_seconds <= {MAX_TIMEOUT_SECONDS}",
            name="timeout_seconds",
        ),
        CheckConstraint("api_key_env IS NULL OR api_key_secret IS NULL", name="one_key_source"),
        CheckConstraint("cardinality(models) > 0", name="models_not_empty"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # As the OpenAI SDK takes it, e.g. https://api.openai.com/v1 (no trailing slash).
    base_url: Mapped[str] = mapped_column(Text)
    # Where the upstream's API key comes from: an environment variable read at call time, or a
    # Fernet token (tollgate.crypto); neither for upstreams without auth (a local vLLM, Ollama).
    api_key_env: Mapped[str | None] = mapped_column(String(128))
    api_key_secret: Mapped[str | None] = mapped_column(Text)
    # Exact model names and glob patterns this upstream serves.
    models: Mapped[list[str]] = mapped_column(ARRAY(Text))
    # Request model -> the name the upstream knows it by; models not listed pass unchanged.
    model_map: Mapped[dict[str, str]] = mapped_column(JSONB, default=dict, server_default="{}")
    # Lower is tried first; equal priorities go by name.
    priority: Mapped[int]
    timeout_seconds: Mapped[float] = mapped_column(Float)
    enabled: Mapped[bool] = mapped_column(Boolean)
    updated_by: Mapped[str] = mapped_column(Text, default="", server_default="")
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())
