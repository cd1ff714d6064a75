"""Admin API keys and roles."""
