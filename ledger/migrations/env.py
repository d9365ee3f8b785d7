"""Alembic's environment for the ledger: run on the connection the caller opened
(``ledger.store.migrate``), never from a URL of its own."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run the ledger's migrations through ledger.store.migrate "
                       "(cityorder ledger opens the database itself)")
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
