"""End-to-end fixtures: one real broker per test session, started and stopped by the tests
themselves (nothing to install or run by hand), and a fresh topic namespace per test.

Tests share the broker but never a topic or a consumer group: every test gets its own prefix,
so they can run in any order (or in parallel with pytest-xdist, one broker per worker).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from rules.demo.city import GEOJSON_PATH as DEMO_CITY
from streams.broker import EmbeddedBroker
from streams.settings import Settings


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker, up for the whole session; its log stays in pytest's temp dir."""
    b = EmbeddedBroker(log_dir=tmp_path_factory.mktemp("broker"))
    b.start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
def topic_prefix(request: pytest.FixtureRequest) -> str:
    """A prefix no other test uses, readable in broker logs: ``t-<test name>-<random>.``."""
    name = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"t-{name}-{uuid.uuid4().hex[:8]}."


@pytest.fixture
def settings(broker: EmbeddedBroker, topic_prefix: str, tmp_path: Path) -> Settings:
    """Settings for this test: the session broker, its own prefix, memory tables, a temp state dir.

    Built from an empty environment so a developer's CITYORDER_* variables cannot leak in.
    Checkpoints every second (30 s by default), so that crashes land before, between and in
    the middle of checkpoints within a short test. Consumer sessions of 3 s (10 s by default),
    so that a killed process's membership lapses soon and its successor does not wait.
    """
    return Settings.from_env({}, brokers=broker.url, topic_prefix=topic_prefix, store="memory",
                             city=DEMO_CITY, state_dir=tmp_path / "state", checkpoint_interval="1s",
                             session_timeout="3s")
