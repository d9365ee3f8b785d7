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


@webhooks.command()
@click.argument("receivers", type=_FILE)
@click.option("--receiver", "name", required=True,
              help="Whose dead letters to send again: a receiver's name in RECEIVERS, whose URL, "
              "secret and format are used as they are now.")
@click.option("--alert", "alerts", multiple=True, metavar="ALERT_ID",
              help="Only this alert's (repeat for several).")
@click.option("--dry-run", is_flag=True, help="List what would be sent, and send nothing.")
@kafka_options
def resend(receivers: Path, name: str, alerts: tuple[str, ...], dry_run: bool, **flags: Any) -> None:
    """Send a receiver's dead letters (city.webhooks.deadletter) again, once it is fixed.

    Each transition once, one alert's in version order; an alert's later versions are held back
    when one is not taken. Signed, with the same Idempotency-Key as before, so a second resend
    is harmless. The dead letters stay. Exits 1 unless every one was delivered."""
    import asyncio

    from webhooks.resend import resend as send_again

    config, secrets = _load(receivers)
    by_name = {r.name: r for r in config.receivers}
    if name not in by_name:
        raise click.BadParameter(f"no receiver {name} in {receivers} (it has: "
                                 f"{', '.join(sorted(by_name))})", param_hint="--receiver")
    settings = settings_from(**flags)
    ok = asyncio.run(send_again(settings, by_name[name], secrets[name], config.sender,
                                alerts=frozenset(alerts), dry_run=dry_run, echo=click.echo))
    if not ok:
        raise SystemExit(1)


def _load(path: Path) -> tuple[Receivers, dict[str, bytes]]:
    try:
        return load(path)
    except ConfigError as e:
        raise click.ClickException(f"{e}\n(docs/webhooks.md describes the receivers file)") from None
