"""``cityorder webhooks run`` as a real process on the embedded broker, delivering to a real HTTP
server (tests/webhook_receiver.py) that fails, throttles, times out, refuses and answers slowly,
and goes away. Transitions are produced at full speed while it runs, with garbage among them;
the process is killed with SIGKILL halfway. Every wanted transition arrives, signed, in version
order per alert; what a receiver never takes is a dead letter with its reason; a receiver that
was down gets everything once it is back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import xmlschema
from aiokafka import AIOKafkaProducer

from models.outputs import Alert, WebhookDeadLetter
from streams.dev import free_port
from streams.settings import Settings
from streams.topics import default_topics, ensure_topics
from tests.e2e.workers import Cli, read_topic
from tests.promtool import check_metrics
from tests.scrape import series, undocumented
from tests.webhook_receiver import Receiver, encoded, keys_of, produce_alerts, transitions

pytestmark = pytest.mark.timeout(300)
SECRET = "s3cret-for-the-webhook-tests-0123456789"
CAP_XSD = Path(__file__).resolve().parents[1] / "models" / "schemas" / "cap-1.2.xsd"
#: Long enough for the committer (every second) to commit what was delivered.
COMMIT_WAIT_S = 1.5
GARBAGE = [b"not json at all", orjson.dumps({"alert_id": "a-JY-0001-00000000000000000000"}), b"[1, 2]"]


class Webhooks(Cli):
    def __init__(self, settings: Settings, receivers: Path, log: Path) -> None:
        self.port = free_port(0)
        super().__init__(settings, log, "webhooks", "run", str(receivers), "--web-port", str(self.port),
                         env={"HOOK_SECRET": SECRET})


def produce(settings: Settings, records: list[tuple[bytes | None, bytes]]) -> None:
    asyncio.run(produce_alerts(settings, records))


def topics(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings, default_topics(settings)))


def receivers_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "receivers.yml"
    path.write_text(text, encoding="utf-8")
    return path


def dead_letters(settings: Settings, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The webhook dead letters once ``done`` holds: a count of what the test asserts, never a
    total, which a kill's repeats can reach before the last give-up (its retries take seconds)."""
    got = read_topic(settings, "city.webhooks.deadletter", done=done, timeout=90, quiet_s=1)
    for d in got:
        WebhookDeadLetter.model_validate(d)
    return got


def reasons_of(dead: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    """(receiver, reason code, the alert id's first 30 characters) of each dead letter, counted."""
    return Counter((d["receiver"], d["reason_code"], (d["alert_id"] or "")[:30]) for d in dead)


def wait_until(hooks: Webhooks, ok: Any, timeout: float = 30) -> str:
    """The process's metrics once ``ok(metrics)`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        metrics = hooks.metrics()
        if ok(metrics):
            return metrics
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s:\n{metrics}\n{hooks.tail()}")
        time.sleep(0.2)


def in_version_order(deliveries: list[Any]) -> list[str]:
    """Alerts whose versions were first delivered out of order."""
    seen: dict[str, list[int]] = defaultdict(list)
    for d in deliveries:
        alert_id, version = d.key.rsplit(":", 1)
        if int(version) not in seen[alert_id]:
            seen[alert_id].append(int(version))
    return [a for a, vs in seen.items() if vs != sorted(vs)]


def test_hostile_receiver_and_a_kill(settings: Settings, tmp_path: Path) -> None:
    """Two receivers on one server: every transition as JSON to a receiver that answers 500 at
    first, then 429, times out on every 9th request (a first try: so only the broken alert
    runs out of attempts) and is slow; and 简城街道's non-update
    transitions as CAP 1.2 to another path. One alert is refused (422), one always fails (500).
    A 2 s session timeout lets the killed process's group membership lapse quickly."""
    settings = settings.model_copy(update={"session_timeout_ms": 2_000})
    topics(settings)
    messages = transitions(120, 6)
    for m in messages[:20]:
        Alert.model_validate(m)
    rejected, broken = messages[3]["alert_id"], messages[7]["alert_id"]
    # the broken alert's transitions all come early, while others still go through: with no
    # other traffic a receiver answering 500 cannot be told from one that is down (retried)
    messages = [m for m in messages if m["alert_id"] != broken or m["version"] <= 3]
    server = Receiver(SECRET.encode(), free_port(0))
    server.behaviour.fail_first, server.behaviour.throttle_first = 40, 10
    server.behaviour.timeout_every, server.behaviour.hang_s, server.behaviour.slow_s = 9, 1.5, 0.003
    server.behaviour.reject, server.behaviour.broken = {rejected}, {broken}
    server.start()
    config = receivers_file(tmp_path, f"""
sender: jiancheng-centre
receivers:
  - name: all-json
    url: {server.url("hook")}?token=abc
    secret_env: HOOK_SECRET
    timeout: 500ms
    retry: {{initial: 50ms, max: 1s, attempts: 4}}
    start: earliest
  - name: jiancheng-cap
    url: {server.url("cap")}
    secret_env: HOOK_SECRET
    format: cap
    matchers: ['district="简城街道"', 'transition!="updated"']
    start: earliest
""")
    hooks = Webhooks(settings, config, tmp_path / "webhooks.log")
    try:
        half = len(messages) // 2
        produce(settings, encoded(messages[:half]) + [(None, g) for g in GARBAGE])
        wanted = keys_of(messages) - {k for k in keys_of(messages) if k.startswith((rejected, broken))}
        deadline = time.monotonic() + 60
        while len(server.keys()) < len(wanted) // 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        hooks.kill()      # SIGKILL, with deliveries in flight
        produce(settings, encoded(messages[half:]))
        hooks = Webhooks(settings, config, tmp_path / "webhooks.log")
        assert not server.wait_for(wanted, timeout=120), hooks.tail()
        cap_wanted = keys_of([m for m in messages if m["district"] == "简城街道"
                              and m["transition"] != "updated"])
        assert not server.wait_for(cap_wanted, "cap", timeout=60), hooks.tail()
        dead = dead_letters(settings, lambda g: all(n <= reasons_of(g)[k] for k, n in {
            ("all-json", "rejected", rejected[:30]): 6, ("all-json", "gave_up", broken[:30]): 1,
            ("all-json", "unreadable", ""): len(GARBAGE), ("jiancheng-cap", "unreadable", ""): len(GARBAGE),
        }.items()))
        metrics = hooks.wait_metrics()
    finally:
        hooks.stop()
        server.close()

    # everything wanted, nothing else, signed, the body as it was on the topic, in order
    delivered = server.deliveries("hook")
    assert {d.key for d in delivered} == wanted
    assert all(d.signed for d in server.accepted) and server.bad_signatures == 0
    by_key = {f"{m['alert_id']}:{m['version']}": orjson.dumps(m) for m in messages}
    assert all(d.body == by_key[d.key] for d in delivered)
    assert not in_version_order(delivered)
    assert server.keys("cap") == cap_wanted
    assert not in_version_order(server.deliveries("cap"))
    repeats = len(delivered) - len(wanted)
    assert repeats < len(wanted) // 2, f"{repeats} repeats"
    # CAP bodies are valid CAP 1.2 with the configured sender and the idempotency key as identifier
    schema = xmlschema.XMLSchema(str(CAP_XSD))
    for d in server.deliveries("cap")[:40]:
        schema.validate(d.body)
        assert b"<sender>jiancheng-centre</sender>" in d.body
        assert f"<identifier>{d.key}</identifier>".encode() in d.body
    # what was never taken: the refused alert (rejected at once), the broken one (given up after
    # 4 attempts while others went through), the garbage (unreadable); for the JSON receiver only.
    # The broken alert's versions are given up one after the other (in version order) while
    # other deliveries show the receiver up; one still trying when the others are all delivered
    # (after the kill, it may be) meets a receiver that answers 500 to everything, which is
    # taken for down and waited out, not given up: so at least its first, not always all three.
    reasons = reasons_of(dead)
    assert reasons[("all-json", "rejected", rejected)] >= 6
    assert reasons[("all-json", "gave_up", broken)] >= 1
    assert reasons[("all-json", "unreadable", "")] >= len(GARBAGE)
    # the CAP receiver refuses none; garbage cannot be matched, so it is each receiver's dead letter
    assert {d["reason_code"] for d in dead if d["receiver"] == "jiancheng-cap"} == {"unreadable"}
    for d in dead:
        assert "token" not in d["url"]
        if d["reason_code"] == "rejected":
            assert d["last_status"] == 422 and "unknown district" in d["reason"]   # no retry after it
        if d["reason_code"] == "gave_up":
            # at least the 4 attempts, and more while no other delivery had shown the receiver
            # up since its first (a receiver answering 500 to all is taken for down and waited
            # out): how many more depends on timing, so == 4 failed now and then
            assert d["attempts"] >= 4 and d["last_status"] in (500, None)     # None: timed out
            assert orjson.loads(d["payload"])["alert_id"] == broken
    # the restarted process's figures: documented, well-formed, every kind of answer counted
    assert not undocumented(metrics)
    check_metrics(metrics)
    attempts = series(metrics, "cityorder_webhook_attempts_total", "receiver", "result")
    assert attempts.get(("all-json", "delivered"), 0) > 0
    assert attempts.get(("all-json", "timeout"), 0) > 0
    skipped = series(metrics, "cityorder_webhook_messages_total", "receiver", "outcome")
    assert skipped.get(("jiancheng-cap", "skipped"), 0) > 0


def test_an_outage_and_a_full_queue(settings: Settings, tmp_path: Path) -> None:
    """The receiver is down (connection refused) while transitions are produced; reading stops
    at max_in_flight and goes on when it is back; everything arrives, nothing is a dead letter.
    A second receiver, down for good with give_up_after 2s, has each transition dead-lettered."""
    settings = settings.model_copy(update={"session_timeout_ms": 2_000})
    topics(settings)
    messages = transitions(40, 5, seed=1)
    server = Receiver(SECRET.encode(), free_port(0))      # not started: down
    gone = free_port(0)
    config = receivers_file(tmp_path, f"""
receivers:
  - name: dispatch
    url: {server.url()}
    secret_env: HOOK_SECRET
    max_in_flight: 15
    retry: {{initial: 100ms, max: 1s}}
    start: earliest
  - name: gone
    url: http://127.0.0.1:{gone}/never
    secret_env: HOOK_SECRET
    matchers: ['level="3"']
    retry: {{initial: 100ms, max: 500ms, give_up_after: 2s}}
    start: earliest
""")
    hooks = Webhooks(settings, config, tmp_path / "webhooks.log")
    try:
        produce(settings, encoded(messages))
        hooks.wait_metrics()
        # reading stopped at max_in_flight, and an attempt has failed (up starts at 1: under
        # load the queue can fill before the first connection is refused)
        during = wait_until(hooks, lambda m: series(m, "cityorder_webhook_in_flight", "receiver")
                            .get(("dispatch",)) == 15
                            and ("dispatch",) not in series(m, "cityorder_webhook_up", "receiver"))
        time.sleep(3)       # the rest of an outage, scaled down
        server.start()
        assert not server.wait_for(keys_of(messages), timeout=90), hooks.tail()
        level3 = [m for m in messages if m["level"] == 3]
        dead = dead_letters(settings, lambda g: len(g) >= len(level3))
        after = hooks.metrics()
    finally:
        hooks.stop()
        server.close()
    assert series(during, "cityorder_webhook_in_flight", "receiver")[("dispatch",)] == 15
    assert series(during, "cityorder_webhook_queue_full_total", "receiver")[("dispatch",)] >= 1
    assert series(during, "cityorder_webhook_backlog_records", "receiver").get(("dispatch",), 0) > 0
    assert ("dispatch",) not in series(during, "cityorder_webhook_up", "receiver")    # 0: down
    assert series(after, "cityorder_webhook_up", "receiver")[("dispatch",)] == 1
    assert {d["receiver"] for d in dead} == {"gone"}
    assert keys_of([orjson.loads(d["payload"]) for d in dead]) == keys_of(level3)
    assert all(d["reason_code"] == "gave_up" and d["last_status"] is None for d in dead)
    assert not in_version_order(server.deliveries())


async def test_a_group_that_restarts_with_a_backlog_delivers_all_of_it(
        broker: Any, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receiver whose group has committed offsets comes back to a backlog on 12 partitions,
    with the coordinator slow to answer (3 ms a lookup): records fetched while its partitions
    are being set up are read again, not lost, and none is committed before it is delivered.
    (Found in review: the first version dropped 2,000 of 2,200 here.)"""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from webhooks.config import Receiver as ReceiverConfig
    from webhooks.metrics import WebhookMetrics
    from webhooks.service import ReceiverLoop

    s = Settings.from_env({}, brokers=broker.url, topic_prefix=topic_prefix, store="memory",
                          state_dir=tmp_path / "state", partitions=12)
    await ensure_topics(s, default_topics(s))
    messages = transitions(1100, 2, seed=2)
    producer = AIOKafkaProducer(**s.producer_kwargs(), acks="all", linger_ms=5)
    await producer.start()
    server = Receiver(SECRET.encode(), free_port(0))
    server.start()
    topic = s.topic("city.alerts")
    tps = [TopicPartition(topic, p) for p in range(12)]
    config = ReceiverConfig(name="rx", url=server.url(), secret_env="X", max_in_flight=100_000)
    try:
        for key, value in encoded(messages):
            await producer.send(topic, value, key=key)
        await producer.flush()
        # an old group: offset 0 committed on every partition
        old = AIOKafkaConsumer(**s.aiokafka_kwargs(), group_id=f"{s.app_id}-webhook-rx",
                               enable_auto_commit=False)
        await old.start()
        old.assign(tps)
        await old.commit({tp: 0 for tp in tps})
        await old.stop()
        committed = AIOKafkaConsumer.committed

        async def slow_committed(self: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
            await asyncio.sleep(0.003)
            return await committed(self, tp)

        monkeypatch.setattr(AIOKafkaConsumer, "committed", slow_committed)
        loop = ReceiverLoop(s, config, SECRET.encode(), "cityorder", producer, WebhookMetrics(), str)
        task = asyncio.create_task(loop.run())
        deadline = time.monotonic() + 60
        while len(server.keys()) < len(messages) and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.2)
        await asyncio.sleep(COMMIT_WAIT_S)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        check = AIOKafkaConsumer(**s.aiokafka_kwargs(), group_id=f"{s.app_id}-webhook-rx",
                                 enable_auto_commit=False)
        await check.start()
        check.assign(tps)
        at = sum([await committed(check, tp) or 0 for tp in tps])
        await check.stop()
    finally:
        await producer.stop()
        server.close()
    assert server.keys() == keys_of(messages)
    assert at == len(messages)
    assert not in_version_order(server.deliveries())


def test_a_retention_shorter_than_a_receivers_patience_is_said_at_start(settings: Settings,
                                                                         tmp_path: Path) -> None:
    """city.alerts keeps records for an hour (retention.ms, as the broker reports it); a receiver
    that retries for a day is named in a warning, one that gives up within the hour is not."""
    asyncio.run(ensure_topics(settings, default_topics(settings),
                              configs={settings.topic("city.alerts"): {"retention.ms": "3600000"}}))
    config = receivers_file(tmp_path, """
receivers:
  - {name: patient, url: 'http://127.0.0.1:9/a', secret_env: HOOK_SECRET}
  - {name: brief, url: 'http://127.0.0.1:9/b', secret_env: HOOK_SECRET, retry: {give_up_after: 30m}}
""")
    hooks = Webhooks(settings, config, tmp_path / "webhooks.log")
    try:
        hooks.wait_metrics()
        # /metrics is served before the check has asked the broker; its warnings are logged
        # together, so once one is there all are
        deadline = time.monotonic() + 30
        while "(retention.ms)" not in (log := (tmp_path / "webhooks.log").read_text(errors="replace")):
            assert time.monotonic() < deadline, log
            time.sleep(0.1)
    finally:
        hooks.stop()
    warned = [line for line in log.splitlines() if "(retention.ms)" in line]
    assert len(warned) == 1, log
    assert "receiver patient retries for up to 24 h" in warned[0]
    assert "keeps records for 1 h" in warned[0] and "retention.ms=86400000" in warned[0]
