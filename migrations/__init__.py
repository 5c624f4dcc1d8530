"""Alembic migrations of the ledger (a package so that installs carry it; see ledger/db.py)."""
