"""The admin CLI run from another directory finds the hub the server uses, or refuses; it never creates one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from huggingface_hub import HfApi

from tests.conftest import DATA, ENDPOINT, SERVER_ENV, free_port, start_server, stop_server


def _cove_elsewhere(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`cove ARGS` in `cwd` with no COVE_DATA/COVE_CONFIG, and a config home of the test's own."""
    base = {k: v for k, v in SERVER_ENV.items() if k not in ("COVE_DATA", "COVE_CONFIG")}
    return subprocess.run([sys.executable, "-m", "cove", *args], cwd=cwd, env={**base, **env},
                          capture_output=True, text=True)


def test_admin_command_elsewhere_without_a_hub_refuses_and_creates_nothing(tmp_path: Path) -> None:
    cwd, config_home = tmp_path / "somewhere", tmp_path / "config"
    cwd.mkdir()
    for args in (("user", "add", "carol"), ("token", "create", "carol"), ("user", "list")):
        r = _cove_elsewhere(cwd, *args, XDG_CONFIG_HOME=str(config_home))
        assert r.returncode == 2, r.stderr
        assert "no Cove hub found at" in r.stderr and "cove serve --data" in r.stderr
        assert "COVE_DATA" in r.stderr
    assert list(cwd.iterdir()) == []  # no ./cove-data, nothing else
    assert not config_home.exists()


def test_admin_command_elsewhere_finds_the_hub_in_the_config_file(server, tmp_path: Path) -> None:
    """An operator-written config file names the session server's data folder: the token made from another
    directory is one the running server accepts."""
    cwd, config_home = tmp_path / "elsewhere", tmp_path / "config"
    cwd.mkdir()
    (config_home / "cove").mkdir(parents=True)
    (config_home / "cove" / "config.toml").write_text(f"data = {json.dumps(str(DATA))}\n")
    name = f"u{uuid.uuid4().hex[:8]}"
    env = {"XDG_CONFIG_HOME": str(config_home)}
    assert _cove_elsewhere(cwd, "user", "add", name, **env).returncode == 0
    token = _cove_elsewhere(cwd, "token", "create", name, **env).stdout.strip()
    assert HfApi(endpoint=ENDPOINT, token=token).whoami()["name"] == name
    assert list(cwd.iterdir()) == []


def test_data_flag_names_the_hub_from_anywhere(server, tmp_path: Path) -> None:
    name = f"u{uuid.uuid4().hex[:8]}"
    r = _cove_elsewhere(tmp_path, "--data", str(DATA), "user", "add", name, XDG_CONFIG_HOME=str(tmp_path / "c"))
    assert r.returncode == 0, r.stderr
    assert name in _cove_elsewhere(tmp_path, "--data", str(DATA), "user", "list").stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_cove_serve_records_its_data_folder_for_admin_commands(tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    data = tmp_path / "hub"
    srv = start_server(data, free_port(), XDG_CONFIG_HOME=str(config_home))
    try:
        recorded = (config_home / "cove" / "config.toml").read_text()
        assert json.dumps(str(data.resolve())) in recorded
        cwd = tmp_path / "elsewhere"
        cwd.mkdir()
        env = {"XDG_CONFIG_HOME": str(config_home)}
        assert _cove_elsewhere(cwd, "user", "add", "dora", "--password", "dora-password", **env).returncode == 0
        token = _cove_elsewhere(cwd, "token", "create", "dora", **env).stdout.strip()
        assert HfApi(endpoint=srv.endpoint, token=token).whoami()["name"] == "dora"
        assert list(cwd.iterdir()) == []
    finally:
        stop_server(srv.proc)


def test_cove_init_creates_a_hub_that_admin_commands_then_use(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    r = _cove_elsewhere(tmp_path, "init", "--data", str(tmp_path / "hub"), **env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "hub" / "cove.db").is_file()
    r = _cove_elsewhere(tmp_path, "user", "add", "erin", **env)
    assert r.returncode == 0, r.stderr
    assert "cove user password erin" in r.stderr  # no password given: says how to set one
    assert "erin" in _cove_elsewhere(tmp_path, "user", "list", **env).stdout
    assert not (tmp_path / "cove-data").exists()


def test_a_cove_data_folder_in_the_current_directory_is_used_only_if_it_is_a_hub(tmp_path: Path) -> None:
    env = {"COVE_CONFIG": str(tmp_path / "nowhere.toml")}
    (tmp_path / "cove-data").mkdir()  # an empty folder is no hub
    assert _cove_elsewhere(tmp_path, "user", "list", **env).returncode == 2
    assert list((tmp_path / "cove-data").iterdir()) == []
    assert _cove_elsewhere(tmp_path, "init", "--data", "cove-data", **env).returncode == 0
    os.remove(tmp_path / "nowhere.toml")  # what init recorded: ./cove-data is found without it
    assert _cove_elsewhere(tmp_path, "user", "add", "fay", **env).returncode == 0
    assert "fay" in _cove_elsewhere(tmp_path, "user", "list", **env).stdout
