"""Options, settings and logging shared by the commands that talk to Kafka (``streams.cli``,
``ledger.cli``, ``console.cli``, ``adapters.cli``, ``webhooks.cli``)."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import click


def settings_from(*, need_city: bool = False, **overrides: Any) -> Any:
    """Settings from CITYORDER_* variables with the given flags on top; bad values end here,
    and so does a service that needs the city map (``need_city``) started without one."""
    from streams.settings import Settings, SettingsError

    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as e:
        raise click.ClickException("bad configuration:\n  " + "\n  ".join(e.problems)) from None
    if need_city and settings.city is None:
        raise click.ClickException(no_city())
    return settings


def no_city() -> str:
    from rules.demo.city import GEOJSON_PATH

    return ("no city map: set CITYORDER_CITY (or --city) to your city's GeoJSON map "
            "(docs/rules.md, section 8). There is no default: a real city must not run on the "
            f"demo map by accident. To try cityorder on the demo city, `cityorder dev` runs "
            f"everything on it, or pass --city {GEOJSON_PATH}")


def kafka_options(f: Any) -> Any:
    """Where the brokers and topics are (each also settable as a CITYORDER_* variable)."""
    f = click.option("--topic-prefix", default=None,
                     help="Prefix of every topic name. [env: CITYORDER_TOPIC_PREFIX]")(f)
    f = click.option("--brokers", default=None, metavar="HOST:PORT[,...]",
                     help="Bootstrap brokers. [env: CITYORDER_BROKERS; default: 127.0.0.1:9092]")(f)
    return f


def log_to_stderr(loglevel: str) -> None:
    """A service's log on standard error, one line a record with its time and logger."""
    logging.basicConfig(level=loglevel.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class OutputFile(click.Path):
    """A file a command writes: refused before any work when its directory does not exist or
    cannot be written, rather than with a traceback once a long replay has run."""

    name = "file"

    def __init__(self) -> None:
        super().__init__(dir_okay=False, writable=True, path_type=Path)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        path = Path(super().convert(value, param, ctx))
        parent = path.parent
        if not parent.is_dir():
            self.fail(f"{path}: there is no directory {parent}", param, ctx)
        if not os.access(parent, os.W_OK):
            self.fail(f"{path}: the directory {parent} cannot be written", param, ctx)
        return path
