"""Fuzzing the edge: generated, boundary and mutated input through the real replay path.

``messages`` holds the building blocks (one generator per input topic, boundary values,
mutations, replay-file lines), written against a small :class:`~tests.fuzz.messages.Draw`
interface so that the same code serves hypothesis (``strategies``, in the suite) and a plain
``random.Random`` (``bench/fuzz.py``, a million lines on demand). ``check`` drives
``rules.replay.Replay`` line by line and checks the accounting of every line.
"""
