"""Check executors: one module per kind, no storage, scheduling or alerting."""
