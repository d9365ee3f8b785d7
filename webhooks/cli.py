"""``cityorder webhooks``: alert transitions to dispatch systems over HTTP (docs/webhooks.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from streams.options import kafka_options, log_to_stderr, settings_from
from webhooks.config import ConfigError, Receivers, load

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group()
def webhooks() -> None:
    """Dispatch systems out: POST alert transitions to webhook receivers.

    A receivers file (YAML, like Alertmanager's receivers) says where each dispatch system is,
    which transitions it wants (matchers on rule_id, category, level, district, notify, ...),
    and how to sign and retry. Each request carries an Idempotency-Key (alert_id:version) and an
    HMAC-SHA256 signature; what a receiver never takes goes to city.webhooks.deadletter.
    See docs/webhooks.md.
    """


@webhooks.command()
@click.argument("receivers", type=_FILE)
@kafka_options
@click.option("--city", default=None, help="City map, for its time zone in dead letters. "
              "[env: CITYORDER_CITY; required]")
@click.option("--web-port", type=int, default=6080, show_default=True, help="/metrics and /healthz.")
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def run(receivers: Path, city: str | None, web_port: int, loglevel: str, **flags: Any) -> None:
    """Deliver city.alerts to every receiver in RECEIVERS until stopped (SIGINT, SIGTERM).

    At least once, in version order per alert; a restart goes on from what was delivered."""
    from ledger.cli import run_until_stopped
    from rules.citymap import CityMap, MapError
    from streams.web import serve_beside
    from webhooks.service import Webhooks

    config, secrets = _load(receivers)
    settings = settings_from(need_city=True, **({"city": city} if city else {}), **flags)
    try:
        calendar = CityMap.load(settings.city).calendar
    except MapError as e:
        raise click.ClickException(str(e)) from None
    log_to_stderr(loglevel)
    service = Webhooks(settings, config, secrets, stamp=lambda s: calendar.format(int(s * 1000)))
    run_until_stopped(lambda: serve_beside(service.run, service.web_app(), web_port), "webhooks")


@webhooks.command()
@click.argument("receivers", type=_FILE)
@click.option("--alert", "alert_path", type=click.File("rb"), default=None,
              help="A city.alerts message (JSON; - for standard input): show which receivers get it.")
def check(receivers: Path, alert_path: Any) -> None:
    """Check RECEIVERS (and that each secret is there) and list what each receiver gets."""
    from webhooks.matchers import matches

    config, _ = _load(receivers)
    alert = None
    if alert_path is not None:
        try:
            alert = orjson.loads(alert_path.read())
        except orjson.JSONDecodeError as e:
            raise click.ClickException(f"--alert: not JSON: {e}") from None
        if not isinstance(alert, dict):
            raise click.ClickException("--alert: expected one city.alerts message (a JSON object)")
    for r in config.receivers:
        wants = " and ".join(str(m) for m in r.matchers) or "every transition"
        line = f"{r.name}: {r.safe_url} ({r.format}) <- {wants}"
        if alert is not None:
            line += f"  => {'gets it' if matches(r.matchers, alert) else 'not this one'}"
        click.echo(line)


def _load(path: Path) -> tuple[Receivers, dict[str, bytes]]:
    try:
        return load(path)
    except ConfigError as e:
        raise click.ClickException(f"{e}\n(docs/webhooks.md describes the receivers file)") from None
