"""The citizen reports in each case's evidence, by report id, so an Open311 request's status is
found by its id, not by a scan of every message's text; filled from the transitions already kept.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)

BATCH = 5_000


def upgrade() -> None:
    table = op.create_table(
        "report_evidence",
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("alert_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("at", sa.BigInteger, nullable=False),
    )
    assert table is not None
    kept = sa.table("transitions", sa.column("alert_id"), sa.column("version"), sa.column("at"),
                    sa.column("message", sa.JSON))
    conn = op.get_bind()
    # Only messages whose text names a report can hold one (a scan, once, at the upgrade).
    found = conn.execute(sa.select(kept).where(sa.cast(kept.c.message, sa.Text).like('%"report"%'))
                         .execution_options(yield_per=BATCH))
    filled = 0
    for rows in found.partitions(BATCH):
        batch = [{"event_id": e, "alert_id": r.alert_id, "version": r.version, "at": r.at}
                 for r in rows
                 for e in sorted({i["event_id"] for i in r.message.get("evidence") or ()
                                  if i.get("source") == "report"})]
        if batch:
            op.bulk_insert(table, batch)
            filled += len(batch)
    if filled:
        log.info("ledger: %d citizen reports found in the evidence already kept", filled)


def downgrade() -> None:
    op.drop_table("report_evidence")
