"""Start a worker: create the topics, then hand the runtime to ``faust.Worker``.

The topics (contract topics, ``cityorder.internal`` and the state changelog) are created
before Faust starts, because Faust's first metadata request would otherwise make the broker
auto-create them with its own partition count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import faust

from streams.app import Runtime
from streams.topics import default_topics, ensure_topics


async def create_topics(runtime: Runtime) -> list[str]:
    settings = runtime.settings
    topics = default_topics(settings)
    topics[runtime.changelog_topic] = settings.partitions
    configs = {runtime.changelog_topic: {"cleanup.policy": "compact"}}
    return await ensure_topics(settings, topics, configs=configs)


def run_worker(runtime: Runtime, *, loglevel: str = "info",
               before_start: Callable[[asyncio.AbstractEventLoop], None] | None = None) -> None:
    """Run until stopped (SIGINT/SIGTERM); exits the process like ``faust worker`` does."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    created = loop.run_until_complete(create_topics(runtime))
    if created:
        logging.getLogger(__name__).info("created topics: %s", ", ".join(created))
    if before_start is not None:
        before_start(loop)
    make_worker(runtime.app, loop, loglevel).execute_from_commandline()


def make_worker(app: faust.App, loop: asyncio.AbstractEventLoop, loglevel: str) -> faust.Worker:
    """A Faust worker without its terminal spinner: at level warning and above the spinner
    sets the root logger to DEBUG (so that it spins on every message), and the worker then
    formats every debug message Faust and aiokafka emit (~7% of a busy worker's time)."""
    worker = faust.Worker(app, loop=loop, loglevel=loglevel, quiet=True,
                          redirect_stdouts=False, override_logging=True)
    worker.spinner = None
    # mode's timers warn that they are "overlapping" whenever a run of one took longer than
    # its interval: the garbage collector's full collections (0.37 s at start-up, one every
    # ten minutes) and, in a drain, Faust's own livelock check, whose every step waits its turn
    # on a busy loop. Warnings a healthy worker gives are noise; how long the loop was busy is
    # measured instead (cityorder_event_loop_lag_seconds, docs/monitoring.md). At --loglevel
    # debug they stay, with the rest.
    if loglevel != "debug":
        logging.getLogger("mode.timers").setLevel(logging.ERROR)
    return worker
