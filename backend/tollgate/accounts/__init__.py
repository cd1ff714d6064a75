"""End-user accounts and organisations, addressed by the SaaS's own ids."""
