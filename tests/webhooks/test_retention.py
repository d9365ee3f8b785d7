"""A receiver that would retry a transition after Kafka deleted it is named at start-up."""

from __future__ import annotations

from webhooks.config import Receiver, Retry
from webhooks.service import retention_warnings

TOPIC = "city.alerts"


def receiver(name: str, give_up_after_ms: int) -> Receiver:
    return Receiver(name=name, url="https://dispatch.example/hook", secret_env="X",
                    retry=Retry(give_up_after=give_up_after_ms))


def test_only_receivers_that_outlast_the_retention_are_named() -> None:
    hour = 3_600_000
    rs = [receiver("long", 24 * hour), receiver("short", hour // 2), receiver("equal", 2 * hour)]
    (line,) = retention_warnings(TOPIC, {"retention.ms": str(2 * hour), "cleanup.policy": "delete"}, rs)
    assert line.startswith("receiver long retries for up to 24 h (give_up_after), but city.alerts "
                           "keeps records for 2 h (retention.ms)")
    assert line.endswith("--entity-name city.alerts --add-config retention.ms=86400000")


def test_nothing_when_the_broker_does_not_say_or_keeps_records_for_ever() -> None:
    rs = [receiver("long", 10**9)]
    assert retention_warnings(TOPIC, {}, rs) == []
    assert retention_warnings(TOPIC, {"retention.ms": "-1"}, rs) == []
