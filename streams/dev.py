"""What ``cityorder dev`` prints: alerts as they happen, a status line, start-up time."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import click

from streams.tail import NOTEWORTHY, describe


def free_port(port: int) -> int:
    """``port`` if it can be bound on all interfaces (0: any free port); 0 if it is busy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return 0
        return int(s.getsockname()[1])


class DevConsole:
    """Prints to the terminal; the worker calls :meth:`alert` for every transition it sends."""

    def __init__(self, *, show_all: bool, started: float) -> None:
        self.show_all = show_all
        self.started = started
        self.runtime: Any = None
        self.first_alert = True
        self.was_ready = False
        self.calls = 0

    def say(self, text: str) -> None:
        click.echo(f"[{time.monotonic() - self.started:6.1f}s] {text}")

    def alert(self, alert: dict[str, Any]) -> None:
        if self.first_alert:
            self.first_alert = False
            self.say("first alert")
        if self.show_all or alert.get("transition") in NOTEWORTHY:
            click.echo(describe(alert))

    def on_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self.say("topics ready; starting the worker")

    async def status(self) -> None:
        rt = self.runtime
        if rt is None:
            return
        ready, _ = rt.ready()
        if ready and not self.was_ready:
            self.was_ready = True
            self.say("worker ready")
        self.calls += 1
        if self.calls % 5:
            return
        m = rt.metrics
        events, dead, alerts = _total(m.input_records), _total(m.deadletters), _total(m.transitions)
        clocks = [ev.engine.clock for ev in rt.evaluators.values() if ev.engine.clock is not None]
        at = rt.city.calendar.format(min(clocks))[11:19] if clocks else "--:--:--"
        self.say(f"{'ready' if ready else 'NOT READY'}: {events:,.0f} events in, {alerts:,.0f} alert "
                 f"messages, {dead:,.0f} dead letters; event clock {at}")


def _total(counter: Any) -> float:
    """A labelled counter's sum over all its label values."""
    return sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total"))
