"""Issue 10, finding 18: every file was reported `securityFileStatus: safe` though nothing was scanned.

Now uploads are scanned off the request path: pickle imports (picklescan: anything outside its allow-list is
flagged), safetensors and GGUF headers (parsed; malformed ones flagged, parameter counts and GGUF metadata in
repo info). Until a file is scanned it is `unscanned`. `COVE_BLOCK_UNSAFE_DOWNLOADS` refuses unsafe files.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import ENDPOINT, SERVER_ENV, free_port, start_server, stop_server


class _Evil:
    """Unpickling this runs `os.system("echo pwned")`; the tests only ever pickle it."""

    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("echo pwned",))


def _evil_pickle(protocol: int = pickle.DEFAULT_PROTOCOL) -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0], "hook": _Evil()}, protocol=protocol)


def _torch_files() -> tuple[bytes, bytes]:
    """(a benign torch.save state dict, a torch.save whose pickle calls os.system)."""
    import torch

    good, bad = io.BytesIO(), io.BytesIO()
    torch.save({"w": torch.zeros(3)}, good)
    torch.save({"w": torch.zeros(3), "x": _Evil()}, bad)
    return good.getvalue(), bad.getvalue()


def _tiny_gguf(path: Path) -> bytes:
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(2048)
    w.add_tensor("tok_embd.weight", np.zeros((4, 8), np.float32))
    w.add_tensor("out.weight", np.zeros((8, 3), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path.read_bytes()


def _wait_scanned(api, repo_id: str, paths: list[str], timeout: float = 90) -> dict:  # noqa: ANN001
    """paths-info with expand=True once no file is `unscanned` (bounded wait)."""
    deadline = time.time() + timeout
    while True:
        infos = {i.path: i for i in api.get_paths_info(repo_id, paths, expand=True)}
        assert set(infos) == set(paths)
        if all(infos[p].security["status"] != "unscanned" for p in paths):
            return infos
        assert time.time() < deadline, {p: infos[p].security for p in paths}
        time.sleep(0.5)


def _imports(security) -> set[tuple[str, str, str]]:  # noqa: ANN001
    scan = security["pickle_import_scan"] or {"imports": []}
    return {(i["module"], i["name"], i["safety"]) for i in scan["imports"]}


def test_pickles_are_scanned_not_assumed_safe(api, repo_factory):
    """The attack: a pickle calling os.system is listed `safe` by tree and paths-info. Now it is `unsafe` with
    the import named, a benign torch.save file is `safe` with its (allow-listed) imports, and both Xet and
    inline git storage are read."""
    repo_id = repo_factory("scan-pickle")
    good, bad = _torch_files()
    evil = _evil_pickle()
    # Protocol 0 is text: the Hub client commits it inline, as a git blob.
    files = {"evil.pkl": evil, "evil-torch.bin": bad, "pytorch_model.bin": good, "evil.dat": _evil_pickle(0),
             "README.md": b"# hello\n"}
    for path, data in files.items():
        api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo_id)
    infos = _wait_scanned(api, repo_id, list(files))
    for path in ("evil.pkl", "evil-torch.bin", "evil.dat"):
        sec = infos[path].security
        assert sec["status"] == "unsafe" and sec["safe"] is False, (path, sec)
        assert (os.system.__module__, "system", "dangerous") in _imports(sec), sec
        assert sec["pickle_import_scan"]["highestSafetyLevel"] == "dangerous"
        assert sec["av_scan"] is None  # no antivirus runs: nothing is claimed about viruses
    sec = infos["pytorch_model.bin"].security
    assert sec["status"] == "safe", sec
    assert ("torch._utils", "_rebuild_tensor_v2", "innocuous") in _imports(sec)
    assert infos["README.md"].security["status"] == "safe"
    assert infos["evil.dat"].lfs is None  # an inline git blob, scanned as well
    # The tree listing says the same.
    tree = {e.path: e for e in api.list_repo_tree(repo_id, expand=True)}
    assert tree["evil.pkl"].security["status"] == "unsafe"
    assert tree["pytorch_model.bin"].security["status"] == "safe"
    # Downloads are not blocked by default.
    from huggingface_hub import hf_hub_download

    assert Path(hf_hub_download(repo_id, "evil.pkl", token=api.token)).read_bytes() == evil


def test_pickle_over_classic_lfs_is_scanned(api, repo_factory, no_xet):
    repo_id = repo_factory("scan-lfs")
    api.upload_file(path_or_fileobj=_evil_pickle(), path_in_repo="sub/model.pt", repo_id=repo_id)
    sec = _wait_scanned(api, repo_id, ["sub/model.pt"])["sub/model.pt"].security
    assert sec["status"] == "unsafe", sec


def test_safetensors_and_gguf_headers(api, repo_factory, tmp_path):
    """safetensors: parameter counts per dtype in `model_info().safetensors` (summed over a transformers
    model's files); GGUF: total, architecture and context length in `.gguf`; malformed headers are unsafe."""
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel

    repo_id = repo_factory("scan-st")
    model_dir = tmp_path / "model"
    cfg = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32)
    BertModel(cfg).save_pretrained(model_dir)
    expected: dict[str, int] = {}
    for t in load_file(model_dir / "model.safetensors").values():
        dtype = {"torch.float32": "F32", "torch.int64": "I64"}[str(t.dtype)]
        expected[dtype] = expected.get(dtype, 0) + t.numel()
    api.upload_folder(folder_path=model_dir, repo_id=repo_id)
    gguf_bytes = _tiny_gguf(tmp_path / "tiny.gguf")
    api.upload_file(path_or_fileobj=gguf_bytes, path_in_repo="tiny.gguf", repo_id=repo_id)
    api.upload_file(path_or_fileobj=gguf_bytes[:200], path_in_repo="broken/tiny.gguf", repo_id=repo_id)
    api.upload_file(path_or_fileobj=(10**9).to_bytes(8, "little") + b'{"a": 1}', path_in_repo="broken/x.safetensors",
                    repo_id=repo_id)
    paths = ["model.safetensors", "tiny.gguf", "broken/tiny.gguf", "broken/x.safetensors"]
    infos = _wait_scanned(api, repo_id, paths)
    assert infos["model.safetensors"].security["status"] == "safe"
    assert infos["tiny.gguf"].security["status"] == "safe"
    for p in ("broken/tiny.gguf", "broken/x.safetensors"):
        sec = infos[p].security
        assert sec["status"] == "unsafe", (p, sec)
    raw = httpx.post(f"{ENDPOINT}/api/models/{repo_id}/paths-info/main",
                     json={"paths": ["broken/x.safetensors"], "expand": True},
                     headers={"authorization": f"Bearer {api.token}"}).json()[0]["securityFileStatus"]
    assert raw["headerScan"]["valid"] is False and "malformed safetensors header" in raw["findings"][0]

    info = api.model_info(repo_id)
    assert info.safetensors is not None
    assert info.safetensors.parameters == expected
    assert info.safetensors.total == sum(expected.values())
    assert info.gguf == {"total": 4 * 8 + 8 * 3, "architecture": "llama", "context_length": 2048}
    only = api.model_info(repo_id, expand=["gguf"])
    assert only.gguf is not None and only.safetensors is None


def test_web_file_pages_show_the_scan(api, repo_factory):
    repo_id = repo_factory("scan-web")
    good, _ = _torch_files()
    api.upload_file(path_or_fileobj=_evil_pickle(), path_in_repo="evil.pkl", repo_id=repo_id)
    api.upload_file(path_or_fileobj=good, path_in_repo="ok.bin", repo_id=repo_id)
    _wait_scanned(api, repo_id, ["evil.pkl", "ok.bin"])
    page = httpx.get(f"{ENDPOINT}/{repo_id}/blob/main/evil.pkl").text
    assert 'data-status="unsafe"' in page
    assert 'id="scan-warning"' in page and f"imports {os.system.__module__}.system (dangerous)" in page
    # The download button leads to the warning; the file itself only from its "Download anyway" link.
    assert 'href="#scan-warning" id="download-link"' in page
    assert 'data-status="safe"' in httpx.get(f"{ENDPOINT}/{repo_id}/blob/main/ok.bin").text
    tree = httpx.get(f"{ENDPOINT}/{repo_id}/tree/main").text
    assert tree.count("badge scan-unsafe") == 1
    assert f"/{repo_id}/blob/main/evil.pkl#scan-warning" in tree


@pytest.fixture(scope="module")
def blocking(tmp_path_factory):
    """A server of its own that blocks unsafe downloads and runs no background scanner (so the download
    itself has to get the file scanned)."""
    data = tmp_path_factory.mktemp("blocking") / "data"
    srv = start_server(data, free_port(), COVE_BLOCK_UNSAFE_DOWNLOADS="true", COVE_SCAN_INTERVAL="0")

    def cli(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "cove", *args], env={**SERVER_ENV, "COVE_DATA": str(data)},
                              capture_output=True, text=True, check=True).stdout.strip()

    cli("user", "add", "carol", "--password", "carol-password")
    srv.token = cli("token", "create", "carol", "--role", "write")  # type: ignore[attr-defined]
    yield srv
    stop_server(srv.proc)


def test_unsafe_downloads_can_be_blocked(blocking, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi(endpoint=blocking.endpoint, token=blocking.token)
    repo_id = f"carol/block-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id)
    good, _ = _torch_files()
    api.upload_file(path_or_fileobj=_evil_pickle(), path_in_repo="evil.pkl", repo_id=repo_id)
    api.upload_file(path_or_fileobj=good, path_in_repo="ok.bin", repo_id=repo_id)
    # No scanner ran yet: nothing is claimed.
    infos = {i.path: i for i in api.get_paths_info(repo_id, ["evil.pkl", "ok.bin"], expand=True)}
    assert infos["evil.pkl"].security["status"] == "unscanned"
    url = f"{blocking.endpoint}/{repo_id}/resolve/main/evil.pkl"
    auth = {"authorization": f"Bearer {blocking.token}"}
    r = httpx.get(url, headers=auth)
    assert r.status_code == 403
    assert "flagged unsafe" in r.headers["x-error-message"]
    assert "system (dangerous)" in r.headers["x-error-message"]
    r = httpx.get(url, headers={**auth, "range": "bytes=0-10"})
    assert r.status_code == 403
    head = httpx.head(url, headers=auth)
    assert head.status_code == 200 and "x-xet-hash" not in head.headers  # metadata only; no way round to Xet
    # Nor through Xet directly: the reconstruction of that content is refused too.
    xet_hash = infos["evil.pkl"].xet_hash
    assert xet_hash
    tok = httpx.get(f"{blocking.endpoint}/api/models/{repo_id}/xet-read-token/main", headers=auth).json()
    r = httpx.get(f"{tok['casUrl']}/v1/reconstructions/{xet_hash}",
                  headers={"authorization": f"Bearer {tok['accessToken']}"})
    assert r.status_code == 403 and "flagged unsafe" in r.headers["x-error-message"]
    with pytest.raises(HfHubHTTPError) as err:
        hf_hub_download(repo_id, "evil.pkl", endpoint=blocking.endpoint, token=blocking.token,
                        cache_dir=tmp_path / "cache")
    assert err.value.response.status_code == 403
    assert "flagged unsafe" in str(err.value)
    path = hf_hub_download(repo_id, "ok.bin", endpoint=blocking.endpoint, token=blocking.token,
                           cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == good
    # The scan the download needed is kept.
    sec = api.get_paths_info(repo_id, ["evil.pkl"], expand=True)[0].security
    assert sec["status"] == "unsafe"
