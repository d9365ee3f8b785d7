"""Open311 service requests (``cityorder adapt open311``), so a request's status can be told
whether or not its report opened a case.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open311_requests",
        sa.Column("service_request_id", sa.String(64), primary_key=True),
        sa.Column("service_code", sa.String(100), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("address", sa.Text),
        sa.Column("media_url", sa.Text),
        sa.Column("requested_at", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("open311_requests")
