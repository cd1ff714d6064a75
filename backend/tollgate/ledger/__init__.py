"""The credit ledger: double-entry, append-only, integers only."""
