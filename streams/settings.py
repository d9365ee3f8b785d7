"""The worker's configuration: one frozen, typed object read from ``CITYORDER_*`` variables.

Everything the runtime needs to know about its surroundings (brokers, security, topic names,
partitions, state directory, rule packs, city map, clock mode) lives here, so that the Faust
app, the admin client that creates topics and the tests all read the same values, and so a
deployment is described by its environment alone (twelve-factor). Command-line flags override
single fields through :meth:`Settings.from_env`.

A bad value is reported before anything connects, naming the variable (or the flag) that
carried it and what would be valid::

    >>> Settings.from_env({"CITYORDER_PARTITIONS": "four"})
    Traceback (most recent call last):
    ...
    streams.settings.SettingsError: CITYORDER_PARTITIONS: 'four' is not a whole number; ...

Usage::

    settings = Settings.from_env(partitions=8)          # environment + one CLI override
    settings.topic("city.alerts")                       # 'staging.city.alerts' with a prefix
    AIOKafkaProducer(**settings.aiokafka_kwargs())
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Mapping
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.vocabulary import INPUT_TOPICS, OUTPUT_TOPICS
from rules.durations import format_duration, parse_duration
from rules.pack import DEFAULT_PACK
from rules.partitioning import DEFAULT_PARTITIONS

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

ENV_PREFIX = "CITYORDER_"
DEFAULT_RULES = DEFAULT_PACK

#: Input parts and ticks keyed by grid (DESIGN.md "Time is data"); not part of the contract.
INTERNAL_TOPIC = "cityorder.internal"
#: The console's audit trail (who did what to which case), for other systems to follow.
AUDIT_TOPIC = "city.audit"
#: Alert transitions a webhook receiver never took (``cityorder webhooks``, docs/webhooks.md).
WEBHOOK_DEADLETTER_TOPIC = "city.webhooks.deadletter"
#: Every topic name :meth:`Settings.topic` knows, unprefixed.
TOPICS = (*INPUT_TOPICS, *OUTPUT_TOPICS, INTERNAL_TOPIC, AUDIT_TOPIC, WEBHOOK_DEADLETTER_TOPIC)
#: The largest record the input and internal topics accept (their ``max.message.bytes``, and
#: what ``cityorder simulate`` may send). The contract allows 1 MiB per message and a worker
#: dead-letters a larger one as ``too_large``, but only if the broker lets it through: Kafka's
#: default (1,048,588 bytes a record batch: the contract's limit plus 12) leaves no room above
#: the contract's limit, so an oversized record was refused to its producer and never reached
#: the dead-letter topic. 4 MiB: four times the contract's limit,
#: so anything plausibly oversized (a vendor's bloated frame, a pasted photo) is dead-lettered
#: with its first 64 KiB for someone to look at, while the broker still refuses the absurd.
#: Internal records need it too: a part carries a feedback message's raw bytes (base64, 4/3 of
#: up to 1 MiB), and ingest sends records of up to 2 MiB.
MAX_RECORD_BYTES = 4 * 1024 * 1024

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
Compression = Literal["lz4", "zstd", "gzip", "snappy", "none"]
COMPRESSIONS: tuple[Compression, ...] = ("lz4", "zstd", "gzip", "snappy", "none")
SECURITY_PROTOCOLS: tuple[SecurityProtocol, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: tuple[SaslMechanism, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

MAX_PARTITIONS = 1024
MIN_TICK_MS, MAX_TICK_MS = 10, 3_600_000
MIN_SESSION_MS, MAX_SESSION_MS = 1_000, 300_000
MIN_CHECKPOINT_MS, MAX_CHECKPOINT_MS = 100, 600_000
MAX_LINGER_MS = 5_000
_DURATION_RANGES = {"tick_interval_ms": (MIN_TICK_MS, MAX_TICK_MS, "1s"),
                    "session_timeout_ms": (MIN_SESSION_MS, MAX_SESSION_MS, "10s"),
                    "checkpoint_interval_ms": (MIN_CHECKPOINT_MS, MAX_CHECKPOINT_MS, "30s"),
                    "ingest_linger_ms": (0, MAX_LINGER_MS, "200ms")}
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]*$")
_DEFAULT_KAFKA_PORT = 9092

#: Fields whose variable is not simply CITYORDER_<FIELD>: the field holds milliseconds, the
#: variable a duration such as ``1s``.
_ENV_NAMES = {"tick_interval_ms": "CITYORDER_TICK_INTERVAL",
              "session_timeout_ms": "CITYORDER_SESSION_TIMEOUT",
              "checkpoint_interval_ms": "CITYORDER_CHECKPOINT_INTERVAL",
              "ingest_linger_ms": "CITYORDER_INGEST_LINGER"}
#: Override keywords accepted besides the field names, as a CLI flag would spell them.
_ALIASES = {"tick_interval": "tick_interval_ms", "session_timeout": "session_timeout_ms",
            "checkpoint_interval": "checkpoint_interval_ms", "ingest_linger": "ingest_linger_ms"}


class SettingsError(ValueError):
    """The configuration is unusable; ``problems`` holds one line per bad variable or flag."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (``partitions`` -> ``CITYORDER_PARTITIONS``)."""
    return _ENV_NAMES.get(field, ENV_PREFIX + field.upper())


#: Flags whose spelling is not the field's (the console's own options, ``--ledger``).
_FLAG_NAMES = {"ledger_url": "--ledger", "console_tiles": "--tiles",
               "console_tiles_attribution": "--tiles-attribution",
               "console_trusted_proxies": "--trusted-proxies"}


def flag_name(field: str) -> str:
    """The command-line flag spelling of ``field``, used when an override was the bad value."""
    return _FLAG_NAMES.get(field) or "--" + field.removesuffix("_ms").replace("_", "-")


def _name(info: ValidationInfo, field: str) -> str:
    """Name ``field`` as the user set it: the flag if it came from an override, else the variable."""
    sources = (info.context or {}).get("sources", {})
    return flag_name(field) if sources.get(field) == "flag" else env_name(field)


def _items(value: object) -> list[object]:
    """A comma-separated string (as a variable holds it) or a sequence (as a flag gives it)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        items = [v.strip() if isinstance(v, str) else v for v in value]
        return [v for v in items if v != ""]
    return [value]


def _whole(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{value!r} is not a whole number; use one from {low} to {high}")
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise ValueError(f"{value!r} is not a whole number; use one from {low} to {high}") from None
    if not low <= number <= high:
        raise ValueError(f"{number} is out of range; use a whole number from {low} to {high}")
    return number


def _choice(value: object, choices: tuple[str, ...], *, upper: bool) -> str:
    text = str(value).strip()
    text = text.upper() if upper else text.lower()
    if text not in choices:
        raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
    return text


def _normalise_broker(text: str) -> str:
    """``host[:port]`` or ``kafka://host[:port]`` -> ``kafka://host:port``."""
    raw = text if "://" in text else f"kafka://{text}"
    parts = urlsplit(raw)
    if parts.scheme != "kafka":
        raise ValueError(f"{text!r} has scheme {parts.scheme!r}; write kafka://HOST:PORT or HOST:PORT")
    try:
        port = parts.port or _DEFAULT_KAFKA_PORT
    except ValueError:
        raise ValueError(f"{text!r} has an invalid port; write kafka://HOST:PORT with PORT 1-65535") from None
    host = parts.hostname
    if not host or parts.path not in ("", "/") or parts.query or parts.username:
        raise ValueError(f"{text!r} is not a broker address; write kafka://HOST:PORT or HOST:PORT")
    host = f"[{host}]" if ":" in host else host
    return f"kafka://{host}:{port}"


def _existing_file(value: object) -> Path:
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise ValueError(f"{str(value)!r} is not a readable file; give the path of a PEM file")
    return path


class Settings(BaseModel):
    """Everything the Kafka runtime is configured with; build it with :meth:`from_env`.

    ``Settings.from_env()`` reads ``os.environ``; ``Settings.from_env(env, partitions=8)`` reads
    ``env`` and lets keyword overrides (CLI flags) win. The object is frozen: a worker's
    configuration never changes while it runs, so any component may hold a reference.

    >>> s = Settings.from_env({"CITYORDER_TOPIC_PREFIX": "t1."}, partitions=2)
    >>> s.topic("city.alerts"), s.partitions, s.bootstrap_servers
    ('t1.city.alerts', 2, ['127.0.0.1:9092'])
    """

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    #: Bootstrap brokers, ``kafka://HOST:PORT`` each (CITYORDER_BROKERS, comma-separated).
    brokers: tuple[str, ...] = ("kafka://127.0.0.1:9092",)
    #: Put in front of every topic name and the consumer group; must end with ``.``, ``-`` or ``_``.
    topic_prefix: str = ""
    #: Partitions of every topic cityorder creates; also the unit of parallelism.
    partitions: int = DEFAULT_PARTITIONS
    #: Replicas of every topic cityorder creates (1 for a single broker; 3 is usual in production).
    replication_factor: int = 1
    #: Where RocksDB table files live (one sub-directory per app and table).
    state_dir: Path = Path("state")
    #: Rule packs (directories of *.yaml or single files), loaded together.
    rules: tuple[Path, ...] = (DEFAULT_RULES,)
    #: The city map (GeoJSON FeatureCollection, docs/rules.md section 8). No default: the
    #: worker, console, adapters and webhooks refuse to start without one (``need_city`` in
    #: ``streams.options.settings_from``) rather than run a real city on the demo map.
    city: Path | None = None
    #: ``wall``: arrivals and ticks drive the clock (live); ``event``: input times do.
    clock: Literal["wall", "event"] = "wall"
    #: How often ticks are written (CITYORDER_TICK_INTERVAL, e.g. ``1s``), in milliseconds.
    tick_interval_ms: int = 1_000
    #: Consumer-group session timeout (CITYORDER_SESSION_TIMEOUT, e.g. ``10s``). It also bounds the
    #: first join: a broker holds a join for up to half of it. Kafka refuses less than its
    #: ``group.min.session.timeout.ms`` (6 s by default); ``cityorder dev`` uses 3 s on Tansu.
    session_timeout_ms: int = 10_000
    #: How often each grid partition's state is checkpointed (CITYORDER_CHECKPOINT_INTERVAL, e.g.
    #: ``30s``, as Kafka Streams commits): the most work a crash makes the next owner redo,
    #: traded against writing a busy subject's state at every checkpoint (a camera track seen
    #: every 2 s is written at most once per interval) and against the work of serialising it
    #: (~0.7 s of CPU for a busy partition at 5,000 events/s, in the background, spread over
    #: ~2 s: ``streams.app.REST_S``).
    checkpoint_interval_ms: int = 30_000
    #: The least time between two of ingest's writes while it keeps up (CITYORDER_INGEST_LINGER,
    #: e.g. ``200ms``; 0, the default, writes what each fetch brings at once). Fewer, larger
    #: record batches for a broker whose cost grows with their number (the embedded one: see
    #: bench/README.md, Soak), for up to this much more alert latency. A fetch that brings a
    #: full batch is written at once, so a backlog drains at full speed.
    ingest_linger_ms: int = 0
    #: How cityorder's producers compress record batches: ``zstd`` (the default), ``lz4``,
    #: ``gzip``, ``snappy`` or ``none``; consumers read any of them whatever this says. On the
    #: internal topic's records zstd is ~9x smaller at ~480 MB/s, where aiokafka's lz4 (level
    #: 9, not settable) is ~6.6x at ~100 MB/s: lz4 took 5% of a draining worker's time.
    compression: Compression = "zstd"
    #: Port of the worker's web server (/metrics, readiness).
    web_port: int = 6066
    #: The case ledger's database (CITYORDER_LEDGER_URL): ``postgresql://user:pass@host/db``,
    #: ``sqlite:///path`` or a file path; unset, ``<state_dir>/ledger.sqlite``.
    ledger_url: str | None = None
    #: The console map's tile layer (CITYORDER_CONSOLE_TILES), e.g. the centre's own tile
    #: server ``http://tiles.city.local/{z}/{x}/{y}.png`` (Web Mercator, 256 px tiles);
    #: unset, the map is the city map's grids and zones alone.
    console_tiles: str | None = None
    #: The attribution the tiles' licence asks for, shown under the map.
    console_tiles_attribution: str | None = None
    #: The console's reverse proxies (CITYORDER_CONSOLE_TRUSTED_PROXIES: addresses or networks,
    #: comma-separated), whose ``X-Forwarded-For`` names who a request came from
    #: (console.proxies). Unset, the connection's own address is the client's.
    console_trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = ()
    #: Table store: ``rocksdb`` (rocksdict, survives restarts) or ``memory`` (tests).
    store: Literal["rocksdb", "memory"] = "rocksdb"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    #: None means PLAIN (Kafka's default) under SASL_*; must be unset for other protocols.
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, /, **overrides: Any) -> Settings:
        """Read ``CITYORDER_*`` from ``environ`` (default ``os.environ``), then apply ``overrides``.

        An empty variable counts as unset. An override of ``None`` is ignored, so a CLI can pass
        every flag through and only those the user gave take effect. Unknown override keywords
        raise TypeError (a programming error); bad values raise :class:`SettingsError` naming
        the variable or flag.
        """
        env = os.environ if environ is None else environ
        data: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for field in cls.model_fields:
            value = env.get(env_name(field))
            if value is not None and value.strip() != "":
                data[field], sources[field] = value, "env"
        for key, value in overrides.items():
            field = _ALIASES.get(key, key)
            if field not in cls.model_fields:
                raise TypeError(f"Settings has no field {key!r}; known: {', '.join(cls.model_fields)}")
            if value is not None:
                data[field], sources[field] = value, "flag"
        try:
            return cls.model_validate(data, context={"sources": sources})
        except ValidationError as e:
            raise SettingsError([line for err in e.errors() for line in _problem(err, sources).splitlines()]
                                ) from None

    def to_env(self) -> dict[str, str]:
        """The ``CITYORDER_*`` variables that make :meth:`from_env` give these settings back, for
        a child process (a worker started by a test, the benchmark or a supervisor)."""
        env = {}
        for field in type(self).model_fields:
            value = getattr(self, field)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            elif isinstance(value, tuple):
                value = ",".join(str(v) for v in value)
            elif field.endswith("_ms"):
                value = f"{value}ms"
            env[env_name(field)] = str(value)
        return env

    # -- field validation: each names the bad value and what is valid ------------------------

    @field_validator("brokers", mode="before")
    @classmethod
    def _check_brokers(cls, value: object) -> tuple[str, ...]:
        items = _items(value)
        if not items:
            raise ValueError("no broker given; write kafka://HOST:PORT[,kafka://HOST:PORT...]")
        return tuple(_normalise_broker(str(item)) for item in items)

    @field_validator("console_trusted_proxies", mode="before")
    @classmethod
    def _check_proxies(cls, value: object) -> tuple[IPv4Network | IPv6Network, ...]:
        nets = []
        for item in _items(value):
            try:
                nets.append(ip_network(str(item), strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network; write them like "
                                 "10.0.0.5,10.8.0.0/16") from None
        return tuple(nets)

    @field_validator("console_tiles")
    @classmethod
    def _check_tiles(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            value.format(z=0, x=0, y=0)
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"{value!r}: only {{z}}, {{x}} and {{y}} may be in braces") from None
        missing = [k for k in ("{z}", "{x}", "{y}") if k not in value]
        if missing:
            raise ValueError(f"{value!r} lacks {', '.join(missing)}: write it like "
                             "http://tiles.example/{z}/{x}/{y}.png")
        return value

    @field_validator("topic_prefix", mode="before")
    @classmethod
    def _check_prefix(cls, value: object) -> str:
        text = str(value).strip()
        if not _TOPIC_CHARS.match(text):
            raise ValueError(f"{text!r} may only hold letters, digits, '.', '_' and '-' (Kafka topic names)")
        if len(text) > 200:
            raise ValueError("is longer than 200 characters; Kafka topic names end at 249")
        if text and text[-1] not in "._-":
            raise ValueError(f"{text!r} must end with '.', '-' or '_' so it stays apart from the topic "
                             f"name (e.g. {text + '.'!r})")
        return text

    @field_validator("partitions", mode="before")
    @classmethod
    def _check_partitions(cls, value: object) -> int:
        return _whole(value, 1, MAX_PARTITIONS)

    @field_validator("replication_factor", mode="before")
    @classmethod
    def _check_replication(cls, value: object) -> int:
        return _whole(value, 1, 16)

    @field_validator("web_port", mode="before")
    @classmethod
    def _check_port(cls, value: object) -> int:
        return _whole(value, 1, 65535)

    @field_validator("tick_interval_ms", "session_timeout_ms", "checkpoint_interval_ms",
                     "ingest_linger_ms", mode="before")
    @classmethod
    def _check_duration(cls, value: object, info: ValidationInfo) -> int:
        low, high, example = _DURATION_RANGES[str(info.field_name)]
        ms = value if isinstance(value, int) and not isinstance(value, bool) else parse_duration(value)
        if not low <= ms <= high:
            raise ValueError(f"{format_duration(ms)} is out of range; use {format_duration(low)} "
                             f"to {format_duration(high)}, e.g. {example}")
        return ms

    @field_validator("rules", mode="before")
    @classmethod
    def _check_rules(cls, value: object) -> tuple[Path, ...]:
        items = _items(value)
        if not items:
            raise ValueError("no rule pack given; write one or more paths separated by commas")
        return tuple(Path(str(item)).expanduser() for item in items)

    @field_validator("state_dir", "city", mode="before")
    @classmethod
    def _check_path(cls, value: object) -> Path | None:
        return None if value is None else Path(str(value).strip()).expanduser()

    @field_validator("clock", "store", "compression", mode="before")
    @classmethod
    def _check_lower_choice(cls, value: object, info: ValidationInfo) -> str:
        choices = {"clock": ("wall", "event"), "store": ("rocksdb", "memory"),
                   "compression": COMPRESSIONS}[str(info.field_name)]
        return _choice(value, choices, upper=False)

    @field_validator("security_protocol", mode="before")
    @classmethod
    def _check_protocol(cls, value: object) -> str:
        return _choice(value, SECURITY_PROTOCOLS, upper=True)

    @field_validator("sasl_mechanism", mode="before")
    @classmethod
    def _check_mechanism(cls, value: object) -> str | None:
        return None if value is None else _choice(value, SASL_MECHANISMS, upper=True)

    @field_validator("ssl_cafile", "ssl_certfile", "ssl_keyfile", mode="before")
    @classmethod
    def _check_file(cls, value: object) -> Path | None:
        return None if value is None else _existing_file(value)

    @model_validator(mode="after")
    def _check_security(self, info: ValidationInfo) -> Settings:
        """Refuse settings that would be silently ignored: credentials without SASL, certificates
        without TLS. A forgotten CITYORDER_SECURITY_PROTOCOL would otherwise connect in the clear."""
        n = lambda field: _name(info, field)  # noqa: E731
        protocol = self.security_protocol
        problems = []
        sasl = protocol.startswith("SASL_")
        tls = protocol in ("SSL", "SASL_SSL")
        for field in ("sasl_mechanism", "sasl_username", "sasl_password"):
            if not sasl and getattr(self, field) is not None:
                problems.append(f"{n(field)} is set but {n('security_protocol')} is {protocol}: set it to "
                                f"SASL_PLAINTEXT or SASL_SSL, or unset {n(field)}")
        if sasl:
            problems += [f"{n(field)} is required when {n('security_protocol')} is {protocol}"
                         for field in ("sasl_username", "sasl_password") if getattr(self, field) is None]
        for field in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if not tls and getattr(self, field) is not None:
                problems.append(f"{n(field)} is set but {n('security_protocol')} is {protocol}: set it to "
                                f"SSL or SASL_SSL, or unset {n(field)}")
        if self.ssl_keyfile is not None and self.ssl_certfile is None:
            problems.append(f"{n('ssl_keyfile')} needs {n('ssl_certfile')} (the client certificate "
                            f"the key belongs to)")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # -- helpers ------------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        """The prefixed name of a contract topic or of ``cityorder.internal``.

        Only known names are accepted, so a typo fails here instead of creating a stray topic.
        """
        if name not in TOPICS:
            raise KeyError(f"{name!r} is not a cityorder topic; known: {', '.join(TOPICS)}")
        return self.topic_prefix + name

    @property
    def app_id(self) -> str:
        """Faust app id = consumer group id; prefixed so that two deployments (or two tests) on
        one cluster never share a group, changelog topics or state directory."""
        return self.topic_prefix + "cityorder"

    @property
    def ledger_location(self) -> str:
        """Where the ledger's database is: :attr:`ledger_url`, else a SQLite file in the state
        directory."""
        return self.ledger_url or str(self.state_dir / "ledger.sqlite")

    @property
    def ledger_group(self) -> str:
        """The ledger's consumer group on ``city.alerts``: its own, so it reads every message
        whatever other subscribers do."""
        return self.app_id + "-ledger"

    @property
    def ingest_group(self) -> str:
        """Ingest's consumer group (and client id): its own, beside Faust's :attr:`app_id`, so
        more workers share the source partitions (``streams.ingest_loop``)."""
        return self.app_id + "-ingest"

    @property
    def max_record_bytes(self) -> int:
        """The largest record the input topics take (:data:`MAX_RECORD_BYTES`): the producer
        limit for anything that writes them, so a record the contract's 1 MiB limit would
        refuse still reaches a worker to be dead-lettered rather than failing at its sender."""
        return MAX_RECORD_BYTES

    @property
    def bootstrap_servers(self) -> list[str]:
        """``HOST:PORT`` entries, as aiokafka wants them."""
        return [b.removeprefix("kafka://") for b in self.brokers]

    @property
    def faust_store(self) -> str:
        """The Faust ``store`` URL for the chosen table store (rocksdict is used when installed)."""
        return {"rocksdb": "rocksdb://", "memory": "memory://"}[self.store]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client TLS context for SSL/SASL_SSL (system CAs unless CITYORDER_SSL_CAFILE), else None."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        from aiokafka.helpers import create_ssl_context

        try:
            return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile,
                                      keyfile=self.ssl_keyfile)
        except (ssl.SSLError, OSError) as e:
            files = ", ".join(f"{env_name(f)}={getattr(self, f)}" for f in
                              ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(self, f))
            raise SettingsError([f"cannot build a TLS context from {files or 'the system CAs'}: {e}"]) from e

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.bootstrap_servers,
                                  "security_protocol": self.security_protocol}
        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None  # guaranteed by _check_security
            kwargs.update(sasl_mechanism=self.sasl_mechanism or "PLAIN",
                          sasl_plain_username=self.sasl_username,
                          sasl_plain_password=self.sasl_password.get_secret_value())
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        return kwargs

    @property
    def compression_type(self) -> str | None:
        """:attr:`compression` as aiokafka and Faust spell it (None: uncompressed)."""
        return None if self.compression == "none" else self.compression

    def producer_kwargs(self) -> dict[str, Any]:
        """:meth:`aiokafka_kwargs` and the compression, for every producer cityorder starts."""
        return {**self.aiokafka_kwargs(), "compression_type": self.compression_type}

    def faust_credentials(self) -> CredentialsT | None:
        """The same security settings as Faust's ``broker_credentials`` (None for PLAINTEXT)."""
        from faust.auth import SASLCredentials, SSLCredentials

        if self.security_protocol.startswith("SASL_"):
            assert self.sasl_password is not None
            return SASLCredentials(username=self.sasl_username,
                                   password=self.sasl_password.get_secret_value(),
                                   mechanism=self.sasl_mechanism or "PLAIN", ssl_context=self.ssl_context())
        if self.security_protocol == "SSL":
            return SSLCredentials(self.ssl_context())
        return None


def _problem(err: Any, sources: Mapping[str, str]) -> str:
    """One line for one pydantic error, led by the variable or flag that carried the value."""
    ctx_error = (err.get("ctx") or {}).get("error")
    message = str(ctx_error) if ctx_error is not None else err["msg"]
    if not err["loc"]:  # a cross-field check: its message already names the variables
        return message
    field = str(err["loc"][0])
    name = flag_name(field) if sources.get(field) == "flag" else env_name(field)
    return f"{name}: {message}"
