"""Backups of the platform itself: create, verify, restore, rotate, schedule and DR drills."""
