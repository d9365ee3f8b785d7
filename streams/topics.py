"""Create cityorder's topics before anything else touches them, with the partition counts it needs.

Why not let the broker or Faust do it: a broker with auto-creation (Tansu always; many Kafka
clusters) creates a topic the first time any client asks for its metadata, with the *broker's*
default partition count (4 on Tansu), and Faust then either refuses to start or, worse, runs
with keys spread over the wrong number of partitions. Per-grid state depends on a grid always
landing on the same partition, so a topic that exists with another count is a start-up error
here, never something to "fix" by adding partitions (that would move keys).

The existing topics are read with an all-topics Metadata request: asking for named topics
(aiokafka's ``describe_topics(names)``) sets ``allow_auto_topic_creation`` and would create
them on the spot with the broker's count.

Record size. The input topics (and ``cityorder.internal``) are created with
``max.message.bytes`` = :data:`~streams.settings.MAX_RECORD_BYTES` (4 MiB), above the
contract's 1 MiB per message: on a Kafka with its default (1,048,588 bytes a record batch, no
room above the contract's limit) an oversized record would be refused to its producer and never
reach a worker to be dead-lettered as ``too_large``. A topic
that already exists keeps its configuration (changing it is the operator's call); a smaller
limit found on one is logged as a warning with the command that raises it. Tansu (the
embedded broker, 0.6) stores the setting and reports it in DescribeConfigs but enforces no
record size limit at all, with or without it.

Also here: :func:`true_end_offsets`, because Tansu's ``end_offsets`` (ListOffsets latest) is the
base offset of the partition's last record batch + 1, short of the real end whenever that batch
holds several records. Anything that reads "up to the end" (table recovery, a caught-up check)
must use it, or the high watermark a consumer's own fetches report (``consumer.highwater(tp)``).
And :func:`log_start_offsets`, because Tansu's ListOffsets (earliest) can name a later offset
than the first; anything that reads "from the beginning" seeks there instead. And
:func:`commit_offsets`, which every consumer of cityorder commits through: aiokafka's commit,
finished even when its caller is cancelled; and :func:`start_client`, with which a command
that cannot reach its brokers says so in one line.

Usage::

    await ensure_topics(settings, default_topics(settings))
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError, for_code

from streams.settings import INPUT_TOPICS, INTERNAL_TOPIC, MAX_RECORD_BYTES, TOPICS, Settings, env_name

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = "max.message.bytes"
_TOPIC_EXISTS = 36
_UNKNOWN_TOPIC = 3
_METADATA_WAIT_S = 10.0
_START_RETRY_S = 2.0
TP = TypeVar("TP", bound=tuple[str, int])


class TopicsError(RuntimeError):
    """Topics could not be checked or created (unreachable broker, refused creation)."""


@dataclass(frozen=True)
class Mismatch:
    topic: str
    found: int
    wanted: int


class TopicMismatch(TopicsError):
    """One or more topics exist with another partition count than cityorder is configured for."""

    def __init__(self, mismatches: list[Mismatch], settings: Settings) -> None:
        self.mismatches = mismatches
        lines = []
        for m in mismatches:
            fix = f"delete and recreate {m.topic!r} with {m.wanted} partitions (its data is lost)"
            if m.wanted == settings.partitions:
                fix = (f"set {env_name('partitions')}={m.found} (or --partitions {m.found}) to use it as "
                       f"it is, or {fix}")
            lines.append(f"topic {m.topic!r} has {m.found} partitions but cityorder wants {m.wanted}: {fix}")
        lines.append("Adding partitions to a topic is not a fix: it moves keys, and with them a grid's "
                     "state, to other partitions.")
        super().__init__("\n".join(lines))


def default_topics(settings: Settings) -> dict[str, int]:
    """Every contract topic and ``cityorder.internal``, prefixed, with ``settings.partitions`` each."""
    return {settings.topic(name): settings.partitions for name in TOPICS}


def default_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Configuration cityorder gives the topics it creates, by full topic name: the input
    topics and the internal one take records up to :data:`MAX_RECORD_BYTES`. The output topics
    keep the broker's default: an alert or a dead letter (payload cut to 64 KiB) is far below it."""
    limit = {MAX_MESSAGE_BYTES: str(MAX_RECORD_BYTES)}
    return {settings.topic(name): dict(limit) for name in (*INPUT_TOPICS, INTERNAL_TOPIC)}


async def ensure_topics(settings: Settings, names: Mapping[str, int], *,
                        configs: Mapping[str, Mapping[str, str]] | None = None,
                        connect_timeout: float = 30.0) -> list[str]:
    """Create the missing topics of ``names`` (full topic name -> partitions) and check the rest.

    ``configs`` gives per-topic configuration for topics this call creates, over
    :func:`default_configs` (existing topics are left alone, but one whose record size limit
    is below :data:`MAX_RECORD_BYTES` is logged). Returns the names this call created. Raises
    :class:`TopicMismatch` listing every topic that exists with another partition count, and
    :class:`TopicsError` if the brokers cannot be reached within ``connect_timeout`` seconds
    (retrying with backoff meanwhile, so a worker started together with its broker does not
    fail on the first refused connection) or refuse to create a topic. Safe to run from several
    workers at once: a topic another worker created first counts as found.
    """
    admin = await _connect(settings, connect_timeout)
    try:
        found = await _partition_counts(admin)
        missing = [name for name in names if name not in found]
        defaults = default_configs(settings)
        wanted_configs = {n: {**defaults.get(n, {}), **(configs or {}).get(n, {})} for n in names}
        created = []
        if missing:
            created = await _create(admin, settings, {n: names[n] for n in missing}, wanted_configs)
            found.update(await _wait_visible(admin, missing))
        existing = [n for n in names if n not in created and MAX_MESSAGE_BYTES in wanted_configs[n]]
        for line in await record_limits_below(admin, {n: int(wanted_configs[n][MAX_MESSAGE_BYTES])
                                                      for n in existing}):
            log.warning("%s", line)
    except KafkaError as e:
        raise TopicsError(f"cannot check or create topics on {', '.join(settings.brokers)}: {e!r}") from e
    finally:
        await admin.close()
    mismatches = [Mismatch(name, found[name], wanted) for name, wanted in names.items()
                  if found[name] != wanted]
    if mismatches:
        raise TopicMismatch(mismatches, settings)
    return created


async def record_limits_below(admin: AIOKafkaAdminClient, wanted: Mapping[str, int]) -> list[str]:
    """One line per topic of ``wanted`` (name -> bytes) whose ``max.message.bytes`` is smaller,
    saying what it costs and how to raise it. A broker that does not report the setting (Tansu
    for a topic created without it: it has no limit) or refuses to describe configurations
    (an ACL) gives no line; the latter is logged at info."""
    if not wanted:
        return []
    try:
        configs = await topic_configs(admin, list(wanted))
    except KafkaError as e:
        log.info("could not read the record size limit of %s: %r", ", ".join(wanted), e)
        return []
    lines = []
    for name, limit in wanted.items():
        value = configs.get(name, {}).get(MAX_MESSAGE_BYTES)
        if value is not None and value.isdigit() and int(value) < limit:
            lines.append(
                f"topic {name!r} takes records of at most {int(value):,} bytes ({MAX_MESSAGE_BYTES}): "
                f"the broker refuses a larger input record to its producer, so it never reaches "
                f"the dead-letter topic as too_large. Raise it with: kafka-configs.sh --alter "
                f"--entity-type topics --entity-name {name} --add-config "
                f"{MAX_MESSAGE_BYTES}={limit}")
    return lines


async def topic_configs(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's configuration as the broker reports it (``{}`` for a topic it reports
    nothing of, or an error for). Raises KafkaError."""
    # every entry, not named ones: Tansu 0.6 drops the connection when a DescribeConfigs
    # request names the keys it wants
    responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names])
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for error, _, _, name, entries, *_ in response.resources:
            found[name] = {entry[0]: entry[1] for entry in entries} if not error else {}
    return found


async def read_topic_configs(settings: Settings, names: list[str], *,
                             timeout: float = 10.0) -> dict[str, dict[str, str]]:
    """:func:`topic_configs` on a connection of its own, for a check a service makes at start:
    ``{}`` when the broker will not say (an ACL; logged at info), never an error."""
    try:
        admin = await _connect(settings, timeout)
    except TopicsError as e:
        log.info("could not read the configuration of %s: %s", ", ".join(names), e)
        return {}
    try:
        return await topic_configs(admin, names)
    except KafkaError as e:
        log.info("could not read the configuration of %s: %r", ", ".join(names), e)
        return {}
    finally:
        await admin.close()


async def _connect(settings: Settings, timeout: float) -> AIOKafkaAdminClient:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        admin = AIOKafkaAdminClient(**settings.aiokafka_kwargs(), client_id="cityorder-admin",
                                    request_timeout_ms=int(min(timeout, 30.0) * 1000))
        try:
            await admin.start()
            return admin
        except KafkaConnectionError as e:
            await admin.close()
            if time.monotonic() + delay > deadline:
                raise TopicsError(f"cannot reach the brokers {', '.join(settings.brokers)} within "
                                  f"{timeout:g} s: {e}") from e
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _partition_counts(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Partition count of every existing topic (all-topics request: creates nothing)."""
    topics: list[dict[str, Any]] = await admin.describe_topics()
    return {t["topic"]: len(t["partitions"]) for t in topics
            if t["error_code"] != _UNKNOWN_TOPIC and t["partitions"]}


async def _create(admin: AIOKafkaAdminClient, settings: Settings, wanted: Mapping[str, int],
                  configs: Mapping[str, Mapping[str, str]]) -> list[str]:
    """Create ``wanted``; return the names this call created (not those another worker won)."""
    response = await admin.create_topics([
        NewTopic(name, partitions, settings.replication_factor, topic_configs=dict(configs.get(name, {})))
        for name, partitions in wanted.items()])
    created = []
    for topic, code, message, *_ in response.topic_errors:
        if code == 0:
            created.append(topic)
        elif code != _TOPIC_EXISTS:  # exists: another worker won the race; its count is checked
            raise TopicsError(f"cannot create topic {topic!r} with {wanted[topic]} partitions: "
                              f"{for_code(code).__name__}: {message}")
    return [name for name in wanted if name in created]


async def _wait_visible(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int]:
    """Read back the created topics; a multi-broker cluster may take a moment to show them."""
    deadline = time.monotonic() + _METADATA_WAIT_S
    while True:
        counts = await _partition_counts(admin)
        if all(n in counts for n in names) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    absent = [n for n in names if n not in counts]
    if absent:
        raise TopicsError(f"created topics {absent} do not appear in the cluster's metadata after "
                          f"{_METADATA_WAIT_S:g} s")
    return {n: counts[n] for n in names}


async def true_end_offsets(settings: Settings, partitions: Iterable[TP], *,
                           timeout: float = 10.0) -> dict[TP, int]:
    """The offset after the last record of each partition, exact on Tansu too.

    ``end_offsets`` gives a lower bound (exact on Kafka); one fetch from there returns the real
    high watermark, which every fetch response carries. Costs one short-lived consumer and one
    fetch per non-empty partition. ``partitions`` may be aiokafka TopicPartitions or Faust TPs
    (any ``(topic, partition)`` named tuple); the result is keyed by the objects given.
    """
    given = list(partitions)
    if not given:   # as in log_start_offsets
        return {}
    by_tp = {TopicPartition(tp[0], tp[1]): tp for tp in given}
    probe = AIOKafkaConsumer(**settings.aiokafka_kwargs(), client_id="cityorder-end-offsets",
                             enable_auto_commit=False, auto_offset_reset="latest", fetch_max_wait_ms=50)
    await probe.start()
    try:
        listed: dict[TopicPartition, int] = await probe.end_offsets(list(by_tp))
        pending = {tp for tp, end in listed.items() if end > 0}  # 0: empty (a batch makes it >= 1)
        probe.assign(list(pending))
        for tp in pending:
            probe.seek(tp, listed[tp])
        ends = dict(listed)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TopicsError(f"no fetch answer for {sorted(pending)} within {timeout:g} s")
            await probe.getmany(*pending, timeout_ms=200, max_records=1)
            for tp in list(pending):
                highwater = probe.highwater(tp)
                if highwater is not None:
                    ends[tp] = max(highwater, listed[tp])
                    pending.discard(tp)
    finally:
        await probe.stop()
    return {by_tp[tp]: end for tp, end in ends.items()}


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """The topic's partitions as the cluster's metadata has them now (none: no such topic)."""
    await consumer.topics()                     # fetches the cluster's metadata
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def log_start_offsets(settings: Settings, partitions: Iterable[TP], *,
                            timeout: float = 10.0) -> dict[TP, int]:
    """The offset of the first record each partition holds (0 until retention deletes some;
    the end for a partition with none left). ``partitions`` as for :func:`true_end_offsets`.

    Not ListOffsets (earliest), which ``beginning_offsets``, ``seek_to_beginning`` and the
    ``earliest`` offset reset use: Tansu answers it with the record batch *stored* first, by
    time, not the lowest offset, and two producers writing a partition at once store them out
    of order. So a worker read an internal partition from offset 2, and then took records 0
    and 1 for deleted by retention and went on without them (a random kill run lost their
    transitions). A fetch from offset 0 gives the first record there is: on Kafka, an offset
    before the log start is out of range and the probe is reset to the earliest, which Kafka
    reports right."""
    given = list(partitions)
    if not given:   # and no probe: aiokafka's stop() right after start() raises CancelledError
        return {}
    by_tp = {TopicPartition(tp[0], tp[1]): tp for tp in given}
    probe = AIOKafkaConsumer(**settings.aiokafka_kwargs(), client_id="cityorder-log-start",
                             enable_auto_commit=False, auto_offset_reset="earliest", fetch_max_wait_ms=50)
    await probe.start()
    starts: dict[TopicPartition, int] = {}
    try:
        probe.assign(list(by_tp))
        for tp in by_tp:
            probe.seek(tp, 0)
        pending = set(by_tp)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TopicsError(f"no fetch answer for {sorted(pending)} within {timeout:g} s")
            fetched = await probe.getmany(*pending, timeout_ms=200, max_records=1)
            for tp, records in fetched.items():
                if records and tp in pending:
                    starts[tp] = records[0].offset
                    pending.discard(tp)
            for tp in list(pending):   # read to its end without a record: none left
                highwater = probe.highwater(tp)
                if highwater is None:
                    continue
                position = await probe.position(tp)
                if position >= highwater:
                    starts[tp] = position
                    pending.discard(tp)
    finally:
        await probe.stop()
    return {by_tp[tp]: start for tp, start in starts.items()}


def unreachable(settings: Settings, error: BaseException) -> str:
    """What a command says when its brokers do not answer (the whole of its error)."""
    return (f"cannot reach the brokers {', '.join(settings.brokers)}: "
            f"{str(error) or type(error).__name__} (--brokers, or CITYORDER_BROKERS)")


@contextmanager
def quiet_bootstrap() -> Iterator[None]:
    """Without aiokafka's log line for each broker it fails to reach while a client starts: a
    command that cannot reach them says so in its own one line (:func:`unreachable`)."""
    logger = logging.getLogger("aiokafka")   # aiokafka.client logs as "aiokafka"
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def start_client(client: AIOKafkaConsumer | AIOKafkaProducer, settings: Settings) -> None:
    """Start a command's Kafka client, or raise :class:`TopicsError` naming the brokers (the
    command line prints it as its error) with the client closed: a command that cannot reach
    its broker says so in one line, not with a traceback and an "Unclosed" warning."""
    try:
        with quiet_bootstrap():
            await client.start()
    except KafkaConnectionError as e:
        await client.stop()
        raise TopicsError(unreachable(settings, e)) from None


async def start_when_reachable(start: Callable[[], Awaitable[Any]], what: str) -> None:
    """``await start()`` (a client's ``start``) until the brokers answer, logging each refusal:
    a service started together with its broker waits for it instead of exiting."""
    while True:
        try:
            await start()
            return
        except KafkaError as e:
            log.warning("cannot start %s (%s); retrying in %.0f s", what, e, _START_RETRY_S)
            await asyncio.sleep(_START_RETRY_S)


#: How long a cancelled caller of :func:`commit_offsets` waits for its commit to finish.
COMMIT_WAIT_S = 5.0


async def commit_offsets(consumer: AIOKafkaConsumer,
                         offsets: Mapping[TopicPartition, int] | None = None) -> None:
    """``consumer.commit(offsets)`` (all consumed, if None), carried to its end even when the
    caller is cancelled meanwhile.

    aiokafka sends a commit under ``asyncio.shield``, so a caller cancelled during it (Ctrl-C,
    a service stopping) leaves the request running; the consumer, stopped next, then closes
    the connection under it, and asyncio prints "Task exception was never retrieved" with a
    traceback as the process exits. A cancelled caller here waits for the commit first (one
    round trip, at most :data:`COMMIT_WAIT_S`), then is cancelled: what was committed stays
    committed, and a commit that fails at that point only means those records are read again.
    Errors of a commit not cancelled are raised as ``consumer.commit`` raises them."""
    pending = asyncio.ensure_future(consumer.commit(dict(offsets)) if offsets is not None
                                    else consumer.commit())
    try:
        await asyncio.shield(pending)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(pending, COMMIT_WAIT_S)
        except (KafkaError, TimeoutError) as e:
            log.warning("a commit cut short by shutdown failed (%s): those records will be read "
                        "again", e or type(e).__name__)
        raise
