"""Usage limits per account: windows, thresholds, requests per minute."""
