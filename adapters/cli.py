"""``cityorder adapt``: camera platforms into ``city.events.camera`` (docs/adapters.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import yaml

from streams.options import kafka_options, log_to_stderr, settings_from


@click.group()
def adapt() -> None:
    """Camera platforms in: convert their messages to city.events.camera.

    Each camera must be in the city map with a calibration (pixels to positions); messages
    that cannot be converted go to city.alerts.deadletter with a reason. See docs/adapters.md.
    """


def common_options(f: Any) -> Any:
    """What every adapter takes: the brokers, the map, the label mapping, its web port."""
    f = kafka_options(f)
    f = click.option("--city", default=None, help="City map, with the cameras' calibrations. "
                     "[env: CITYORDER_CITY; required]")(f)
    f = click.option("--labels", "labels_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     default=None, help="A YAML or JSON mapping of the platform's labels to the "
                     "contract's (e.g. car: parked_car), on top of the built-in one (docs/adapters.md).")(f)
    f = click.option("--web-port", type=int, default=6070, show_default=True,
                     help="/metrics and /healthz.")(f)
    return click.option("--loglevel", default="info", show_default=True,
                        type=click.Choice(["debug", "info", "warning", "error"]))(f)


@adapt.command()
@click.argument("topics", nargs=-1, required=True)
@common_options
@click.option("--confidence", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="The confidence of a minimal-schema object that carries none.")
def deepstream(topics: tuple[str, ...], city: str | None, labels_path: Path | None, confidence: float,
               web_port: int, loglevel: str, **flags: Any) -> None:
    """Read NVIDIA DeepStream nvmsgconv messages (full or minimal schema) from TOPICS on the same
    Kafka cluster, and write city.events.camera. At least once: offsets are committed after
    the camera messages and dead letters are acknowledged."""
    from adapters.bridge import KafkaBridge
    from adapters.deepstream import DeepStream

    settings, router = _router("deepstream", city, labels_path, loglevel, flags,
                               lambda placer: DeepStream(placer, confidence))
    _run(KafkaBridge(settings, router, list(topics)), web_port)


@adapt.command()
@click.option("--mqtt", "url", default="mqtt://127.0.0.1:1883", show_default=True,
              help="The MQTT broker Frigate publishes to: mqtt://[user:password@]host[:port].")
@click.option("--topic", default="frigate/events", show_default=True,
              help="Frigate's events topic (<topic_prefix>/events in Frigate's config).")
@click.option("--snapshots", "snapshot_base", default=None, metavar="URL",
              help="Frigate's web address (e.g. http://frigate:5000): snapshot_url then links to each "
              "event's snapshot.")
@common_options
def frigate(url: str, topic: str, snapshot_base: str | None, city: str | None, labels_path: Path | None,
            web_port: int, loglevel: str, **flags: Any) -> None:
    """Read Frigate NVR's frigate/events over MQTT and write city.events.camera. At least once:
    subscribed at QoS 1 in a persistent session, each message acknowledged only after Kafka has
    what it became (set mqtt: qos: 1 in Frigate's config, or messages sent while the adapter is
    down are lost)."""
    from adapters.frigate import Frigate
    from adapters.mqtt import MqttBridge

    settings, router = _router("frigate", city, labels_path, loglevel, flags,
                               lambda placer: Frigate(placer, snapshot_base))
    try:
        bridge = MqttBridge(settings, router, url, topic)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--mqtt") from None
    _run(bridge, web_port)


@adapt.command()
@kafka_options
@click.option("--city", default=None, help="City map. [env: CITYORDER_CITY; required]")
@click.option("--rules", default=None, help="Rule packs, for the services (report categories) offered. "
              "[env: CITYORDER_RULES; default: the default pack]")
@click.option("--ledger", "ledger_url", default=None, help="The ledger database, where requests are kept and "
              "their cases looked up. [env: CITYORDER_LEDGER_URL; default: <state dir>/ledger.sqlite]")
@click.option("--host", default="127.0.0.1", show_default=True, help="0.0.0.0 to serve other machines.")
@click.option("--port", type=int, default=8081, show_default=True, help="The Open311 endpoints.")
@click.option("--web-port", type=int, default=6072, show_default=True,
              help="/metrics and /healthz (all interfaces, apart from --port).")
@click.option("--loglevel", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def open311(city: str | None, rules: str | None, ledger_url: str | None, host: str, port: int,
            web_port: int, loglevel: str, **flags: Any) -> None:
    """Citizen reports in through Open311 GeoReport v2 (services.json, requests.json,
    requests/ID.json) at /open311/v2: each request becomes a city.events.report message (source
    app), and its status is read from the ledger (run `cityorder ledger` beside it)."""
    from adapters.open311 import serve
    from ledger.cli import open_store, run_until_stopped
    from ledger.store import LedgerError
    from rules.citymap import CityMap, MapError
    from rules.pack import PackError, load_rules

    overrides = {k: v for k, v in (("city", city), ("rules", rules), ("ledger_url", ledger_url)) if v}
    settings = settings_from(need_city=True, **overrides, **flags)
    try:
        city_map = CityMap.load(settings.city)
        rule_set = load_rules(list(settings.rules))
    except (MapError, PackError) as e:
        raise click.ClickException(str(e)) from None
    store = open_store(settings.ledger_location)
    log_to_stderr(loglevel)
    try:
        run_until_stopped(lambda: serve(settings, store, city_map, rule_set, host, port, web_port),
                          "open311")
    except LedgerError as e:
        raise click.ClickException(str(e)) from None
    finally:
        store.close()


def _router(adapter: str, city: str | None, labels_path: Path | None, loglevel: str,
            flags: dict[str, Any], make: Any) -> tuple[Any, Any]:
    from adapters.bridge import Router
    from adapters.placing import Placer
    from rules.citymap import CityMap, MapError
    from streams.ingest_loop import wall_ms

    settings = settings_from(need_city=True, **({"city": city} if city else {}), **flags)
    try:
        city_map = CityMap.load(settings.city)
    except MapError as e:
        raise click.ClickException(str(e)) from None
    labels = _labels(labels_path)
    log_to_stderr(loglevel)
    if not any(d.calibration is not None for d in city_map.cameras.values()):
        click.echo(f"warning: no camera of {settings.city} has a calibration: every message will be "
                   "a dead letter (docs/adapters.md)", err=True)
    convert = make(Placer(city_map, labels))
    return settings, Router(settings, adapter, convert, stamp=lambda: city_map.calendar.format(wall_ms()))


def _run(bridge: Any, web_port: int) -> None:
    from ledger.cli import run_until_stopped
    from streams.web import serve_beside

    run_until_stopped(lambda: serve_beside(bridge.run, bridge.web_app(), web_port), "adapter")


def _labels(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise click.ClickException(f"{path}: cannot read the label mapping: {e}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in data.items()):
        raise click.ClickException(f"{path}: expected a mapping of platform label to contract label, "
                                   "such as `car: parked_car`")
    return data
