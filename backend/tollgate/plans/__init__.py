"""Features, plans with immutable published versions, and token packages."""
