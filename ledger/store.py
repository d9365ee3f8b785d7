"""The ledger's database: applying batches of ``city.alerts`` records idempotently, and the
queries of ``cityorder ledger cases`` and ``show``.

Idempotent by ``(alert_id, version)``: the first copy received is kept; a copy with the same
content (``emitted_at`` aside) is a redelivery and changes nothing; a copy with other content
is a *conflict*, kept in its own table and counted, never applied. One call of
:meth:`LedgerStore.apply` is one database transaction, so a caller that commits its Kafka
offsets after it returns loses nothing and, thanks to the idempotence, duplicates nothing.

SQLite (a file in WAL mode, the embedded default) and PostgreSQL (``postgresql://...``, via
psycopg 3) run the same statements.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, create_engine, event, func, insert, inspect, select, update
from sqlalchemy.engine import Connection

from ledger.case import fold
from ledger.record import Transition, Unreadable, parse
from ledger.schema import cases, conflicts, report_evidence, transitions, unreadable
from models.outputs import deadletter_payload

log = logging.getLogger(__name__)

CHUNK = 500   # keys per IN (...) query: well under SQLite's and PostgreSQL's parameter limits
_MIGRATIONS = Path(__file__).parent / "migrations"


class LedgerError(RuntimeError):
    """The ledger database cannot be used; the message says what to fix."""


def database_url(url_or_path: str | Path) -> str:
    """A SQLAlchemy URL from what a user writes: ``postgresql://...`` (psycopg 3 is used),
    ``sqlite:///file``, or a plain file path (SQLite)."""
    text = str(url_or_path)
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    if "://" in text:
        return text
    return f"sqlite:///{Path(text).expanduser()}"


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL; None for another database or SQLite in memory."""
    path = url.split("///", 1)[1] if url.startswith("sqlite") and "///" in url else ""
    return path if path and path != ":memory:" else None


def make_engine(url: str) -> Engine:
    dumps = lambda obj: orjson.dumps(obj).decode()   # noqa: E731 - keeps 中文 readable, and fast
    if url.startswith("sqlite"):
        path = _sqlite_path(url)
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, json_serializer=dumps, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")      # readers (report, console) never block it
            cur.execute("PRAGMA synchronous=NORMAL")    # durable at each checkpoint, safe in WAL
            cur.close()
        return engine
    return create_engine(url, json_serializer=dumps, pool_pre_ping=True)


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (Alembic ``upgrade head``)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


@dataclass
class Applied:
    """What one :meth:`LedgerStore.apply` did, by record."""

    inserted: int = 0
    redelivered: int = 0
    conflicts: list[tuple[str, int, int | None, int | None]] = field(default_factory=list)
    unreadable: list[tuple[int | None, int | None, Unreadable]] = field(default_factory=list)
    newest_at: int | None = None   # the newest ``at`` among inserted transitions


#: One record to apply: its value, and where it was read (None, None when imported).
Incoming = tuple[bytes, int | None, int | None]


class LedgerStore:
    def __init__(self, url: str | Path, *, migrate_now: bool = True, existing: bool = False) -> None:
        """``existing``: refuse a database no ledger was ever written to, rather than create
        one. For what only reads (a report, a case): a mistyped path must not report zeros."""
        self.url = database_url(url)
        path = _sqlite_path(self.url)
        if existing and path is not None and not Path(path).exists():
            raise LedgerError(self._missing())
        try:
            self.engine = make_engine(self.url)
            written = not existing or inspect(self.engine).has_table("alembic_version")
            if written and migrate_now:
                migrate(self.engine)
        except Exception as e:   # the driver's own errors vary; the user needs the URL and why
            raise LedgerError(f"cannot open the ledger database {safe_url(self.url)}: "
                              f"{type(e).__name__}: {e}") from e
        if not written:
            self.engine.dispose()
            raise LedgerError(self._missing())

    def _missing(self) -> str:
        return (f"no ledger at {_sqlite_path(self.url) or safe_url(self.url)}: nothing was ever "
                "written there. Give the one `cityorder ledger` (or `cityorder dev`) writes, with "
                "--ledger or CITYORDER_LEDGER_URL")

    def close(self) -> None:
        self.engine.dispose()

    # -- writing ------------------------------------------------------------------------------

    def apply(self, batch: Sequence[Incoming]) -> Applied:
        """Apply ``batch`` in one transaction (see the module docstring)."""
        out = Applied()
        parsed: list[tuple[Transition, int | None, int | None]] = []
        now = int(time.time() * 1000)
        bad_rows = []
        for raw, partition, offset in batch:
            r = parse(raw)
            if isinstance(r, Unreadable):
                out.unreadable.append((partition, offset, r))
                payload, encoding, _ = deadletter_payload(raw)
                bad_rows.append({"source_partition": partition, "source_offset": offset,
                                 "reason_code": r.reason_code, "reason": r.reason,
                                 "received_at": now, "payload": payload,
                                 "payload_encoding": encoding})
            else:
                parsed.append((r, partition, offset))
        with self.engine.begin() as conn:
            if bad_rows:
                conn.execute(insert(unreadable), bad_rows)
            ids = sorted({t.alert_id for t, _, _ in parsed})
            known: dict[tuple[str, int], str] = {}
            for chunk in _chunks(ids):
                rows = conn.execute(select(transitions.c.alert_id, transitions.c.version,
                                           transitions.c.content_hash)
                                    .where(transitions.c.alert_id.in_(chunk)))
                known.update(((a, v), h) for a, v, h in rows)
            new: list[Transition] = []
            new_rows, conflict_rows = [], []
            for t, partition, offset in parsed:
                key = (t.alert_id, t.version)
                held = known.get(key)
                if held is None:
                    known[key] = t.content_hash
                    new.append(t)
                    new_rows.append(_transition_row(t, partition, offset))
                elif held == t.content_hash:
                    out.redelivered += 1
                else:
                    out.conflicts.append((t.alert_id, t.version, partition, offset))
                    conflict_rows.append({"alert_id": t.alert_id, "version": t.version,
                                          "content_hash": t.content_hash,
                                          "source_partition": partition, "source_offset": offset,
                                          "received_at": now, "message": t.message})
            if new_rows:
                conn.execute(insert(transitions), new_rows)
                reported = [row for t in new for row in report_rows(t)]
                if reported:
                    conn.execute(insert(report_evidence), reported)
            if conflict_rows:
                conn.execute(insert(conflicts), conflict_rows)
            if new:
                self._fold_cases(conn, new)
            out.inserted = len(new)
            out.newest_at = max((t.at for t in new), default=None)
        return out

    def _fold_cases(self, conn: Connection, new: list[Transition]) -> None:
        ids = sorted({t.alert_id for t in new})
        current: dict[str, dict[str, Any]] = {}
        for chunk in _chunks(ids):
            for row in conn.execute(select(cases).where(cases.c.alert_id.in_(chunk))).mappings():
                current[row["alert_id"]] = dict(row)
        existing = set(current)
        for t in new:
            current[t.alert_id] = fold(current.get(t.alert_id), t)
        inserts = [current[i] for i in ids if i not in existing]
        if inserts:
            conn.execute(insert(cases), inserts)
        # bind names must differ from the column names in an UPDATE's SET: prefixed with b_
        updates = [{f"b_{k}": v for k, v in current[i].items()} for i in ids if i in existing]
        if updates:
            cols = {c.name: bindparam(f"b_{c.name}") for c in cases.columns if c.name != "alert_id"}
            conn.execute(update(cases).where(cases.c.alert_id == bindparam("b_alert_id")).values(cols),
                         updates)

    # -- reading ------------------------------------------------------------------------------

    def case(self, alert_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(cases).where(cases.c.alert_id == alert_id)).mappings().first()
            return dict(row) if row is not None else None

    def history(self, alert_id: str) -> list[dict[str, Any]]:
        """Every version of a case, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(transitions).where(transitions.c.alert_id == alert_id)
                                .order_by(transitions.c.version)).mappings()
            return [dict(r) for r in rows]

    def conflicts_of(self, alert_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(conflicts).where(conflicts.c.alert_id == alert_id)
                                .order_by(conflicts.c.id)).mappings()
            return [dict(r) for r in rows]

    def find(self, query: CaseQuery) -> list[dict[str, Any]]:
        stmt = select(cases)
        for name in ("status", "district", "responsible_unit", "grid_id", "category", "rule_id"):
            values = getattr(query, name)
            if values:
                stmt = stmt.where(cases.c[name].in_(values))
        if query.level is not None:
            stmt = stmt.where(cases.c.level >= query.level)
        if query.overdue:
            stmt = stmt.where(cases.c.overdue.is_(True))
        if query.opened_from is not None:
            stmt = stmt.where(cases.c.opened_at >= query.opened_from)
        if query.opened_to is not None:
            stmt = stmt.where(cases.c.opened_at < query.opened_to)
        stmt = stmt.order_by(cases.c.level.desc(), cases.c.opened_at, cases.c.alert_id)
        stmt = stmt.limit(query.limit)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def check_group_offsets(self, committed: dict[int, int | None], group: str, topic: str) -> None:
        """Refuse (:class:`LedgerError`) a database that is not the one the ledger's consumer
        group ``group`` has been writing: one that holds no record of a partition of ``topic``
        the group has read from (``committed``: its offsets by partition). Every record the
        ledger reads is kept (a transition, a conflict or an unreadable record) before its
        offset is committed, so this is a mistyped ``--ledger`` or a database replaced; going on
        from the group's offsets would leave every case before them out of the board and the
        scorecards, without a word."""
        read = sorted(p for p, offset in committed.items() if offset)
        if not read:
            return
        with self.engine.connect() as conn:
            missing = [p for p in read
                       if not any(conn.execute(select(table.c.source_partition)
                                               .where(table.c.source_partition == p).limit(1)).first()
                                  for table in (transitions, conflicts, unreadable))]
        if missing:
            where = _sqlite_path(self.url) or safe_url(self.url)
            one = len(missing) == 1
            parts = ", ".join(map(str, missing))
            offsets = ", ".join(str(committed[p]) for p in missing)
            raise LedgerError(
                f"the ledger database {where} holds no record read from {topic} "
                f"{'partition' if one else 'partitions'} {parts}, though the ledger's consumer "
                f"group {group} has read {'it' if one else 'them'} (to "
                f"{'offset' if one else 'offsets'} {offsets}): this is not the "
                "database `cityorder ledger` has been writing. Give that one (--ledger or "
                "CITYORDER_LEDGER_URL). To build a new database from the topic's first record "
                f"instead, delete the group's offsets first (kafka-consumer-groups --delete-offsets "
                f"--group {group} --topic {topic})")

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                    for name, table in (("cases", cases), ("transitions", transitions),
                                        ("conflicts", conflicts), ("unreadable", unreadable))}


@dataclass(frozen=True)
class CaseQuery:
    """``cityorder ledger cases`` filters; each tuple matches any of its values."""

    status: tuple[str, ...] = ()
    district: tuple[str, ...] = ()
    responsible_unit: tuple[str, ...] = ()
    grid_id: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    rule_id: tuple[str, ...] = ()
    level: int | None = None          # this level or higher
    overdue: bool = False
    opened_from: int | None = None
    opened_to: int | None = None
    limit: int = 100


def _transition_row(t: Transition, partition: int | None, offset: int | None) -> dict[str, Any]:
    return {"alert_id": t.alert_id, "version": t.version, "transition": t.transition,
            "status": t.status, "level": t.level, "at": t.at, "opened_at": t.opened_at,
            "deadline": t.deadline, "rule_id": t.rule_id, "category": t.category,
            "grid_id": t.grid_id, "district": t.district, "responsible_unit": t.responsible_unit,
            "actor": t.actor, "content_hash": t.content_hash, "source_partition": partition,
            "source_offset": offset, "message": t.message}


def report_rows(t: Transition) -> list[dict[str, Any]]:
    """The ``report_evidence`` rows of one message: a row per citizen report in its evidence.
    (Migration 0005 reads the transitions already kept the same way, in its own words, as a
    migration must not change with the code.)"""
    reports = sorted({i["event_id"] for i in t.message.get("evidence") or () if i.get("source") == "report"})
    return [{"event_id": e, "alert_id": t.alert_id, "version": t.version, "at": t.at} for e in reports]


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
