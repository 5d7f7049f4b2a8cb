"""The HTTP surface: public status API and page, heartbeat pings, admin API, health and metrics."""
