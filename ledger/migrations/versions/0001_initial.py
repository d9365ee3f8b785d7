"""The first schema: cases, transitions, conflicts, unreadable.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON()


def upgrade() -> None:
    op.create_table(
        "cases",
        sa.Column("alert_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("case_code", sa.String(50)),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("grid_id", sa.String(100), nullable=False),
        sa.Column("district", sa.String(200)),
        sa.Column("responsible_unit", sa.String(200)),
        sa.Column("address", sa.Text),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("hotspot", sa.Boolean, nullable=False),
        sa.Column("assignee", sa.String(200)),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("deadline", sa.BigInteger),
        sa.Column("deferred_until", sa.BigInteger),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("first_response_at", sa.BigInteger),
        sa.Column("first_acknowledged_at", sa.BigInteger),
        sa.Column("first_dispatched_at", sa.BigInteger),
        sa.Column("first_resolved_at", sa.BigInteger),
        sa.Column("last_resolved_at", sa.BigInteger),
        sa.Column("last_resolved_version", sa.Integer),
        sa.Column("first_closed_at", sa.BigInteger),
        sa.Column("reopen_count", sa.Integer, nullable=False),
        sa.Column("ever_deferred", sa.Boolean, nullable=False),
        sa.Column("overdue", sa.Boolean, nullable=False),
        sa.Column("opened_seen", sa.Boolean, nullable=False),
        sa.Column("on_time", sa.Boolean),
        sa.Column("message", JSON, nullable=False),
    )
    for col in ("status", "district", "responsible_unit", "grid_id", "category", "rule_id",
                "level", "opened_at", "deadline"):
        op.create_index(f"ix_cases_{col}", "cases", [col])
    op.create_table(
        "transitions",
        sa.Column("alert_id", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("transition", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.Column("opened_at", sa.BigInteger, nullable=False),
        sa.Column("deadline", sa.BigInteger),
        sa.Column("rule_id", sa.String(200), nullable=False),
        sa.Column("category", sa.String(100), nullable=False),
        sa.Column("grid_id", sa.String(100), nullable=False),
        sa.Column("district", sa.String(200)),
        sa.Column("responsible_unit", sa.String(200)),
        sa.Column("actor", sa.String(200)),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_partition", sa.Integer),
        sa.Column("source_offset", sa.BigInteger),
        sa.Column("message", JSON, nullable=False),
    )
    op.create_index("ix_transitions_at", "transitions", ["at"])
    op.create_index("ix_transitions_opened_at", "transitions", ["opened_at"])
    op.create_index("ix_transitions_transition_at", "transitions", ["transition", "at"])
    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("alert_id", sa.String(100), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("source_partition", sa.Integer),
        sa.Column("source_offset", sa.BigInteger),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("message", JSON, nullable=False),
    )
    op.create_index("ix_conflicts_alert", "conflicts", ["alert_id", "version"])
    op.create_table(
        "unreadable",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_partition", sa.Integer),
        sa.Column("source_offset", sa.BigInteger),
        sa.Column("reason_code", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("received_at", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("payload_encoding", sa.String(8), nullable=False),
    )


def downgrade() -> None:
    for table in ("unreadable", "conflicts", "transitions", "cases"):
        op.drop_table(table)
