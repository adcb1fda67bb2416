"""`cove backup` while commits keep landing, `cove restore` into a new folder: a hub that passes `cove fsck` and
holds every commit acknowledged before the backup started, with its files."""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path

from huggingface_hub import hf_hub_download

from tests.conftest import free_port, start_server, stop_server
from tests.ops_data.conftest import Hub, cove_at


def test_backup_during_a_stream_of_commits_then_restore(hub: Hub, tmp_path: Path) -> None:
    api = hub.api()
    repo_id = f"{hub.user}/stream-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    acked: list[tuple[str, str, bytes]] = []  # (commit sha, path, content), in acknowledgement order
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            # Every third commit is a binary file (Xet / LFS blobs); the others are small text files.
            path, body = (f"w/{i}.bin", os.urandom(3000 + i)) if i % 3 == 0 else (f"t/{i}.txt", f"line {i}\n".encode())
            try:
                info = api.upload_file(path_or_fileobj=body, path_in_repo=path, repo_id=repo_id,
                                       commit_message=f"commit {i}")
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
                return
            acked.append((info.oid, path, body))
            i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 60
        while len(acked) < 4 and time.time() < deadline and not errors:
            time.sleep(0.1)
        assert len(acked) >= 4, errors
        for attempt in range(5):  # until a commit lands while the backup runs (a fast backup may see none)
            before = list(acked)  # acknowledged before the backup started
            dest = tmp_path / f"backup-{attempt}"
            out = cove_at(hub.data, "backup", str(dest), check=False)
            assert out.returncode == 0, out.stdout + out.stderr
            during = len(acked) - len(before)
            if during:
                break
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(60)
    assert not errors, errors
    assert during > 0, "no commit landed while the backup ran: the test shows nothing about an online backup"

    new_data = tmp_path / "restored"
    out = cove_at(new_data, "restore", str(dest), "--data", str(new_data), check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    srv = start_server(new_data, free_port())
    try:
        fsck = cove_at(new_data, "fsck", check=False)
        assert fsck.returncode == 0, fsck.stdout + fsck.stderr
        from huggingface_hub import HfApi

        restored = HfApi(endpoint=srv.endpoint, token=hub.token)
        shas = {c.commit_id for c in restored.list_repo_commits(repo_id)}
        missing = [sha for sha, _, _ in before if sha not in shas]
        assert not missing, f"{len(missing)} acknowledged commits missing from the restored hub"
        for sha, path, body in before:
            got = hf_hub_download(repo_id, path, revision=sha, endpoint=srv.endpoint, token=hub.token,
                                  cache_dir=tmp_path / "cache")
            assert Path(got).read_bytes() == body, path
    finally:
        stop_server(srv.proc)
