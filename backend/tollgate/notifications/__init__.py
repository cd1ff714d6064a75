"""Notification rows for threshold crossings, and their live events."""
