"""Model price catalog and pricing policies: what a call costs and what it is charged."""
