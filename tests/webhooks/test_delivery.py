"""The delivery rules: the signature (checked against openssl), what an answer means, the
backoff, when to give up, and the commit point."""

from __future__ import annotations

import random
import subprocess

import pytest

from webhooks.config import Retry
from webhooks.delivery import Progress, backoff_ms, give_up, result_of, retry_after_ms, signature


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_as_openssl_computes_it() -> None:
    secret, body = b"0123456789abcdef0123", '{"alert_id": "a-JY-0312", "note": "已派单"}'.encode()
    out = subprocess.run(["openssl", "dgst", "-sha256", "-hmac", secret.decode(), "-r"],
                         input=b"1763771402." + body, capture_output=True, check=True).stdout
    assert signature(secret, 1763771402, body) == "sha256=" + out.split()[0].decode()
    assert signature(secret, 1763771403, body) != signature(secret, 1763771402, body)
    assert signature(b"another-secret-000000", 1763771402, body) != signature(secret, 1763771402, body)


@pytest.mark.parametrize(("status", "result"), [
    (200, "delivered"), (201, "delivered"), (204, "delivered"), (299, "delivered"),
    (500, "server_error"), (502, "server_error"), (503, "server_error"), (504, "server_error"),
    (408, "server_error"), (425, "server_error"), (429, "throttled"),
    (400, "rejected"), (401, "rejected"), (404, "rejected"), (409, "rejected"), (413, "rejected"),
    (422, "rejected"), (301, "rejected"), (302, "rejected"), (307, "rejected"),
])
def test_what_an_answer_means(status: int, result: str) -> None:
    assert result_of(status) == result


def test_backoff_doubles_with_jitter_up_to_max() -> None:
    retry = Retry(initial=1000, max=60_000)
    rng = random.Random(7)
    for attempt in range(1, 30):
        full = min(60_000, 1000 * 2 ** (attempt - 1))
        waits = [backoff_ms(retry, attempt, rng=rng) for _ in range(200)]
        assert full // 2 <= min(waits) and max(waits) <= full
        assert max(waits) - min(waits) > full // 4        # spread, not one instant for everyone
    assert backoff_ms(retry, 10_000, rng=rng) <= 60_000     # no overflow on a long outage


def test_retry_after_is_honoured_up_to_max() -> None:
    retry = Retry(initial=100, max=5_000)
    assert backoff_ms(retry, 1, retry_after_ms=3_000) == 3_000
    assert backoff_ms(retry, 1, retry_after_ms=3_600_000) == 5_000
    assert retry_after_ms("2") == 2_000 and retry_after_ms(" 7 ") == 7_000
    assert retry_after_ms(None) is None
    assert retry_after_ms("Wed, 21 Oct 2026 07:28:00 GMT") is None


def test_give_up_after_attempts_only_while_the_receiver_takes_others() -> None:
    retry = Retry(initial=100, max=1000, attempts=3, give_up_after=60_000)
    first = 1_000.0
    # it accepted another message after this one's first try: up, so 3 tries are enough
    assert not give_up(retry, 2, first, 2_000, last_delivery_ms=1_500)
    assert give_up(retry, 3, first, 2_000, last_delivery_ms=1_500)
    # nothing accepted since (or ever): down, keep it until give_up_after
    assert not give_up(retry, 50, first, 30_000, last_delivery_ms=900)
    assert not give_up(retry, 50, first, 30_000, last_delivery_ms=None)
    assert give_up(retry, 50, first, first + 60_000, last_delivery_ms=None)


def test_the_commit_point_is_after_the_finished_run_at_the_front() -> None:
    p = Progress.empty()
    for offset in (10, 11, 12, 15, 16):     # gaps happen: transactions' markers, compaction
        p.add(offset)
    assert p.to_commit() is None
    assert p.finish(11) == 0 and p.finish(15) == 0
    assert p.to_commit() is None             # 10 is not finished
    assert p.finish(10) == 2                 # 10 and 11 leave the front; 12 is not finished
    assert p.to_commit() == 12
    p.done_committing(12)
    assert p.to_commit() is None             # nothing new
    assert p.finish(12) == 2 and p.finish(16) == 1
    assert p.to_commit() == 17
    assert not p.order and not p.finished


def test_what_waits_behind_a_stuck_front_stays_counted() -> None:
    p = Progress.empty()
    for offset in range(100):
        p.add(offset)
    released = sum(p.finish(offset) for offset in range(1, 100))
    assert released == 0 and len(p.order) == 100     # the bounded queue still counts them all
    assert p.finish(0) == 100 and p.to_commit() == 100


def test_a_strange_retry_after_is_ignored() -> None:
    assert retry_after_ms("²") is None            # a digit to str.isdigit, not to int()
    assert retry_after_ms("9" * 5000) is None
    assert retry_after_ms("-1") is None


@pytest.mark.parametrize(("raw", "readable"), [
    (b'{"alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": 3, "transition": "escalated"}', True),
    (b'{"alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": true, "transition": "escalated"}', False),
    (b'{"alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": 0, "transition": "escalated"}', False),
    (b'{"alert_id": "a-JY-0312-3f9c0e51d2a4b7c81e09", "version": 3, "transition": "exploded"}', False),
    (b'{"alert_id": "JY-0312", "version": 3, "transition": "escalated"}', False),
    (b'[1, 2]', False), (b'not json', False), (b'\xff\xfe', False),
])
def test_what_counts_as_an_alert_message(raw: bytes, readable: bool) -> None:
    from webhooks.service import _read

    alert, problem = _read(raw)
    assert (alert is not None) == readable and (problem is None) == readable
