"""Virtual API keys that the SaaS hands to its end users for the OpenAI-compatible gateway."""
