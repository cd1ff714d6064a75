"""Emergency stops, per-account overrides and temporary boosts."""
