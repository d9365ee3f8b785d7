"""``cityorder worker`` with a timer that raises (:func:`tests.e2e.faulty_worker.plant_timer`)."""

from __future__ import annotations

from tests.e2e.faulty_worker import plant_timer

if __name__ == "__main__":
    plant_timer()
    from streams.cli import main

    main()
