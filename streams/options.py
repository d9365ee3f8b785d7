"""Options, settings and logging shared by the commands that talk to Kafka (``streams.cli``,
``ledger.cli``, ``console.cli``, ``adapters.cli``, ``webhooks.cli``)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click


def settings_from(**overrides: Any) -> Any:
    """Settings from CITYORDER_* variables with the given flags on top; bad values end here."""
    from streams.settings import Settings, SettingsError

    try:
        return Settings.from_env(**overrides)
    except SettingsError as e:
        raise click.ClickException("bad configuration:\n  " + "\n  ".join(e.problems)) from None


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
