"""``cityorder webhooks resend`` on the embedded broker: a receiver's dead letters, as the
service writes them, sent again to a real HTTP server once it is fixed: each transition once,
signed, one alert's in version order, other receivers' left alone; what cannot be sent or is
not taken is reported, and the exit status says so."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from models.outputs import WebhookDeadLetter
from streams.cli import main
from streams.dev import free_port
from streams.settings import Settings
from streams.topics import default_topics, ensure_topics
from tests.webhook_receiver import Receiver, produce_alerts, transitions

pytestmark = pytest.mark.timeout(120)
SECRET = "s3cret-for-the-resend-tests-0123456789"


def dead_letter(receiver: str, message: dict[str, Any] | None, offset: int, **changes: Any) -> dict[str, Any]:
    """A dead letter as ``webhooks run`` writes one (checked against its model)."""
    record = {"receiver": receiver, "url": "http://127.0.0.1:9/was", "topic": "city.alerts",
              "partition": 0, "offset": offset,
              "alert_id": message["alert_id"] if message else None,
              "version": message["version"] if message else None,
              "transition": message["transition"] if message else None,
              "reason_code": "gave_up" if message else "unreadable", "reason": "after 5 attempts",
              "attempts": 5, "last_status": None, "first_attempt_at": "2026-11-22T08:30:07.602+08:00",
              "failed_at": "2026-11-22T08:31:07.640+08:00",
              "payload": orjson.dumps(message).decode() if message else "not json",
              "payload_encoding": "utf-8", "truncated": False} | changes
    WebhookDeadLetter.model_validate(record)
    return record


async def write(settings: Settings, records: list[dict[str, Any]]) -> None:
    await ensure_topics(settings, default_topics(settings))
    await produce_alerts(settings, [(r["receiver"].encode(), orjson.dumps(r)) for r in records],
                         topic="city.webhooks.deadletter")


def resend(settings: Settings, receivers: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["webhooks", "resend", str(receivers), *args, "--brokers",
                                     ",".join(settings.brokers), "--topic-prefix", settings.topic_prefix],
                              env={"HOOK_SECRET": SECRET})


def test_a_receivers_dead_letters_are_sent_again_in_order(settings: Settings, tmp_path: Path) -> None:
    m = transitions(4, 3, seed=5)          # 4 alerts, versions 1-3 each
    by = {(x["alert_id"], x["version"]): x for x in m}
    alerts = sorted({x["alert_id"] for x in m})
    refused, cut = alerts[1], alerts[2]
    records = [dead_letter("dispatch", x, i) for i, x in enumerate(reversed(m))]   # newest first
    records += [dead_letter("dispatch", by[(alerts[0], 2)], 99),                   # twice
                dead_letter("other", by[(alerts[0], 1)], 100),                     # not this receiver
                dead_letter("dispatch", None, 101),                                # unreadable
                dead_letter("dispatch", by[(cut, 2)], 102, truncated=True)]        # not whole
    records = [r for r in records if not (r["alert_id"] == cut and r["version"] == 2
                                          and not r["truncated"])]
    asyncio.run(write(settings, records))
    server = Receiver(SECRET.encode(), free_port(0))
    server.behaviour.reject = {refused}
    server.start()
    receivers = tmp_path / "receivers.yml"
    receivers.write_text(f"""
receivers:
  - name: dispatch
    url: {server.url()}
    secret_env: HOOK_SECRET
  - name: other
    url: {server.url("other")}
    secret_env: HOOK_SECRET
    format: cap
""", encoding="utf-8")
    try:
        dry = resend(settings, receivers, "--receiver", "dispatch", "--dry-run")
        assert server.requests == 0
        result = resend(settings, receivers, "--receiver", "dispatch")
        again = resend(settings, receivers, "--receiver", "dispatch", "--alert", alerts[0],
                       "--alert", alerts[3])
        assert server.deliveries("other") == []
        other = resend(settings, receivers, "--receiver", "other")
    finally:
        server.close()
    assert dry.exit_code == 1 and dry.output.count("would send") == 11, dry.output
    got = [d.key for d in server.deliveries()]
    # this receiver's transitions, each once, in (alert, version) order: not the refused alert's
    # (its first refused, the rest held back), nor the truncated version 2 (reported; its
    # version 3 goes, as run sends the versions after a dead letter)
    want = [f"{a}:{v}" for a in (alerts[0], cut, alerts[3]) for v in (1, 2, 3) if (a, v) != (cut, 2)]
    assert got[:len(want)] == want, got
    for d in server.deliveries():
        alert_id, version = d.key.rsplit(":", 1)
        assert d.signed and d.body == orjson.dumps(by[(alert_id, int(version))]), d.key
    assert result.exit_code == 1, result.output
    out = result.output
    assert f"not taken    {refused}:1" in out and f"held back    {refused}:2" in out, out
    assert f"{cut}:2: the dead letter does not hold the whole message" in out
    assert "not an alert message (unreadable)" in out
    assert "8 of 11 delivered to dispatch" in out, out
    # only the alerts named, all delivered again (the Idempotency-Key makes it harmless)
    assert again.exit_code == 0, again.output
    assert got[len(want):] == [f"{a}:{v}" for a in (alerts[0], alerts[3]) for v in (1, 2, 3)]
    # a CAP receiver's is rendered again, as run renders it
    assert other.exit_code == 0, other.output
    (cap,) = server.deliveries("other")
    assert cap.key == f"{alerts[0]}:1" and cap.signed and b"<alert xmlns=" in cap.body, cap.body[:200]


def test_an_unknown_receiver_is_refused(settings: Settings, tmp_path: Path) -> None:
    receivers = tmp_path / "receivers.yml"
    receivers.write_text("receivers:\n  - {name: dispatch, url: 'http://127.0.0.1:9/x', "
                         "secret_env: HOOK_SECRET}\n", encoding="utf-8")
    result = resend(settings, receivers, "--receiver", "dispach")
    assert result.exit_code == 2 and "no receiver dispach in" in result.output and "dispatch" in result.output
