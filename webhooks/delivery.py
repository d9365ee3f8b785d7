"""The rules of delivery, without I/O: how a request is signed, what an answer means, how long
to wait before the next try, when to give up, and which offset may be committed.

Signature (docs/webhooks.md shows how a receiver checks it)::

    X-Cityorder-Timestamp: 1763771402
    X-Cityorder-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The timestamp is inside the signed text so a captured request cannot be replayed later with
a fresh timestamp; a receiver refuses one older than a few minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
from collections import deque
from dataclasses import dataclass
from typing import Final, Literal

from webhooks.config import Retry

SIGNATURE_HEADER: Final = "X-Cityorder-Signature"
TIMESTAMP_HEADER: Final = "X-Cityorder-Timestamp"
IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
ATTEMPT_HEADER: Final = "X-Cityorder-Attempt"
CONTENT_TYPES: Final = {"json": "application/json", "cap": "application/cap+xml"}
_SECONDS: Final = re.compile(r"[0-9]{1,7}")
#: Answers that say "not now" rather than "never": tried again.
_TRANSIENT: Final = frozenset({408, 425, 429})

#: What one attempt came to, the ``result`` label of cityorder_webhook_attempts_total.
Result = Literal["delivered", "rejected", "server_error", "throttled", "timeout", "connection"]


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def idempotency_key(alert_id: str, version: int) -> str:
    """Unique per transition (the contract's ``(alert_id, version)``): a receiver that has seen
    it has the message already, however often it is delivered."""
    return f"{alert_id}:{version}"


def result_of(status: int) -> Result:
    """An HTTP status as an attempt's result: 2xx delivered; 5xx, 408, 425 and 429 worth
    another try; anything else (4xx, and 3xx: redirects are not followed, configure the final
    URL) a refusal that another try would not change."""
    if 200 <= status < 300:
        return "delivered"
    if status == 429:
        return "throttled"
    if status >= 500 or status in _TRANSIENT:
        return "server_error"
    return "rejected"


def backoff_ms(retry: Retry, attempt: int, retry_after_ms: int | None = None,
               rng: random.Random | None = None) -> int:
    """The wait after failed ``attempt`` (1-based): ``initial`` doubling up to ``max``, each
    drawn between half and all of it (so receivers that come back are not hit by every message
    at once), or the receiver's ``Retry-After`` if that is longer, never above ``max``."""
    full = min(retry.max, retry.initial * 2 ** min(attempt - 1, 40))
    wait = int(full * (0.5 + 0.5 * (rng or random).random()))
    if retry_after_ms is not None:
        wait = max(wait, retry_after_ms)
    return min(wait, retry.max)


def give_up(retry: Retry, attempts: int, first_attempt_ms: float, now_ms: float,
            last_delivery_ms: float | None) -> bool:
    """Whether a message that just failed again is done trying.

    Two cases, told apart by whether the receiver accepted anything else since this message's
    first try: if it did, it is up and refuses this one, so ``attempts`` tries are enough; if
    it did not, it is down, and the message waits out an outage of up to ``give_up_after``.
    """
    if now_ms - first_attempt_ms >= retry.give_up_after:
        return True
    receiver_up = last_delivery_ms is not None and last_delivery_ms > first_attempt_ms
    return receiver_up and attempts >= retry.attempts


def retry_after_ms(value: str | None) -> int | None:
    """``Retry-After`` in seconds, as milliseconds (an HTTP date is not followed: rare from an
    API, and the backoff still applies)."""
    if value is None or not _SECONDS.fullmatch(value.strip()):
        return None
    return int(value.strip()) * 1000


@dataclass
class Progress:
    """The offsets read from one partition and not yet committable, in order, and which of
    them are finished (delivered, dead-lettered or not wanted). Transitions of different alerts
    finish out of order: the commit point is after the finished run at the front, and a
    restart delivers again whatever came after it, which the idempotency key makes harmless.

    ``len(order)`` is what the bounded queue counts: a transition stuck at the front holds
    back the commit point, so the records read behind it count too, finished or not, and
    memory stays bounded however long it is stuck."""

    order: deque[int]
    finished: set[int]
    commit_point: int | None = None
    """The offset to commit (the next to read after a restart); None until one is finished."""
    committed: int | None = None

    @classmethod
    def empty(cls) -> Progress:
        return cls(deque(), set())

    def add(self, offset: int) -> None:
        self.order.append(offset)

    def finish(self, offset: int) -> int:
        """Mark ``offset`` finished; return how many offsets left the front (0 if it is not
        at the front, 1 or more if it was)."""
        self.finished.add(offset)
        released = 0
        while self.order and self.order[0] in self.finished:
            last = self.order.popleft()
            self.finished.discard(last)
            self.commit_point = last + 1
            released += 1
        return released

    def to_commit(self) -> int | None:
        """The commit point if it moved since the last :meth:`done_committing`."""
        return self.commit_point if self.commit_point != self.committed else None

    def done_committing(self, offset: int) -> None:
        self.committed = offset
