"""Alembic environment for the ledger.

Normally driven by ``Ledger.migrate()`` (``ledger.db.Database.migrate``), which hands
over an open connection (already inside a transaction and holding the migration lock)
through ``config.attributes["connection"]``. Run by hand, it connects to
``sqlalchemy.url`` from ``ledger.db.alembic_config(url)`` or, failing that,
``INVOICER_DB_URL``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from invoicer.ledger import Ledger
from invoicer.ledger.db import DEFAULT_URL
from invoicer.ledger.schema import metadata

config = context.config
# The head schema as ledger/schema.py declares it: for autogenerate and the drift test
# only; revision files never import application code, so they stay true to their date.
target_metadata = metadata


def _url() -> str:
    return (config.get_main_option("sqlalchemy.url")
            or os.environ.get("INVOICER_DB_URL")
            or DEFAULT_URL)


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )


def run_offline() -> None:
    """Emit SQL to stdout (``alembic upgrade --sql``) instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=_url().startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Apply the migrations over the given connection, or one of our own."""
    connection = config.attributes.get("connection")
    if connection is not None:
        # Ledger.migrate() owns the transaction; begin_transaction() joins it.
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    with Ledger.from_url(_url()) as led, led.engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
