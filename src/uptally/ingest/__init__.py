"""The one writer: check results and pings in, stored rows, evaluated states and events out."""

from uptally.ingest.writer import Ingest, RefusedWork, Work

__all__ = ["Ingest", "RefusedWork", "Work"]
