"""Incidents (pure): states, transitions, automation from outages, commitments, runbooks, views."""
