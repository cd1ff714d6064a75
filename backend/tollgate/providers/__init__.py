"""Upstream LLM providers as data: any OpenAI-compatible endpoint, the models it serves, and
the order the gateway tries them in."""
