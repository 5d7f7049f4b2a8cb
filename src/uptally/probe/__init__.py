"""Probes: run checks on the scheduler at one location (embedded, or a remote agent)."""
