"""Session-scoped PostgreSQL and SeaweedFS; a fleet of two `cove serve` behind nginx per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import User, free_port
from tests.fleet.seaweed import SeaweedS3, start_seaweed
from tests.fleet.stack import Fleet, start_fleet, unavailable
from tests.storage import pg as pgmod

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="session")
def fleet_pg() -> Iterator[pgmod.PgCluster]:
    why = unavailable()
    if why:
        pytest.skip(why)
    cluster = pgmod.PgCluster(free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    why = unavailable()
    if why:
        pytest.skip(why)
    with start_seaweed() as s3:
        yield s3


@pytest.fixture(scope="module")
def fleet_stack(fleet_pg: pgmod.PgCluster, seaweed: SeaweedS3) -> Iterator[Fleet]:
    f = start_fleet(fleet_pg, seaweed, 2)
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
def fleet(fleet_stack: Fleet) -> Fleet:
    """The module's fleet with every process up (a test before may have killed one)."""
    fleet_stack.start()
    return fleet_stack


@pytest.fixture
def erin(fleet: Fleet) -> User:
    return fleet.user("erin")
