"""``cityorder ledger``: run the ledger, load a replay's output into it, and read cases back."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import click
import orjson

from streams.options import OutputFile, kafka_options, log_to_stderr, settings_from

LEDGER_HELP = ("The ledger database: postgresql://user:pass@host/db, sqlite:///path or a file path. "
               "[env: CITYORDER_LEDGER_URL; default: <state dir>/ledger.sqlite]")
IMPORT_BATCH = 2_000


def run_until_stopped(start: Callable[[], Awaitable[None]], name: str) -> None:
    """Run a service's coroutine until SIGINT or SIGTERM, which cancel it (and so run its
    clean-up), then log that it stopped."""
    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        try:
            await start()
        except asyncio.CancelledError:
            logging.getLogger(name).info("%s: stopped", name)

    asyncio.run(main())


def open_store(location: str, *, existing: bool = False) -> Any:
    """The ledger at ``location``; ``existing``: only one already written (for what only reads
    it), else a clear error."""
    from ledger.store import LedgerError, LedgerStore

    try:
        return LedgerStore(location, existing=existing)
    except LedgerError as e:
        raise click.ClickException(str(e)) from None


def _location(ledger_url: str | None) -> str:
    return settings_from(**({"ledger_url": ledger_url} if ledger_url else {})).ledger_location


@click.group(invoke_without_command=True)
@kafka_options
@click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)
@click.option("--state-dir", default=None, help="[env: CITYORDER_STATE_DIR; default: state]")
@click.option("--web-port", type=int, default=6067, show_default=True, help="/metrics, /healthz, /readyz.")
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.pass_context
def ledger(ctx: click.Context, ledger_url: str | None, web_port: int, loglevel: str,
           **flags: Any) -> None:
    """The case ledger (问题台账): with no command, follow city.alerts into the database.

    Every transition is kept once per (alert_id, version); a redelivered copy changes nothing,
    a copy with other content is kept apart as a conflict. Offsets are committed after the
    database has the rows, so a ledger killed at any moment loses and duplicates nothing. A
    fresh ledger reads city.alerts from its first record. See docs/ledger.md.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ledger.service import serve
    from ledger.store import LedgerError

    settings = settings_from(**({"ledger_url": ledger_url} if ledger_url else {}), **flags)
    store = open_store(settings.ledger_location)
    log_to_stderr(loglevel)

    try:
        run_until_stopped(lambda: serve(settings, store, web_port), "ledger")
    except LedgerError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()


@ledger.command("import")
@click.argument("alerts", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)
def ledger_import(alerts: Path, ledger_url: str | None) -> None:
    """Load ALERTS (a replay's output, one city.alerts message a line) into the ledger, so a
    backtest is scored as a live day is. Loading the same file again changes nothing."""
    store = open_store(_location(ledger_url))
    totals = {"inserted": 0, "redelivered": 0, "conflicts": 0, "unreadable": 0}
    started = time.monotonic()
    progress = sys.stderr.isatty()
    try:
        with alerts.open("rb") as f:
            batch: list[tuple[bytes, int | None, int | None]] = []
            for n, line in enumerate(f, 1):
                if line.strip():
                    batch.append((line.rstrip(b"\r\n"), None, n))
                if len(batch) >= IMPORT_BATCH:
                    _count(totals, store.apply(batch))
                    batch = []
                    if progress:
                        click.echo(f"\r{n:,} lines", nl=False, err=True)
            if batch:
                _count(totals, store.apply(batch))
    finally:
        store.close()
    if progress:
        click.echo("\r", nl=False, err=True)
    click.echo(f"{alerts}: {totals['inserted']:,} transitions added, {totals['redelivered']:,} "
               f"already there, {totals['conflicts']:,} conflicts, {totals['unreadable']:,} "
               f"unreadable lines ({time.monotonic() - started:.1f} s)")
    if totals["unreadable"] or totals["conflicts"]:
        sys.exit(1)


def _count(totals: dict[str, int], applied: Any) -> None:
    totals["inserted"] += applied.inserted
    totals["redelivered"] += applied.redelivered
    totals["conflicts"] += len(applied.conflicts)
    totals["unreadable"] += len(applied.unreadable)
    for _, line, bad in applied.unreadable:
        click.echo(f"line {line}: {bad.reason_code}: {bad.reason}", err=True)
    for alert_id, version, _, line in applied.conflicts:
        click.echo(f"line {line}: {alert_id} version {version} differs from the copy already "
                   "kept (kept apart as a conflict)", err=True)


COLUMNS = ("alert_id", "status", "level", "category", "district", "grid_id", "opened_at",
           "deadline", "overdue")


@ledger.command("cases")
@click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)
@click.option("--status", multiple=True, help="open, acknowledged, dispatched, deferred, resolved, "
              "closed, rejected; repeat for several. 'active' means the first four.")
@click.option("--district", multiple=True, help="街道, e.g. 射洪坝街道; repeat for several.")
@click.option("--unit", "responsible_unit", multiple=True, help="责任单位; repeat for several.")
@click.option("--grid", "grid_id", multiple=True, help="Grid id; repeat for several.")
@click.option("--category", multiple=True, help="Category; repeat for several.")
@click.option("--rule", "rule_id", multiple=True, help="Rule id; repeat for several.")
@click.option("--level", type=int, default=None, help="This level or higher.")
@click.option("--overdue", is_flag=True, help="Only cases that went overdue.")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One case (its latest message) a line.")
def ledger_cases(ledger_url: str | None, status: tuple[str, ...], level: int | None, overdue: bool,
                 limit: int, as_json: bool, **filters: tuple[str, ...]) -> None:
    """Cases in the ledger, highest level first, then oldest."""
    from ledger.store import CaseQuery
    from rules.alerts import ACTIVE

    statuses = tuple(x for s in status for x in (sorted(ACTIVE) if s == "active" else [s]))
    store = open_store(_location(ledger_url), existing=True)
    try:
        rows = store.find(CaseQuery(status=statuses, level=level, overdue=overdue, limit=limit,
                                    **filters))
    finally:
        store.close()
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row["message"]).decode())
        return
    table = [[_cell(name, row) for name in COLUMNS] for row in rows]
    widths = [max([len(c), *(_width(r[i]) for r in table)]) for i, c in enumerate(COLUMNS)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths, strict=True)).rstrip())
    for r in table:
        click.echo("  ".join(v + " " * (w - _width(v)) for v, w in zip(r, widths, strict=True)).rstrip())
    click.echo(f"{len(rows)} case(s)" + (f" (--limit {limit} reached)" if len(rows) == limit else ""),
               err=True)


@ledger.command("show")
@click.argument("alert_id")
@click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)
@click.option("--json", "as_json", is_flag=True, help="The case's every message, one a line.")
def ledger_show(alert_id: str, ledger_url: str | None, as_json: bool) -> None:
    """One case: its latest state and its whole history, version by version."""
    store = open_store(_location(ledger_url), existing=True)
    try:
        case, history, conflicts = (store.case(alert_id), store.history(alert_id),
                                    store.conflicts_of(alert_id))
    finally:
        store.close()
    if case is None:
        raise click.ClickException(f"no case {alert_id} in the ledger")
    if as_json:
        for t in history:
            click.echo(orjson.dumps(t["message"]).decode())
        return
    m = case["message"]
    click.echo(f"{alert_id}  {m['status']}  level {m['level']}  {m['severity']}")
    code = f", {m['case_code']}" if m["case_code"] else ""
    click.echo(f"  rule      {m['rule_id']} ({m['category']}{code})")
    click.echo(f"  where     {m['district']} / {m['grid_id']} / {m['responsible_unit']}"
               + (f"  {m['address']}" if m.get("address") else ""))
    click.echo(f"  opened    {m['opened_at']}   deadline {m['deadline'] or '-'}")
    click.echo(f"  reopened  {case['reopen_count']}x   overdue {'yes' if case['overdue'] else 'no'}"
               f"   deferred {'ever' if case['ever_deferred'] else 'never'}")
    click.echo("  history")
    for t in history:
        msg = t["message"]
        who = f" by {msg['actor']}" if msg.get("actor") else ""
        note = f"  {msg['note']}" if msg.get("note") else ""
        click.echo(f"    v{t['version']:<3} {msg['at']}  {t['transition']:<12} -> {t['status']:<12}"
                   f" level {t['level']}{who}{note}")
    for c in conflicts:
        click.echo(f"  conflict: another copy of v{c['version']} (partition {c['source_partition']}, "
                   f"offset {c['source_offset']}), kept apart")


def _cell(name: str, row: dict[str, Any]) -> str:
    if name in ("opened_at", "deadline"):   # as the message gives it: the city's local time
        text = row["message"][name]
        return text[:16].replace("T", " ") if text else "-"
    if name == "overdue":
        return "overdue" if row[name] else ""
    return "-" if row[name] is None else str(row[name])


def _width(text: str) -> int:
    """Columns a terminal gives ``text``: CJK characters take two."""
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


@click.command("report")
@click.option("--period", "kind", type=click.Choice(["day", "week", "month", "quarter", "year"]),
              default="month", show_default=True, help="Local calendar period (week: Monday-Sunday).")
@click.option("--date", "on", default=None, metavar="YYYY-MM-DD",
              help="The period that contains this local date. [default: the one containing T]")
@click.option("--as-of", "as_of", default=None, metavar="TIMESTAMP",
              help="T: read only transitions at or before it (RFC 3339). [default: the newest "
                   "`at` in the data]")
@click.option("--by", type=click.Choice(["district", "responsible_unit", "grid_id", "category",
                                         "rule_id"]), default=None,
              help="Group, rank and mark the bottom three.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html"]), default="table",
              show_default=True)
@click.option("--ledger", "ledger_url", default=None, help=LEDGER_HELP)
@click.option("--alerts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read a replay's output (one city.alerts message a line) instead of the ledger.")
@click.option("--city", "city_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="City map, for its time zone and calendar. [env: CITYORDER_CITY, as "
              "the services read it; default: Asia/Shanghai, no holidays]")
@click.option("-o", "--output", type=OutputFile(), default=None,
              help="Write here instead of standard output.")
@click.option("--lang", type=click.Choice(["zh", "en"]), default="zh", show_default=True,
              help="The table's and the HTML's language (the groups' names are data and stay as "
              "written); CSV and JSON are the same in both.")
def report(kind: str, on: str | None, as_of: str | None, by: str | None, fmt: str,
           ledger_url: str | None, alerts: Path | None, city_path: Path | None,
           output: Path | None, lang: str) -> None:
    """督查考核 scorecards: 立案数, 结案率, 按期结案率, 返工率, response and resolution times,
    with 环比 (the period before, as of the same T). Definitions: docs/assessment.md."""
    from datetime import date as date_type

    from console.i18n import HTML_LANG, translator
    from ledger import assessment, render
    from ledger.rows import from_lines, from_store
    from models.timestamps import parse_timestamp_ms
    from rules.schedule import CityCalendar

    cal = CityCalendar()
    settings = settings_from(**({"ledger_url": ledger_url} if ledger_url else {}))
    if city_path is None:
        city_path = settings.city      # the map the worker and the console were given
    if city_path is not None:
        from rules.citymap import CityMap, MapError

        try:
            cal = CityMap.load(city_path).calendar
        except (MapError, OSError) as e:
            raise click.ClickException(str(e)) from None
    try:
        day = date_type.fromisoformat(on) if on else None
    except ValueError:
        raise click.BadParameter(f"{on!r} is not a date: write YYYY-MM-DD", param_hint="--date") from None
    try:
        t = parse_timestamp_ms(as_of) if as_of else None
    except ValueError as e:
        raise click.BadParameter(f"{as_of!r}: {e}", param_hint="--as-of") from None
    now = int(time.time() * 1000)
    if alerts is not None:
        if ledger_url:
            raise click.UsageError("give --alerts or --ledger, not both")
        with alerts.open("rb") as f:
            source, bad = from_lines(f, kind, day, t, now, cal, by)
        for line, why in bad[:20]:
            click.echo(f"{alerts}:{line}: {why.reason_code}: {why.reason} (skipped)", err=True)
        if len(bad) > 20:
            click.echo(f"... and {len(bad) - 20} more unreadable lines", err=True)
    else:
        store = open_store(settings.ledger_location, existing=True)
        try:
            source = from_store(store, kind, day, t, now, cal, by, trend=fmt == "html")
        finally:
            store.close()
    rep = assessment.report(source.facts, source.period, source.t, by, cal)
    if fmt == "json":
        text = render.as_json(rep) + "\n"
    elif fmt == "csv":
        text = render.as_csv(rep)
    elif fmt == "table":
        text = render.as_table(rep, translator(lang)) + "\n"
    else:
        text = render.as_html(rep, source.trend, assessment.top_categories(source.facts, source.period),
                              translator(lang), HTML_LANG[lang])
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
