"""uptally: self-hosted availability monitoring with verified downtime and an SLA ledger."""

__version__ = "0.1.0"
