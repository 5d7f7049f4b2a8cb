"""Maintenance windows: recurrence, states, alert suppression and the timer that runs them."""
