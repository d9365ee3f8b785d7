"""The ``cityorder`` command line.

Every failure a user can cause (a missing file, a rule with a typo, a broken map, a malformed
replay line) ends in one line naming the file and line and what to fix, never a traceback.
"""

from __future__ import annotations

import contextlib
import sys
import time
import unicodedata
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import orjson

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.pack import DEFAULT_PACK
from rules.partitioning import DEFAULT_PARTITIONS
from streams.options import OutputFile, kafka_options, settings_from

PROGRESS_BYTES = 4 * 1024 * 1024

city_option = click.option(
    "--city", "city_path", type=click.Path(dir_okay=False, path_type=Path), default=DEMO_CITY,
    show_default="the demo city", help="City map (GeoJSON FeatureCollection, docs/rules.md).")
rules_option = click.option(
    "--rules", "rule_paths", multiple=True, type=click.Path(path_type=Path),
    help="Rule pack: a directory of *.yaml or one file. Repeat for several packs. "
         "[default: the default pack]")


def _load(city_path: Path, rule_paths: tuple[Path, ...], *, warn: bool = True) -> tuple[Any, Any]:
    """The map and the packs, or one line naming what is wrong; with ``warn``, each warning of
    ``_warnings`` on standard error: a worker or replay starting with a rule that cannot match
    (a typo'd label, a zone kind the map lacks) says so before it runs for hours."""
    from rules.citymap import CityMap, MapError
    from rules.pack import PackError, check_work_day, load_rules
    from rules.worktime import day_length_ms

    try:
        city = CityMap.load(city_path)
    except (MapError, OSError) as e:
        raise click.ClickException(str(e)) from None
    try:
        rules = load_rules(list(rule_paths) or [DEFAULT_PACK])
    except (PackError, OSError) as e:
        raise click.ClickException(str(e)) from None
    problems = check_work_day(rules, day_length_ms(city.calendar))
    if problems:
        raise click.ClickException("\n".join(problems))
    if warn:
        for w in _warnings(city, rules):
            click.echo(f"warning: {w}", err=True)
    return city, rules


def _warnings(city: Any, rules: Any) -> list[str]:
    """What ``rules check`` warns about: names the map lacks, words no source sends."""
    from rules.pack import check_against_map, check_vocabulary

    return check_against_map(rules, city) + check_vocabulary(rules)


class _Commands(click.Group):
    """cityorder's commands: one whose Kafka brokers cannot be reached, or whose topics cannot
    be checked, ends with that error in one line (``streams.topics.TopicsError``)."""

    def invoke(self, ctx: click.Context) -> Any:
        from streams.topics import TopicsError

        try:
            return super().invoke(ctx)
        except TopicsError as e:
            raise click.ClickException(str(e)) from None


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"],
                                              "max_content_width": 100})
@click.version_option(package_name="cityorder", message="cityorder %(version)s")
def main() -> None:
    """cityorder: real-time alerting for city order (市容秩序).

    Camera, sensor, report and feedback events in; alerts that open, escalate and close out.
    Start with `cityorder dev` (everything on this machine: a broker, a worker, the demo city's
    day, the console) or `cityorder demo` (replay a generated day to files).

    The manuals are in the source tree's docs/ (docs/README.md lists them): the topics and
    messages (contracts.md), the rule language (rules.md), the scorecards (assessment.md), the
    console, the ledger, the adapters, webhooks, monitoring and the runbooks. `cityorder COMMAND
    -h` for a command's options.
    """
    from streams.tuning import tune_gc

    tune_gc()


@main.command()
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@city_option
@rules_option
@click.option("--clock", type=click.Choice(["event", "wall"]), default="event", show_default=True,
              help="event: input times drive the clock; wall: arrivals and ticks do "
                   "(every line needs an 'arrival').")
@click.option("--until", "until", default=None, metavar="TIME",
              help="Run the clock to at least this RFC 3339 time at the end, so timers due by "
                   "then fire.")
@click.option("--partitions", type=click.IntRange(min=1), default=DEFAULT_PARTITIONS,
              show_default=True,
              help="Split the grids over this many partitions, one engine (and clock) each, as "
                   "a worker with that many partitions does; 1: one engine for the whole city.")
@click.option("-o", "--output", type=OutputFile(), default=None,
              help="Write the city.alerts messages here (JSONL). [default: standard output]")
@click.option("--deadletters", type=OutputFile(), default=None,
              help="Write the city.alerts.deadletter messages here (JSONL). [default: not kept, "
                   "counted in the summary]")
@click.option("-q", "--quiet", is_flag=True, help="No summary on standard error.")
def replay(events: Path, city_path: Path, rule_paths: tuple[Path, ...], clock: str,
           until: str | None, output: Path | None, deadletters: Path | None, quiet: bool,
           partitions: int = DEFAULT_PARTITIONS) -> None:
    """Replay a recorded input log (JSONL, docs/rules.md) and write the alerts it gives.

    The output equals what a live worker with as many partitions would have produced for the
    same input, on every field but emitted_at.
    """
    from models.timestamps import parse_input_timestamp_ms
    from rules.replay import Replay, ReplayFileError

    city, rules = _load(city_path, rule_paths)
    until_ms = None
    if until is not None:
        try:
            until_ms = parse_input_timestamp_ms(until)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--until") from None
    with ExitStack() as stack:
        out = stack.enter_context(output.open("wb")) if output else sys.stdout.buffer
        dead = stack.enter_context(deadletters.open("wb")) if deadletters else None
        rp = Replay(city, rules, clock=clock, source=str(events), partitions=partitions,
                    on_alert=lambda m: out.write(orjson.dumps(m) + b"\n"),
                    on_dead=(lambda m: dead.write(orjson.dumps(m) + b"\n")) if dead else
                    (lambda m: None),
                    now=lambda: int(time.time() * 1000))
        started = time.perf_counter()
        try:
            for lineno, text in _lines(events, quiet):
                if text.strip():
                    rp.line(text, lineno)
        except ReplayFileError as e:
            raise click.ClickException(str(e)) from None
        summary = rp.finish(until_ms)
        elapsed = time.perf_counter() - started
    if not quiet:
        _print_summary(rp, summary, elapsed)


def _lines(path: Path, quiet: bool) -> Iterator[tuple[int, bytes]]:
    """Lines of a file, with a progress bar on standard error for large files."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if quiet or size < PROGRESS_BYTES:
            yield from enumerate(f, 1)
            return
        with click.progressbar(length=size, label=f"replaying {path.name}", file=sys.stderr,
                               show_eta=True) as bar:
            for n, line in enumerate(f, 1):
                bar.update(len(line))
                yield n, line


def _print_summary(rp: Any, summary: Any, elapsed: float) -> None:
    """The summary on standard error. Its first lines add up: every message line is accepted,
    ignored, late, a duplicate or a dead letter (rules/replay.py says how a split message
    counts); the tables below count by value (a message may ignore two labels)."""
    stats, ingest = rp.stats, rp.ingest
    final = summary.final.values()
    echo = lambda s="": click.echo(s, err=True)  # noqa: E731
    echo(f"{summary.lines} lines ({summary.ticks} ticks) in {elapsed:.2f} s on "
         f"{rp.partitions} partition{'s' if rp.partitions != 1 else ''}; "
         f"{summary.alerts_out} alert messages for {len(summary.final)} alerts")
    echo(f"{summary.messages} messages: {summary.accepted} accepted, {summary.ignored} ignored, "
         f"{summary.late} late, {summary.duplicates} duplicates, "
         f"{summary.dead_letters} dead letters")
    if summary.faults:
        echo(f"internal errors: {summary.faults} (logged above with their tracebacks)")
    _table(echo, "alerts by rule", Counter(a["rule_id"] for a in final))
    _table(echo, "alerts by level", Counter(f"level {a['level']}" for a in final))
    _table(echo, "alerts by status", Counter(a["status"] for a in final))
    _table(echo, "transitions", stats.transitions)
    _table(echo, "dead letters by reason", summary.dead)
    _table(echo, "ignored", Counter({f"{k}={v}": n for (k, v), n in ingest.ignored.items()}))
    _table(echo, "late (by device)", stats.late)
    _table(echo, "duplicates", stats.duplicates)
    if stats.redelivered:
        _table(echo, "redelivered (counted with duplicates)", stats.redelivered)
    if stats.evicted:
        echo(f"evicted subjects: {stats.evicted}")


def _table(echo: Any, title: str, counts: Counter[str]) -> None:
    if not counts:
        echo(f"{title}: none")
        return
    echo(f"{title}:")
    shown = {_printable(k): n for k, n in counts.items()}
    width = max(len(k) for k in shown)
    for k, n in sorted(shown.items(), key=lambda kv: (-kv[1], kv[0])):
        echo(f"  {k:<{width}}  {n:>8}")


# Unicode categories never printed as they are: controls (C0, DEL, C1), format characters
# (the bidi overrides and isolates such as U+202E, zero-width ones), surrogates, private use,
# and line and paragraph separators. Input names them (labels, device ids), and one of them
# on a terminal can reorder, hide or rewrite what the summary says.
_UNPRINTED = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})


def _printable(text: str) -> str:
    r"""``text`` with every character of :data:`_UNPRINTED` (and the backslash, so the result
    reads one way) escaped: ``"a\u202eb\x00"``."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape(c) if c == "\\" or unicodedata.category(c) in _UNPRINTED else c
                   for c in text)


def _escape(c: str) -> str:
    if c == "\\":
        return "\\\\"
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


@main.group()
def rules() -> None:
    """Check rule packs and run analysts' rule tests."""


@rules.command("check")
@city_option
@rules_option
def rules_check(city_path: Path, rule_paths: tuple[Path, ...]) -> None:
    """Validate rule packs and the city map; print warnings (exit 1 on an error)."""
    city, ruleset = _load(city_path, rule_paths, warn=False)
    warnings = _warnings(city, ruleset)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"ok: {len(ruleset.rules)} rules, {len(city.grids)} grids, {len(city.zones)} zones, "
               f"{len(city.cameras)} cameras, {len(city.sensors)} sensors"
               + (f", {len(warnings)} warnings" if warnings else ""))


@rules.command("test")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-v", "--verbose", is_flag=True, help="Show every transition of failing tests.")
def rules_test(files: tuple[Path, ...], verbose: bool) -> None:
    """Run rule unit tests written in YAML (see README: Testing rules).

    Each test feeds input lines and compares the alert transitions with what it expects,
    like `promtool test rules`. Exit 1 if any test fails.
    """
    from rules.ruletest import RuleTestError, run_file

    failed = total = 0
    for path in files:
        try:
            results = run_file(path)
        except RuleTestError as e:
            raise click.ClickException(str(e)) from None
        for r in results:
            total += 1
            if r.ok:
                click.echo(f"PASS {path}:{r.line}: {r.name}")
            else:
                failed += 1
                click.echo(f"FAIL {path}:{r.line}: {r.name}")
                for problem in r.problems:
                    click.echo(f"     {problem}")
                if verbose:
                    for msg in r.actual:
                        click.echo(f"     got: {msg}")
    click.echo(f"{total - failed} passed, {failed} failed")
    if failed:
        sys.exit(1)


@main.command()
@click.option("--day", default="2026-11-20", show_default=True, help="Local date of the day.")
@click.option("--seed", default=7, show_default=True, help="Random seed (same seed, same day).")
@click.option("--scale", default=1.0, show_default=True, help="Multiply cameras' objects and frames.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("out/demo-day.jsonl"), show_default=True)
@click.option("--replay/--no-replay", "then_replay", default=True, show_default=True,
              help="Replay the day at once and write out/alerts.jsonl, out/deadletters.jsonl.")
@click.pass_context
def demo(ctx: click.Context, day: str, seed: int, scale: float, output: Path,
         then_replay: bool) -> None:
    """Generate a realistic day of the demo city (with dispatch feedback) and replay it."""
    from datetime import date

    from rules.demo.dispatch import generate_with_feedback

    try:
        the_day = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter("write a date as YYYY-MM-DD", param_hint="--day") from None
    output.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with output.open("wb") as f:
        for line in generate_with_feedback(DEMO_CITY, DEFAULT_PACK, the_day, seed, scale):
            f.write(orjson.dumps(line) + b"\n")
            n += 1
    click.echo(f"wrote {n} lines to {output}", err=True)
    if then_replay:
        ctx.invoke(replay, events=output, city_path=DEMO_CITY, rule_paths=(), clock="event",
                   until=None, partitions=DEFAULT_PARTITIONS, output=output.parent / "alerts.jsonl",
                   deadletters=output.parent / "deadletters.jsonl", quiet=False)
        click.echo(f"alerts in {output.parent / 'alerts.jsonl'}, dead letters in "
                   f"{output.parent / 'deadletters.jsonl'}", err=True)


# -- the streaming runtime ------------------------------------------------------------------

@main.command()
@kafka_options
@click.option("--partitions", type=int, default=None,
              help="Partitions of every topic. [env: CITYORDER_PARTITIONS; default: 4]")
@click.option("--clock", type=click.Choice(["wall", "event"]), default=None,
              help="wall: arrivals and the wall clock drive time (live); event: input times do. "
                   "[env: CITYORDER_CLOCK; default: wall]")
@click.option("--state-dir", default=None,
              help="RocksDB state directory. [env: CITYORDER_STATE_DIR; default: state]")
@click.option("--store", type=click.Choice(["rocksdb", "memory"]), default=None,
              help="Table store. [env: CITYORDER_STORE; default: rocksdb]")
@click.option("--compression", type=click.Choice(["lz4", "zstd", "gzip", "snappy", "none"]), default=None,
              help="How the worker's producers compress batches. [env: CITYORDER_COMPRESSION; "
                   "default: zstd]")
@click.option("--rules", "rules_", default=None, help="Rule packs, comma-separated. [env: CITYORDER_RULES]")
@click.option("--city", default=None, help="City map (GeoJSON). [env: CITYORDER_CITY; required]")
@click.option("--web-port", type=int, default=None,
              help="/metrics, /readyz, /healthz. [env: CITYORDER_WEB_PORT; default: 6066]")
@click.option("--tick-interval", default=None,
              help="How often progress (ticks) is written. [env: CITYORDER_TICK_INTERVAL; default: 1s]")
@click.option("--session-timeout", default=None,
              help="Consumer-group session timeout. [env: CITYORDER_SESSION_TIMEOUT; default: 10s]")
@click.option("--checkpoint-interval", default=None,
              help="How often state is checkpointed; a crash redoes at most this much work. "
                   "[env: CITYORDER_CHECKPOINT_INTERVAL; default: 30s]")
@click.option("--ingest-linger", default=None,
              help="Least time between ingest's writes while it keeps up: fewer, larger batches "
                   "for up to this much more latency. [env: CITYORDER_INGEST_LINGER; default: 0s]")
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def worker(loglevel: str, rules_: str | None, **flags: Any) -> None:
    """Run a production worker against any Kafka cluster (SASL/SSL via CITYORDER_* variables).

    Creates the topics it needs (a topic with another partition count is an error), recovers
    its state, then consumes the input topics and writes city.alerts until stopped (SIGTERM,
    Ctrl-C). Start more workers with the same settings to share the partitions.
    """
    from streams.worker import run_worker

    run_worker(_runtime(settings_from(need_city=True, rules=rules_, **flags)), loglevel=loglevel)


def _runtime(settings: Any, **kwargs: Any) -> Any:
    """The worker's runtime from the settings' city map and rule packs (errors name the file)."""
    from streams.app import Runtime

    city, rules = _load(settings.city, settings.rules)
    return Runtime(settings, city, rules, **kwargs)


@main.command()
@kafka_options
@click.option("--input", "input_path", default=None,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A replay file (docs/rules.md) to send. [default: generate the demo city's day]")
@click.option("--day", default="2026-11-20", show_default=True, help="Demo: first local date.")
@click.option("--days", default=1, show_default=True, help="Demo: consecutive days to generate.")
@click.option("--seed", default=7, show_default=True, help="Demo: random seed.")
@click.option("--scale", default=1.0, show_default=True,
              help="Demo: multiply cameras' objects and frames (a bigger city).")
@click.option("--rate", type=float, default=None,
              help="Records per second (a load test). [default: as fast as possible]")
@click.option("--speedup", type=float, default=None,
              help="Event time runs this many times faster than the wall clock.")
@click.option("--duration", default=None, help="Stop after this long, e.g. 60s.")
@click.option("--keep-arrival", is_flag=True, help="Stamp records with the lines' recorded arrivals.")
@click.option("--no-tick", is_flag=True, help="Do not end with a clock tick.")
@click.option("--record", type=OutputFile(), default=None,
              help="Also write what is sent as a replay file.")
def simulate(input_path: Path | None, day: str, days: int, seed: int, scale: float, rate: float | None,
             speedup: float | None, duration: str | None, keep_arrival: bool, no_tick: bool,
             record: Path | None, **flags: Any) -> None:
    """Produce the demo city (or a recording) to the input topics: demo data and load generator.

    Ends with a clock tick on every input partition, so an event-mode worker applies all it
    got and fires the timers due by then.
    """
    import asyncio

    from rules.durations import parse_duration
    from streams.simulate import read_lines
    from streams.simulate import simulate as run_simulation

    settings = settings_from(**flags)
    try:
        duration_s = parse_duration(duration) / 1000 if duration else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--duration") from None
    lines = read_lines(input_path) if input_path else _demo_lines(day, days, seed, scale)
    out = record.open("wb") if record else None
    started = time.monotonic()

    def progress(st: Any) -> None:
        elapsed = max(time.monotonic() - started, 1e-9)
        failed = f", {st.failed} failed" if st.failed else ""
        click.echo(f"sent {st.sent} records ({st.sent / elapsed:,.0f}/s), {st.ticks} ticks{failed}", err=True)

    try:
        stats = asyncio.run(run_simulation(
            settings, lines, rate=rate, speedup=speedup, duration_s=duration_s,
            keep_arrival=keep_arrival, strict_order=rate is None, end_tick=not no_tick, on_sent=progress,
            record=(lambda obj: out.write(orjson.dumps(obj) + b"\n")) if out else None))
    except KeyboardInterrupt:
        raise click.Abort() from None
    finally:
        if out:
            out.close()
    click.echo(f"done: {stats.sent} records by topic {stats.by_topic}", err=True)
    if stats.failed:
        click.echo(f"{stats.failed} records were not sent or refused by the broker (the warnings "
                   "above say which)", err=True)
        raise SystemExit(1)


def _demo_lines(day: str, days: int, seed: int, scale: float) -> Iterator[dict[str, Any]]:
    from datetime import date, timedelta

    from rules.demo.dispatch import generate_with_feedback

    try:
        first = date.fromisoformat(day)
    except ValueError:
        raise click.BadParameter("write a date as YYYY-MM-DD", param_hint="--day") from None
    for n in range(days):
        the_day = first + timedelta(days=n)
        for line in generate_with_feedback(DEMO_CITY, DEFAULT_PACK, the_day, seed + n, scale):
            if "tick" not in line or n == days - 1:
                yield line


@main.command()
@kafka_options
@click.option("--from-beginning", is_flag=True, help="Start at the oldest message, not the next one.")
@click.option("--json", "as_json", is_flag=True, help="Print the messages as they are (one JSON per line).")
@click.option("--all", "show_all", is_flag=True, help="Also show 'updated' (new evidence) transitions.")
def tail(from_beginning: bool, as_json: bool, show_all: bool, **flags: Any) -> None:
    """Follow city.alerts: one readable line per alert transition (Ctrl-C to stop)."""
    import asyncio

    from streams.tail import NOTEWORTHY, describe, follow

    settings = settings_from(**flags)

    def show(alert: dict[str, Any]) -> None:
        if as_json:
            click.echo(orjson.dumps(alert).decode())
        elif show_all or alert.get("transition") in NOTEWORTHY:
            click.echo(describe(alert))

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow(settings, show, from_beginning=from_beginning))


@main.command()
@kafka_options
@click.argument("alert_id")
@click.argument("action", type=click.Choice(["acknowledge", "dispatch", "resolve", "verify", "reject",
                                             "reopen", "defer"]))
@click.option("--actor", default="cli", show_default=True, help="Who acts (duty officer id).")
@click.option("--note", default=None, help="Free text, e.g. 已派单.")
@click.option("--assignee", default=None, help="dispatch: the team or person assigned.")
@click.option("--until", default=None, metavar="TIME", help="defer: until when (RFC 3339).")
@click.option("--at", "at", default=None, metavar="TIME",
              help="When it was done (RFC 3339). [default: now on the system's clock: the wall "
                   "clock, or on an event-clock system (cityorder dev, a simulation) the current "
                   "time of the alert's partition]")
def feedback(alert_id: str, action: str, actor: str, note: str | None, assignee: str | None,
             until: str | None, at: str | None, **flags: Any) -> None:
    """Send a lifecycle action for ALERT_ID to city.alerts.feedback.

    The action is stamped with the time of the system that applies it: the wall clock for a
    live worker; for an event-clock system (cityorder dev, simulations, backtests) the current
    event time of the alert's partition, read from Kafka (streams/clock.py), since the wall
    clock would move that system's clock to today. An --at too far ahead of that clock is
    refused here. An illegal action is not refused here: the worker rejects it to the
    dead-letter topic with its reason (docs/contracts.md), like any other system's feedback.
    """
    import asyncio
    import uuid

    from pydantic import ValidationError

    from models.inputs import Feedback
    from models.timestamps import parse_input_timestamp_ms
    from streams.clock import FeedbackClockError, read_clock

    settings = settings_from(**flags)
    at_ms = None
    if at is not None:
        try:
            at_ms = parse_input_timestamp_ms(at)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--at") from None
    try:
        clock = asyncio.run(read_clock(settings, alert_id))
        reorder_ms, lateness_ms = _time_settings(settings) if clock.mode == "event" else (0, 0)
        stamp = clock.feedback_at(at_ms, now_ms=int(time.time() * 1000),
                                  reorder_window_ms=reorder_ms, allowed_lateness_ms=lateness_ms)
    except FeedbackClockError as e:
        raise click.ClickException(str(e)) from None
    message: dict[str, Any] = {
        "event_id": f"fb-cli-{uuid.uuid4().hex[:12]}", "alert_id": alert_id, "action": action,
        "actor": actor, "at": at if at is not None else clock.format(stamp)}
    for name, value in (("note", note), ("assignee", assignee), ("until", until)):
        if value is not None:
            message[name] = value
    payload = orjson.dumps(message)
    try:
        Feedback.model_validate_json(payload)
    except ValidationError as e:
        raise click.ClickException(f"not a valid feedback message: {e.errors()[0]['msg']}") from None
    asyncio.run(_send_one(settings, settings.topic("city.alerts.feedback"), alert_id, payload))
    click.echo(f"sent {message['event_id']}: {action} {alert_id} at {message['at']} "
               f"({'as given' if at is not None else clock.describe()}; the alert was {clock.status})")


def _time_settings(settings: Any) -> tuple[int, int]:
    """The reorder window and allowed lateness of the rule packs the settings name (those a
    worker started with the same CITYORDER_* variables runs; the default pack, as
    `cityorder dev` runs): what an event-clock stamp and the check of --at depend on."""
    from rules.pack import PackError, load_rules

    try:
        rules = load_rules(list(settings.rules))
    except (PackError, OSError) as e:
        raise click.ClickException(str(e)) from None
    return rules.reorder_window_ms, rules.allowed_lateness_ms


@main.command()
@click.option("--speedup", default=600.0, show_default=True,
              help="Event time runs this many times faster than the wall clock (600: a day in 2.4 min; "
                   "0: as fast as the broker takes it).")
@click.option("--day", default="2026-11-20", show_default=True, help="Local date of the demo day.")
@click.option("--seed", default=7, show_default=True, help="Random seed of the demo day.")
@click.option("--scale", default=1.0, show_default=True, help="Multiply cameras' objects and frames.")
@click.option("--partitions", default=4, show_default=True, help="Partitions of every topic.")
@click.option("--web-port", default=6066, show_default=True,
              help="Port for /metrics, /readyz, /healthz (a free one is taken if it is busy).")
@click.option("--all", "show_all", is_flag=True, help="Also print 'updated' (new evidence) transitions.")
@click.option("--record", type=OutputFile(), default=None,
              help="Write every line sent to this replay file (JSONL), to replay it later.")
@click.option("--alerts", "alerts_path", type=OutputFile(), default=None,
              help="Write every city.alerts message the worker sends to this file (JSONL).")
@click.option("--ledger", "ledger_url", default=None,
              help="The ledger's database (kept after dev stops). [default: a SQLite file in a new "
                   "temporary directory]")
@click.option("--console-port", default=8080, show_default=True,
              help="Port of the operations console (a free one is taken if it is busy; 0: no console).")
def dev(speedup: float, day: str, seed: int, scale: float, partitions: int, web_port: int,
        show_all: bool, record: Path | None, alerts_path: Path | None, ledger_url: str | None,
        console_port: int) -> None:
    """Run everything on this machine: embedded broker, a worker, the demo city's day streaming in.

    Starts the embedded Kafka-compatible broker (Tansu) on a free port, creates the topics,
    starts a worker in event clock mode and streams the demo day through it at --speedup,
    printing alerts as they open, escalate and close. Ctrl-C stops everything.

    The clock is the event clock: time is the demo day's (its readings' observed_at and the
    producer's ticks), not this machine's; `cityorder feedback` stamps an action with it. To
    check the run against a replay of what it sent:

    \b
      cityorder dev --record day.jsonl --alerts live.jsonl     (Ctrl-C once the day is sent)
      cityorder replay day.jsonl -o replayed.jsonl
      cityorder compare live.jsonl replayed.jsonl
    """

    import tempfile

    from ledger.cli import open_store
    from ledger.service import LedgerService
    from streams.broker import EmbeddedBroker
    from streams.dev import DevConsole, free_port
    from streams.simulate import simulate as run_simulation
    from streams.worker import run_worker

    started = time.monotonic()
    recorded = record.open("wb") if record else None
    alerts_out = alerts_path.open("wb") if alerts_path else None
    with EmbeddedBroker() as broker:
        port = web_port if free_port(web_port) else free_port(0)
        settings = settings_from(brokers=broker.url, city=DEMO_CITY, clock="event", store="memory",
                                 session_timeout="3s", partitions=partitions, web_port=port,
                                 tick_interval="500ms")
        console = DevConsole(show_all=show_all, started=started)

        def on_alert(alert: dict[str, Any]) -> None:
            if alerts_out is not None:
                alerts_out.write(orjson.dumps(alert) + b"\n")
                alerts_out.flush()
            console.alert(alert)

        runtime = console.runtime = _runtime(settings, on_alert=on_alert)
        lines = _demo_lines(day, 1, seed, scale)

        def on_line(obj: dict[str, Any]) -> None:
            assert recorded is not None
            recorded.write(orjson.dumps(obj) + b"\n")

        async def stream_demo() -> None:
            stats = await run_simulation(settings, lines, speedup=speedup or None,
                                         reorder_window_ms=runtime.rules.reorder_window_ms,
                                         record=on_line if recorded else None)
            if recorded is not None:
                recorded.close()
            console.say(f"demo day sent: {stats.sent} records; the worker keeps running (Ctrl-C to stop)")

        runtime.app.task(stream_demo)
        runtime.app.timer(1.0)(console.status)
        ledger_at = ledger_url or str(Path(tempfile.mkdtemp(prefix="cityorder-dev-")) / "ledger.sqlite")
        ledger_store = open_store(ledger_at)
        runtime.app.task(LedgerService(settings, ledger_store).run)
        console_url = None
        if console_port:
            console_url = _dev_console(runtime, settings, ledger_store, console_port)
        click.echo(f"cityorder dev: embedded broker at {broker.url} (pid {broker.pid})", err=True)
        click.echo("  clock      event: the demo day's time, not this machine's (see --help)", err=True)
        click.echo(f"  metrics    http://127.0.0.1:{port}/metrics", err=True)
        click.echo(f"  readiness  http://127.0.0.1:{port}/readyz", err=True)
        click.echo(f"  follow     CITYORDER_BROKERS={broker.url} cityorder tail", err=True)
        if record:
            click.echo(f"  recording  {record} (what is sent; cityorder replay it to compare)", err=True)
        if alerts_path:
            click.echo(f"  alerts     {alerts_path} (what the worker sends)", err=True)
        click.echo(f"  ledger     {ledger_at}: cityorder report --ledger {ledger_at} --by district "
                   f"--date {day}", err=True)
        if console_url:
            click.echo(f"  console    {console_url} (sign in as {DEMO_USER[0]} / {DEMO_USER[1]}, an "
                       "operator; the demo's dispatch acts beside you)", err=True)
        click.echo(f"  streaming the demo day of {day} at {f'{speedup:g}x' if speedup else 'full speed'}; "
                   "Ctrl-C stops everything", err=True)
        try:
            run_worker(runtime, loglevel="warning", before_start=console.on_loop)
        except SystemExit as e:
            if e.code not in (0, None):
                raise
        finally:
            for f in (recorded, alerts_out):
                if f is not None and not f.closed:
                    f.close()
            ledger_store.close()
            click.echo(f"the ledger stays in {ledger_at}; stopping the embedded broker", err=True)


#: The operator ``cityorder dev`` adds to its ledger, for its console.
DEMO_USER = ("demo", "demo-operator")


def _dev_console(runtime: Any, settings: Any, store: Any, port: int) -> str:
    """Start the console as one of dev's tasks, with the demo operator; its URL."""
    from console.auth import Accounts
    from console.cli import serve as serve_console
    from streams.dev import free_port

    accounts = Accounts(store.engine)
    if accounts.get(DEMO_USER[0]) is None:          # a kept --ledger already has it
        accounts.add(DEMO_USER[0], DEMO_USER[1], "operator")
    port = port if free_port(port) else free_port(0)

    async def run() -> None:
        await serve_console(settings, store, "127.0.0.1", port)

    runtime.app.task(run)
    return f"http://127.0.0.1:{port}/"


@main.command()
@click.argument("live", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("expected", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def compare(live: Path, expected: Path) -> None:
    """Compare two files of city.alerts messages (JSONL): LIVE (e.g. `cityorder dev --alerts`)
    against EXPECTED (e.g. `cityorder replay -o`).

    Messages are matched by (alert_id, version) and compared on every field but emitted_at; a
    version repeated with the same content (a redelivery) is fine. Exit 0 when both hold the
    same versions with the same content, 1 otherwise, with what differs.
    """
    from streams.compare import compare_alerts, read_alerts

    try:
        result = compare_alerts(read_alerts(live), read_alerts(expected))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(result.describe(live.name, expected.name))
    if not result.same:
        raise SystemExit(1)


async def _send_one(settings: Any, topic: str, key: str, value: bytes) -> None:
    from aiokafka import AIOKafkaProducer

    from streams.topics import start_client

    producer = AIOKafkaProducer(**settings.producer_kwargs(), acks="all", client_id="cityorder-cli")
    await start_client(producer, settings)
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def _add_packages() -> None:
    """The ledger's, the console's, the adapters' and the webhooks' commands live in their own
    packages."""
    from adapters.cli import adapt
    from console.cli import console
    from ledger.cli import ledger, report
    from webhooks.cli import webhooks

    main.add_command(ledger)
    main.add_command(report)
    main.add_command(console)
    main.add_command(adapt)
    main.add_command(webhooks)


_add_packages()

if __name__ == "__main__":
    main()
