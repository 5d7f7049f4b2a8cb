"""Storage: tables, migrations and repositories for SQLite and PostgreSQL.

Repositories take a connection and never commit: the caller owns the transaction.
"""
