"""The receivers file: where each dispatch system wants which alert transitions, and how hard
to try. YAML, shaped like Alertmanager's ``receivers`` (docs/webhooks.md)::

    sender: jiancheng-cityorder          # CAP <sender>; optional
    receivers:
      - name: dispatch-jiancheng
        url: https://dispatch.jiancheng.example/hooks/cityorder
        secret_env: DISPATCH_JIANCHENG_SECRET
        matchers: ['district="简城街道"', 'transition!="updated"']
        format: json                      # or cap (OASIS CAP 1.2 XML)

A problem is reported with the receiver and field it is in, and what to write instead; nothing
starts until the whole file is right. Secrets are never in the file: ``secret_env`` names an
environment variable, ``secret_file`` a file (a Kubernetes or Docker secret).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rules.durations import format_duration, parse_duration
from webhooks.matchers import Matcher

MIN_SECRET_CHARS = 16
_FORBID = ConfigDict(extra="forbid", frozen=True)


class ConfigError(ValueError):
    """The receivers file cannot be used; one line per problem."""


def _ms(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return parse_duration(value)


Millis = Annotated[int, Field(ge=1)]


class Retry(BaseModel):
    """How a failed delivery is tried again. The wait doubles from ``initial`` to ``max``, with
    jitter; a ``Retry-After`` the receiver sends is honoured up to ``max``."""

    model_config = _FORBID

    initial: Millis = 1_000
    max: Millis = 60_000
    attempts: Annotated[int, Field(ge=1, le=1000)] = 10
    """Tries for a message the receiver keeps failing while it accepts others."""
    give_up_after: Millis = 86_400_000
    """How long a message is kept while the receiver fails everything (an outage)."""

    _durations = field_validator("initial", "max", "give_up_after", mode="before")(_ms)

    @model_validator(mode="after")
    def _order(self) -> Retry:
        if self.max < self.initial:
            raise ValueError(f"max ({format_duration(self.max)}) is shorter than initial "
                             f"({format_duration(self.initial)})")
        return self


class Receiver(BaseModel):
    """One dispatch system."""

    model_config = _FORBID

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
    """Lower-case letters, digits and dashes: it names a consumer group and a metric label."""
    url: str
    format: Literal["json", "cap"] = "json"
    matchers: tuple[Matcher, ...] = ()
    secret_env: str | None = None
    secret_file: Path | None = None
    timeout: Millis = 10_000
    retry: Retry = Retry()
    max_in_flight: Annotated[int, Field(ge=1, le=100_000)] = 1_000
    """Messages read but not yet delivered (or dead-lettered): at the bound, reading pauses and
    the rest waits in Kafka."""
    concurrency: Annotated[int, Field(ge=1, le=1_000)] = 16
    """Requests at once (different alerts; one alert's transitions go one after another)."""
    start: Literal["latest", "earliest"] = "latest"
    """Where a new receiver begins: transitions from its first start on, or all ``city.alerts`` holds."""

    _timeout = field_validator("timeout", mode="before")(_ms)

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, value: object) -> object:
        if isinstance(value, str) and not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,62}", value):
            raise ValueError(f"{value!r}: use lower-case letters, digits and dashes (at most 63), "
                             "such as dispatch-jiancheng")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        if parts.username or parts.password:
            raise ValueError("put no user or password in the URL: it would be logged and shown in "
                             "dead letters; the signature header authenticates cityorder")
        return value

    @field_validator("matchers", mode="before")
    @classmethod
    def _matchers(cls, value: object) -> tuple[Matcher, ...]:
        if value is None:
            return ()
        if isinstance(value, str) or not isinstance(value, list):
            raise ValueError('matchers is a list, such as [\'district="简城街道"\', \'level=~"2|3"\']')
        return tuple(v if isinstance(v, Matcher) else Matcher.parse(str(v)) for v in value)

    @model_validator(mode="after")
    def _one_secret(self) -> Receiver:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give exactly one of secret_env (an environment variable's name) and "
                             "secret_file (a file's path): every request is signed with it")
        return self

    @property
    def safe_url(self) -> str:
        """The URL without its query, which may carry a token: what logs and dead letters show."""
        p = urlsplit(self.url)
        return urlunsplit((p.scheme, p.netloc, p.path, "", ""))

    def secret(self, environ: dict[str, str] | None = None) -> bytes:
        """The signing key; raise ConfigError saying where it should be."""
        env = os.environ if environ is None else environ
        if self.secret_env is not None:
            text = env.get(self.secret_env)
            where = f"environment variable {self.secret_env}"
            if text is None:
                raise ConfigError(f"receiver {self.name}: {where} is not set (it holds the signing "
                                  f"secret; make one with: openssl rand -hex 32)")
        else:
            assert self.secret_file is not None
            where = str(self.secret_file)
            try:
                text = self.secret_file.read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(f"receiver {self.name}: cannot read secret_file {where}: "
                                  f"{e.strerror}") from None
        if len(text) < MIN_SECRET_CHARS:
            raise ConfigError(f"receiver {self.name}: the secret in {where} has {len(text)} "
                              f"characters; use at least {MIN_SECRET_CHARS} (openssl rand -hex 32)")
        return text.encode("utf-8")


class Receivers(BaseModel):
    model_config = _FORBID

    sender: Annotated[str, Field(pattern=r"^[^\s,<>&]+$")] = "cityorder"
    """CAP's <sender>: the centre's identifier, no spaces, commas or <>&."""
    receivers: Annotated[tuple[Receiver, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _unique(self) -> Receivers:
        names = [r.name for r in self.receivers]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"receiver names must differ: {', '.join(twice)} used more than once")
        return self


def load(path: Path, environ: dict[str, str] | None = None) -> tuple[Receivers, dict[str, bytes]]:
    """The receivers and their secrets, or ConfigError with every problem in ``path``."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not YAML: {e}") from None
    try:
        config = Receivers.model_validate(data)
    except ValidationError as e:
        raise ConfigError("\n".join(f"{path}: {_where(err['loc'], data)}: {_message(err)}"
                                    for err in e.errors())) from None
    problems, secrets = [], {}
    for r in config.receivers:
        try:
            secrets[r.name] = r.secret(environ)
        except ConfigError as e:
            problems.append(f"{path}: {e}")
    if problems:
        raise ConfigError("\n".join(problems))
    return config, secrets


def _where(loc: tuple[Any, ...], data: Any) -> str:
    """``receivers[0].retry.max`` as ``receiver dispatch-a: retry.max``."""
    if len(loc) >= 2 and loc[0] == "receivers" and isinstance(loc[1], int):
        name = None
        with contextlib.suppress(KeyError, IndexError, TypeError, AttributeError):
            name = data["receivers"][loc[1]].get("name")
        rest = ".".join(str(p) for p in loc[2:]) or "(the receiver)"
        return f"receiver {name or '#' + str(loc[1] + 1)}: {rest}"
    return ".".join(str(p) for p in loc) or "(the file)"


def _message(err: Any) -> str:
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")
