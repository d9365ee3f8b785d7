"""The worker logs at the level asked for (Faust's spinner would lower it to DEBUG)."""

from __future__ import annotations

import asyncio
import logging

import faust
import pytest

from streams.worker import make_worker


@pytest.mark.parametrize("level", ["warning", "error", "info", "debug"])
def test_the_root_logger_keeps_the_level_asked_for(level: str) -> None:
    root, timers = logging.getLogger(), logging.getLogger("mode.timers")
    saved = root.level, list(root.handlers), timers.level
    loop = asyncio.new_event_loop()
    try:
        worker = make_worker(faust.App("t", broker="kafka://localhost:1"), loop, level)
        worker._setup_logging()
        assert root.level == logging.getLevelName(level.upper())
        if level != "debug":
            assert not logging.getLogger("aiokafka").isEnabledFor(logging.DEBUG)
        # mode's timers do not warn that they are "overlapping" (a busy loop is measured
        # instead), but at debug they say all they say
        assert timers.isEnabledFor(logging.WARNING) is (level == "debug")
    finally:
        loop.close()
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]
        timers.setLevel(saved[2])
