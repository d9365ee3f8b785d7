"""The ``cityorder`` command line.

Every failure a user can cause (a missing file, a rule with a typo, a broken map, a malformed
replay line) ends in one line naming the file and line and what to fix, never a traceback.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
import orjson

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from rules.pack import DEFAULT_PACK

PROGRESS_BYTES = 4 * 1024 * 1024

city_option = click.option(
    "--city", "city_path", type=click.Path(dir_okay=False, path_type=Path), default=DEMO_CITY,
    show_default="the demo city", help="City map (GeoJSON FeatureCollection, RULES.md).")
rules_option = click.option(
    "--rules", "rule_paths", multiple=True, type=click.Path(path_type=Path),
    help="Rule pack: a directory of *.yaml or one file. Repeat for several packs. "
         "[default: the default pack]")


def _load(city_path: Path, rule_paths: tuple[Path, ...]) -> tuple[Any, Any]:
    from rules.citymap import CityMap, MapError
    from rules.pack import PackError, load_rules

    try:
        city = CityMap.load(city_path)
    except (MapError, OSError) as e:
        raise click.ClickException(str(e)) from None
    try:
        rules = load_rules(list(rule_paths) or [DEFAULT_PACK])
    except (PackError, OSError) as e:
        raise click.ClickException(str(e)) from None
    return city, rules


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
def main() -> None:
    """cityorder: real-time alerting for city order (市容秩序).

    Camera, sensor, report and feedback events in; alerts that open, escalate and close out.
    Start with `cityorder demo` to replay a generated day of the demo city.
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
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the city.alerts messages here (JSONL). [default: standard output]")
@click.option("--deadletters", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the city.alerts.deadletter messages here (JSONL). [default: not kept, "
                   "counted in the summary]")
@click.option("-q", "--quiet", is_flag=True, help="No summary on standard error.")
def replay(events: Path, city_path: Path, rule_paths: tuple[Path, ...], clock: str,
           until: str | None, output: Path | None, deadletters: Path | None, quiet: bool) -> None:
    """Replay a recorded input log (JSONL, RULES.md) and write the alerts it gives.

    The output equals what a live worker would have produced for the same input, on every
    field but emitted_at.
    """
    from models.timestamps import parse_timestamp_ms
    from rules.replay import Replay, ReplayFileError

    city, rules = _load(city_path, rule_paths)
    until_ms = None
    if until is not None:
        try:
            until_ms = parse_timestamp_ms(until)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--until") from None
    with ExitStack() as stack:
        out = stack.enter_context(output.open("wb")) if output else sys.stdout.buffer
        dead = stack.enter_context(deadletters.open("wb")) if deadletters else None
        rp = Replay(city, rules, clock=clock, source=str(events),
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
    engine, ingest = rp.engine, rp.ingest
    final = summary.final.values()
    echo = lambda s="": click.echo(s, err=True)  # noqa: E731
    echo(f"{summary.lines} lines ({summary.ticks} ticks) in {elapsed:.2f} s; "
         f"{summary.alerts_out} alert messages for {len(summary.final)} alerts; "
         f"{sum(summary.dead.values())} dead letters")
    _table(echo, "alerts by rule", Counter(a["rule_id"] for a in final))
    _table(echo, "alerts by level", Counter(f"level {a['level']}" for a in final))
    _table(echo, "alerts by status", Counter(a["status"] for a in final))
    _table(echo, "transitions", engine.stats.transitions)
    _table(echo, "dead letters by reason", summary.dead)
    _table(echo, "ignored", Counter({f"{k}={v}": n for (k, v), n in ingest.ignored.items()}))
    _table(echo, "late (by device)", engine.stats.late)
    _table(echo, "duplicates", engine.stats.duplicates)
    if engine.stats.evicted:
        echo(f"evicted subjects: {engine.stats.evicted}")


def _table(echo: Any, title: str, counts: Counter[str]) -> None:
    if not counts:
        echo(f"{title}: none")
        return
    echo(f"{title}:")
    width = max(len(k) for k in counts)
    for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        echo(f"  {k:<{width}}  {n:>8}")


@main.group()
def rules() -> None:
    """Check rule packs and run analysts' rule tests."""


@rules.command("check")
@city_option
@rules_option
def rules_check(city_path: Path, rule_paths: tuple[Path, ...]) -> None:
    """Validate rule packs and the city map; print warnings (exit 1 on an error)."""
    from rules.pack import check_against_map

    city, ruleset = _load(city_path, rule_paths)
    warnings = check_against_map(ruleset, city)
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
                   until=None, output=output.parent / "alerts.jsonl",
                   deadletters=output.parent / "deadletters.jsonl", quiet=False)
        click.echo(f"alerts in {output.parent / 'alerts.jsonl'}, dead letters in "
                   f"{output.parent / 'deadletters.jsonl'}", err=True)


if __name__ == "__main__":
    main()
