"""Demo data for `tollgate serve --demo`: the pricing tiers, a few customers, live usage."""
