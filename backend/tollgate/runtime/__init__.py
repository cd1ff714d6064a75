"""Process-level runtime helpers (embedded services)."""
