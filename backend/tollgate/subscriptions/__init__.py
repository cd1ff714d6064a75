"""Subscriptions to plan versions: subscribe, change with proration, cancel, renew."""
