"""A rolling upgrade of a real fleet (issue 17): both processes run the previous release (the code just before
the newest migration was added), then each is replaced by this code in turn while clients keep committing and
reading through the balancer. The new process migrates the schema forward under the old one's feet; old and new
serve side by side on one schema; every acknowledged commit lands and no read fails."""

from __future__ import annotations

import os
import subprocess
import tarfile
import threading
import time
import uuid
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download

from tests.fleet.stack import Fleet, start_fleet

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ROOT / "src" / "cove" / "db" / "migrations" / "versions"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def previous_release(dest: Path) -> tuple[str, Path]:
    """Extract `src/` of the parent of the commit that added the newest migration: the last code on the schema
    before it. Returns (commit, the folder to put on PYTHONPATH)."""
    newest = sorted(VERSIONS.glob("[0-9]*.py"))[-1].relative_to(ROOT)
    added = _git("log", "--diff-filter=A", "--format=%H", "-1", "--", str(newest))
    commit = _git("rev-parse", f"{added}^")
    blob = subprocess.run(["git", "archive", "--format=tar", commit, "src"], cwd=ROOT, capture_output=True,
                          check=True).stdout
    with tarfile.open(fileobj=BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return commit, dest / "src"


@pytest.fixture
def old_fleet(fleet_pg, seaweed, tmp_path):  # noqa: ANN001, ANN201
    try:
        commit, src = previous_release(tmp_path / "old")
    except (subprocess.CalledProcessError, IndexError, FileNotFoundError) as exc:
        pytest.skip(f"no previous release in this checkout's git history: {exc}")
    f = start_fleet(fleet_pg, seaweed, 2, PYTHONPATH=str(src))
    try:
        yield f, commit
    finally:
        f.close()


def _versions(fleet: Fleet) -> set[str]:
    """Which code each live process runs: the `cove` module path in its /proc cmdline's environment."""
    out = set()
    for pid in fleet.pids():
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        out.add(next((e.decode()[11:] for e in env if e.startswith(b"PYTHONPATH=")), "") or "new")
    return out


def test_rolling_upgrade_old_and_new_processes_on_one_schema(old_fleet, tmp_path) -> None:  # noqa: ANN001
    fleet, commit = old_fleet
    erin = fleet.user("erin")
    api = fleet.api(erin.token)
    repo_id = f"erin/rolling-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    assert len(_versions(fleet)) == 1 and "new" not in _versions(fleet)

    acked: list[str] = []
    failed_commits: list[str] = []
    failed_reads: list[str] = []
    stop = threading.Event()

    def client() -> None:
        k = 0
        while not stop.is_set():
            k += 1
            try:
                acked.append(api.create_commit(repo_id, operations=[CommitOperationAdd(f"c/{k}.txt", b"%d" % k)],
                                               commit_message=f"c{k}").oid)
            except Exception as exc:  # noqa: BLE001 - a commit in flight on a stopped process may fail
                failed_commits.append(repr(exc))
            try:
                api.model_info(repo_id)
            except Exception as exc:  # noqa: BLE001
                failed_reads.append(repr(exc))
            time.sleep(0.05)

    worker = threading.Thread(target=client)
    worker.start()
    try:
        time.sleep(1)
        for i in range(2):
            fleet.stop(i)  # SIGTERM: uvicorn finishes what it has in flight; nginx sends new requests elsewhere
            fleet.start(i, PYTHONPATH="")  # this code: migrates the schema forward while the other serves
            fleet.wait_in_rotation(i)  # the balancer's health check sees it before the next one stops
            if i == 0:  # old and new side by side, on the new schema
                assert len(_versions(fleet)) == 2
                data = os.urandom(1_500_000)
                old_api = fleet.api(erin.token, endpoint=fleet.direct(1))
                old_api.upload_file(path_or_fileobj=data, path_in_repo="from-old.bin", repo_id=repo_id)
                path = hf_hub_download(repo_id, "from-old.bin", endpoint=fleet.direct(0), token=erin.token,
                                       cache_dir=tmp_path / "c0")
                assert Path(path).read_bytes() == data
                new_api = fleet.api(erin.token, endpoint=fleet.direct(0))
                new_api.upload_file(path_or_fileobj=data[::-1], path_in_repo="from-new.bin", repo_id=repo_id)
                assert old_api.list_repo_files(repo_id)[-2:] == ["from-new.bin", "from-old.bin"]
            time.sleep(1)
    finally:
        stop.set()
        worker.join(60)
    assert _versions(fleet) == {"new"}
    assert not failed_reads, failed_reads
    assert len(acked) >= 10 and len(failed_commits) <= 2, (len(acked), failed_commits)
    history = {c.commit_id for c in api.list_repo_commits(repo_id)}
    assert set(acked) <= history, f"acknowledged commits missing after the upgrade from {commit[:10]}"
    assert httpx.get(f"{fleet.endpoint}/api/models/{repo_id}").status_code == 200
