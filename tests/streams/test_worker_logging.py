"""The worker logs at the level asked for (Faust's spinner would lower it to DEBUG)."""

from __future__ import annotations

import asyncio
import logging

import faust
import pytest

from streams.worker import make_worker


@pytest.mark.parametrize("level", ["warning", "error", "info"])
def test_the_root_logger_keeps_the_level_asked_for(level: str) -> None:
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    loop = asyncio.new_event_loop()
    try:
        worker = make_worker(faust.App("t", broker="kafka://localhost:1"), loop, level)
        worker._setup_logging()
        assert root.level == logging.getLevelName(level.upper())
        assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
    finally:
        loop.close()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
