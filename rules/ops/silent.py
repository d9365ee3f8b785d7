"""``silent D``: a registered device that has sent at least once, then nothing for D."""

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class SilentState:
    last: int = 0
    last_item: Any = None
    silent: bool = False
    silence_start: int = 0
    fire_at: int | None = None

    def message(self, t: int, item: Any) -> bool:
        """Any accepted message from the device; returns True when it ends a silence."""
        ended = self.silent
        self.silent = False
        if t >= self.last:
            self.last, self.last_item = t, item
        self.fire_at = None
        return ended

    def fire(self) -> None:
        self.silent, self.silence_start, self.fire_at = True, self.last, None
