"""The ledger's tables (SQLAlchemy Core), for queries. The database itself is made and changed
only by the Alembic migrations in ``ledger/migrations``; a test checks that a migrated
database matches these tables exactly.

Times are UTC epoch milliseconds (``BigInteger``) so that SQLite and PostgreSQL compare and
index them the same way; every message is also kept whole, with its RFC 3339 times, as JSON.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)

metadata = MetaData()

#: The messages as JSON text on both databases. Not JSONB on PostgreSQL: every query the ledger,
#: the reports and the console make uses the indexed columns, and JSONB's parse on insert cost
#: 10% of the ledger's throughput there (4,794 against 5,341 transitions/s, bench.ledger_bench).
Json = JSON()

#: One row per case (``alert_id``): the latest message's fields (highest ``version``), and what
#: the scorecards need from its whole history.
cases = Table(
    "cases", metadata,
    Column("alert_id", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("transition", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("rule_id", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("case_code", String(50)),
    Column("severity", String(10), nullable=False),
    Column("grid_id", String(100), nullable=False),
    Column("district", String(200)),
    Column("responsible_unit", String(200)),
    Column("address", Text),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("hotspot", Boolean, nullable=False),
    Column("assignee", String(200)),
    Column("opened_at", BigInteger, nullable=False),
    Column("deadline", BigInteger),
    Column("deferred_until", BigInteger),
    Column("updated_at", BigInteger, nullable=False),          # the latest message's ``at``
    # the first acknowledged, dispatched, resolved, rejected or deferred
    Column("first_response_at", BigInteger),
    Column("first_acknowledged_at", BigInteger),
    Column("first_dispatched_at", BigInteger),
    Column("first_resolved_at", BigInteger),
    Column("last_resolved_at", BigInteger),                    # of the highest-version ``resolved``
    Column("last_resolved_version", Integer),
    Column("first_closed_at", BigInteger),
    Column("reopen_count", Integer, nullable=False),
    Column("ever_deferred", Boolean, nullable=False),
    Column("overdue", Boolean, nullable=False),                # an ``overdue`` transition happened
    Column("opened_seen", Boolean, nullable=False),            # its ``opened`` message is here
    Column("on_time", Boolean),             # closed and resolved by the deadline; null unless closed
    Column("message", Json, nullable=False),                   # the latest message
    Index("ix_cases_status", "status"),
    Index("ix_cases_district", "district"),
    Index("ix_cases_responsible_unit", "responsible_unit"),
    Index("ix_cases_grid_id", "grid_id"),
    Index("ix_cases_category", "category"),
    Index("ix_cases_rule_id", "rule_id"),
    Index("ix_cases_level", "level"),
    Index("ix_cases_opened_at", "opened_at"),
    Index("ix_cases_deadline", "deadline"),
)

#: Every message, once per ``(alert_id, version)``: the first copy received.
transitions = Table(
    "transitions", metadata,
    Column("alert_id", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("transition", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("level", Integer, nullable=False),
    Column("at", BigInteger, nullable=False),
    Column("opened_at", BigInteger, nullable=False),
    Column("deadline", BigInteger),
    Column("rule_id", String(200), nullable=False),
    Column("category", String(100), nullable=False),
    Column("grid_id", String(100), nullable=False),
    Column("district", String(200)),
    Column("responsible_unit", String(200)),
    Column("actor", String(200)),
    Column("content_hash", String(64), nullable=False),
    Column("source_partition", Integer),                       # where it was read (null: imported)
    Column("source_offset", BigInteger),
    Column("message", Json, nullable=False),
    Index("ix_transitions_at", "at"),
    Index("ix_transitions_opened_at", "opened_at"),
    Index("ix_transitions_transition_at", "transition", "at"),
)

#: Which versions of which cases show a citizen report (an evidence item of source ``report``),
#: by the report's event id: an Open311 request's status is the case its report joined, found
#: here by its id rather than by a scan of every message's text.
report_evidence = Table(
    "report_evidence", metadata,
    Column("event_id", String(128), primary_key=True),
    Column("alert_id", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("at", BigInteger, nullable=False),
)

#: A second copy of a ``(alert_id, version)`` with other content: kept apart, never applied.
conflicts = Table(
    "conflicts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", String(100), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("source_partition", Integer),
    Column("source_offset", BigInteger),
    Column("received_at", BigInteger, nullable=False),
    Column("message", Json, nullable=False),
    Index("ix_conflicts_alert", "alert_id", "version"),
)

#: A record the ledger could not read (not JSON, not an alert message): kept, not lost.
unreadable = Table(
    "unreadable", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source_partition", Integer),
    Column("source_offset", BigInteger),
    Column("reason_code", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),                   # utf-8, or base64 (see models.outputs)
    Column("payload_encoding", String(8), nullable=False),
)

# -- the console's tables (``cityorder console``): its users, their sessions, the audit trail --

#: People who sign in to the console. ``password_hash`` is argon2id (``console.auth``).
users = Table(
    "users", metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", String(200), nullable=False),
    Column("role", String(16), nullable=False),                # viewer|operator|supervisor|admin
    Column("disabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    #: The board's sound and browser notification for new level-2+ or key-area cases.
    Column("notify", Boolean, nullable=False, server_default=false()),
)

#: Signed-in sessions. The cookie holds a random token; only its SHA-256 is stored, so a copy
#: of the database signs nobody in.
sessions = Table(
    "sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(64), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("address", String(64)),
    Index("ix_sessions_username", "username"),
)

#: Every sign-in, failed sign-in and action (问责): who, role, what, which case, from where, and
#: how it ended. Console notes on a case are rows with action ``note`` (the feedback contract
#: has no note action).
audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(64)),
    Column("role", String(16)),
    Column("action", String(32), nullable=False),
    Column("alert_id", String(100)),
    Column("address", String(64)),
    Column("result", String(16), nullable=False),
    Column("detail", Json),
    Index("ix_audit_at", "at"),
    Index("ix_audit_alert", "alert_id"),
)

# -- Open311 (``cityorder adapt open311``) ------------------------------------------------------

#: Service requests received, so one's status can be told whether or not its report (the
#: ``city.events.report`` message with the request's id as ``event_id``) opened a case. No names
#: or contact details: where and what only.
open311_requests = Table(
    "open311_requests", metadata,
    Column("service_request_id", String(64), primary_key=True),
    Column("service_code", String(100), nullable=False),
    Column("description", Text),
    Column("lat", Float, nullable=False),
    Column("lon", Float, nullable=False),
    Column("address", Text),
    Column("media_url", Text),
    Column("requested_at", BigInteger, nullable=False),
)
