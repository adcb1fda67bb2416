"""Session-scoped PostgreSQL, SeaweedFS and a fleet of two `cove serve` behind nginx (one per xdist worker;
tests use repos of their own, and `fleet` restarts any process a test before killed).

`COVE_FLEET_CODE=<git revision>` runs the fleets' processes on that revision's `src/` (git archive), e.g. to
show which of these tests fail on the code before a fix.
"""

from __future__ import annotations

import os
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from tests.conftest import User
from tests.fleet.seaweed import SeaweedS3, start_seaweed
from tests.fleet.stack import Fleet, start_fleet, unavailable
from tests.storage import pg as pgmod


@pytest.fixture(scope="session")
def fleet_pg() -> Iterator[pgmod.PgCluster]:
    why = unavailable()
    if why:
        pytest.skip(why)
    with pgmod.running() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    why = unavailable()
    if why:
        pytest.skip(why)
    with start_seaweed() as s3:
        yield s3


@pytest.fixture(scope="session")
def fleet_code() -> dict[str, str]:
    """Extra environment that puts another revision's code first on the processes' path (or nothing)."""
    rev = os.environ.get("COVE_FLEET_CODE")
    if not rev:
        return {}
    root = Path(__file__).resolve().parents[2]
    blob = subprocess.run(["git", "archive", "--format=tar", rev, "src"], cwd=root, capture_output=True,
                          check=True).stdout
    dest = Path(tempfile.mkdtemp(prefix="cove-fleet-code-"))
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return {"PYTHONPATH": str(dest / "src")}


@pytest.fixture(scope="session")
def fleet_stack(fleet_pg: pgmod.PgCluster, seaweed: SeaweedS3, fleet_code: dict[str, str]) -> Iterator[Fleet]:
    f = start_fleet(fleet_pg, seaweed, 2, COVE_DOWNLOAD_FLUSH_INTERVAL="1", **fleet_code)
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
