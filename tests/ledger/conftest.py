from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres().start()
    yield server
    server.stop()
