"""``streams.web``: the ``/metrics`` and ``/healthz`` every helper service serves beside its
work, and a scrape of some series only (``?name[]=``), as the worker and the console answer it
too (``streams.metrics.scrape``)."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from streams.web import metrics_app


def _names(text: str) -> set[str]:
    return {f.name for f in text_string_to_metric_families(text)}


async def test_metrics_answers_all_series_or_the_ones_named() -> None:
    registry = CollectorRegistry()
    Counter("demo_sent", "Sent.", registry=registry).inc(3)
    Gauge("demo_backlog", "Backlog.", registry=registry).set(7)
    Gauge("demo_up", "Up.", registry=registry).set(1)
    async with TestClient(TestServer(metrics_app(registry))) as client:
        everything = await client.get("/metrics")
        assert everything.status == 200
        assert everything.headers["Content-Type"] == CONTENT_TYPE_LATEST
        assert _names(await everything.text()) == {"demo_sent", "demo_backlog", "demo_up"}

        some = await client.get("/metrics", params=[("name[]", "demo_sent_total"),
                                                    ("name[]", "demo_up")])
        text = await some.text()
        assert _names(text) == {"demo_sent", "demo_up"}
        assert "demo_sent_total 3.0" in text

        nothing = await client.get("/metrics", params=[("name[]", "no_such_series")])
        assert _names(await nothing.text()) == set()

        health = await client.get("/healthz")
        assert await health.json() == {"ok": True}
