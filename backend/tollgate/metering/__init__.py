"""Metering and enforcement: authorize before an LLM call (hold), record after it (settle)."""
