"""Tollgate: a self-hosted monetization control plane for AI products."""

__version__ = "0.1.0"
