"""``cityorder worker`` with a timer that raises (:func:`tests.e2e.faulty_worker.plant_timer`):
by default the heavy truck rule's episode ends; ``FAULTY_TIMER=rule_id,rank,subject`` names
others (not a ``CITYORDER_`` variable: the tests' workers get only their settings' ones)."""

from __future__ import annotations

import os

from tests.e2e.faulty_worker import plant_timer

if __name__ == "__main__":
    which = os.environ.get("FAULTY_TIMER")
    if which:
        rule_id, rank, subject = which.split(",")
        plant_timer(rule_id, int(rank), subject)
    else:
        plant_timer()
    from streams.cli import main

    main()
