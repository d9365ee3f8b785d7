"""What ``cityorder webhooks`` exports, per receiver (docs/monitoring.md lists each)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from streams.metrics import component_registry

#: Seconds from reading a transition to its receiver's 2xx: milliseconds when all is well,
#: hours through an outage.
_DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900,
                     3600, 14400, 86400)


class WebhookMetrics:
    def __init__(self) -> None:
        r = self.registry = component_registry("webhooks")
        self.messages = Counter(
            "cityorder_webhook_messages", "city.alerts records by what became of them for a "
            "receiver: delivered (2xx), dead (written to city.webhooks.deadletter), or skipped (its "
            "matchers do not want it).", ["receiver", "outcome"], registry=r)
        self.attempts = Counter(
            "cityorder_webhook_attempts", "HTTP requests by result: delivered, rejected (4xx, "
            "redirect), server_error (5xx, 408, 425), throttled (429), timeout, connection.",
            ["receiver", "result"], registry=r)
        self.deadletters = Counter(
            "cityorder_webhook_deadletters", "Dead letters written, by reason: rejected, gave_up, "
            "unreadable, error.", ["receiver", "reason_code"], registry=r)
        self.request = Histogram(
            "cityorder_webhook_request_seconds", "Time of one HTTP request, answered or not.",
            ["receiver"], registry=r)
        self.delivery = Histogram(
            "cityorder_webhook_delivery_seconds", "From reading a transition to the receiver's 2xx, "
            "retries included.", ["receiver"], buckets=_DELIVERY_BUCKETS, registry=r)
        self.in_flight = Gauge(
            "cityorder_webhook_in_flight", "Records read and not yet committable (the bounded "
            "queue: at max_in_flight, reading pauses).", ["receiver"], registry=r)
        self.queue_full = Counter(
            "cityorder_webhook_queue_full", "Times the in-flight bound was reached and reading "
            "paused; the rest waits in Kafka.", ["receiver"], registry=r)
        self.backlog = Gauge(
            "cityorder_webhook_backlog_records", "city.alerts records not yet read for this receiver.",
            ["receiver"], registry=r)
        self.up = Gauge(
            "cityorder_webhook_up", "1 if the receiver's latest answer was a 2xx, a 429 or a refusal "
            "of one message (it is up), 0 after a timeout, a connection error or a 5xx.",
            ["receiver"], registry=r)
        self.last_delivery = Gauge(
            "cityorder_webhook_last_delivery_timestamp_seconds", "When the receiver last answered "
            "2xx (Unix time; 0 if never since the start).", ["receiver"], registry=r)
        self.ready = Gauge(
            "cityorder_webhook_ready", "1 while the receiver's consumer is running.", ["receiver"],
            registry=r)

    def receiver(self, name: str) -> None:
        """Every series of a receiver present from the start, so a dashboard shows 0, not nothing."""
        for outcome in ("delivered", "dead", "skipped"):
            self.messages.labels(name, outcome)
        for reason in ("rejected", "gave_up", "unreadable", "error"):
            self.deadletters.labels(name, reason)
        self.queue_full.labels(name)
        self.in_flight.labels(name).set(0)
        self.backlog.labels(name).set(0)
        self.up.labels(name).set(1)
        self.last_delivery.labels(name).set(0)
