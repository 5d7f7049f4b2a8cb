"""The SLA ledger: exact interval arithmetic over outages, maintenance and exclusions."""
