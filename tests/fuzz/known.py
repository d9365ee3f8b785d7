"""Bugs the fuzzer found that are still open, by tag: generators skip the inputs that hit them
when asked (``Gen(avoid=...)``; the suite's strategies always ask, ``bench.fuzz --avoid open``),
so the suite's fuzzing stays green and meaningful while each is kept as a strict xfail in
tests/fuzz/test_found.py, which fails once the bug is fixed: then delete its entry here and
its xfail mark there.

Found and fixed so far (their tests in test_found.py pass): ``deep-value``, a replay line whose
``value`` was nested ~900-1,023 deep stopped the replay with ``RecursionError``; ``bigint-value``,
an integer past 64 bits in a line's ``value`` was sent as a float.
"""

from __future__ import annotations

from typing import Final

OPEN: Final[dict[str, str]] = {}
"""Tag -> the bug (file, function, what breaks), used as the xfail reason."""
