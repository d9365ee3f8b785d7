"""Process-level settings for a long-running engine (the engine itself has no globals)."""

import gc


def tune_gc() -> None:
    """Make the cyclic garbage collector run far less often.

    The engine holds hundreds of thousands of long-lived small objects (subjects, evidence,
    timers) and creates few reference cycles; with CPython's default thresholds (700, 10, 10)
    the collector rescans them over and over: about a fifth of a replay's time. Objects
    already alive (the map, the rules) are frozen out of collection altogether.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
