"""Spaces that run (issue 13): push a gradio or static Space to a real `cove serve`, reach RUNNING, call the app
through Cove with the stock `gradio_client` (only HF_ENDPOINT changed), push changes and failures, and check the
sandbox: private Spaces, secrets, and an app trying to read Cove's data folder.

One server (with its own Spaces folder and `uv` cache) serves the module; the tests run in order and share the
Spaces they build, since every gradio start costs seconds on a small machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port, start_server, stop_server

pytestmark = [
    pytest.mark.spaces,
    pytest.mark.skipif(os.geteuid() != 0, reason="running Spaces needs root (each app runs under its own uid)"),
]

#: uv's wheel cache, shared by the Spaces tests' hubs and kept between runs, so their builds start warm.
WARM_CACHE = "/tmp/cove-spaces-uv-cache"
#: The SDK versions the tests pin (README `sdk_version`), so a new release can't change what they run.
GRADIO, STREAMLIT = "6.31.0", "1.67.0"


def readme(sdk: str, version: str) -> str:
    return f"---\ntitle: test\nsdk: {sdk}\nsdk_version: {version}\napp_file: app.py\n---\n"


UPPER = '''import gradio as gr
gr.Interface(lambda s: s.upper(), "text", "text", api_name="predict").launch()
'''
REVERSED = UPPER.replace("s.upper()", "s[::-1]")
PROBE = '''import os
import gradio as gr


def probe(what):
    if what == "secret":
        return os.environ.get("MY_SECRET", "<unset>")
    if what == "env":
        return " ".join(sorted(os.environ))
    if what == "crash":  # answer, then die as a crashing app would
        import threading
        threading.Timer(0.5, os._exit, (3,)).start()
        return "bye"
    if what == "whoami":  # the owner's read token the hub gave this private Space
        from huggingface_hub import HfApi
        api = HfApi()
        me = api.whoami()["name"]
        try:
            api.create_repo(me + "/made-by-the-space")
            return me + " (wrote!)"
        except Exception as exc:
            return me + " (read only: " + type(exc).__name__ + ")"
    if what.startswith("connect:"):  # a TCP port on 127.0.0.1 (another Space's app, any local service)
        import socket
        try:
            socket.create_connection(("127.0.0.1", int(what[8:])), timeout=3).close()
            return "connected"
        except OSError as exc:
            return "refused: " + type(exc).__name__
    if what == "others":
        out = []
        for name in sorted(os.listdir(os.environ["OTHERS_PATH"])):
            try:
                out.append(name + ":" + ",".join(os.listdir(os.path.join(os.environ["OTHERS_PATH"], name))))
            except OSError as exc:
                out.append(name + ":" + type(exc).__name__)
        return " ".join(out)
    try:
        if what == "data":
            return "listed: " + ",".join(os.listdir(os.environ["DATA_PATH"]))
        with open(os.path.join(os.environ["DATA_PATH"], "cove.db"), "rb") as fh:
            return "read: %d bytes" % len(fh.read(100))
    except OSError as exc:
        return "refused: " + type(exc).__name__


gr.Interface(probe, "text", "text", api_name="predict").launch()
'''
GRADIO_CALL = """
import json, sys
from gradio_client import Client
space, text, token = sys.argv[1], sys.argv[2], sys.argv[3] or None
try:
    out = Client(space, token=token, verbose=False).predict(text, api_name="/predict")
    print(json.dumps({"ok": out}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
"""


class Hub:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        # The Spaces folder must be reachable by the apps' uids: not under pytest's 0700 temp folders.
        self.spaces = Path(f"/tmp/cove-spaces-test-{uuid.uuid4().hex[:8]}")
        self.spaces.mkdir(mode=0o755)
        self.port = free_port()
        # One app at a time: a second one running puts the least recently visited to sleep.
        self.env = {"COVE_SPACES_ROOT": str(self.spaces), "COVE_SPACES_POLL_INTERVAL": "0.5",
                    "COVE_SPACES_START_TIMEOUT": "120", "COVE_SCAN_INTERVAL": "0", "COVE_SPACES_MAX_RUNNING": "1",
                    "COVE_SPACES_CACHE": WARM_CACHE}
        self.server = None
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.spaces, ignore_errors=True)
            raise

    def start(self) -> None:
        self.server = start_server(self.data, self.port, **self.env)
        self.endpoint = self.server.endpoint

    def stop(self) -> None:
        stop_server(self.server.proc)

    def cove(self, *args: str) -> str:
        env = {**os.environ, "COVE_DATA": str(self.data)}
        return subprocess.run([sys.executable, "-m", "cove", *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    def user(self, name: str) -> str:
        self.cove("user", "add", name, "--password", f"{name}-password")
        return self.cove("token", "create", name, "--role", "write", "--name", "t")

    def api(self, token: str | bool):
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.endpoint, token=token)

    def gradio(self, space: str, text: str, token: str = "") -> dict:
        """`gradio_client.Client(space).predict(text)` in a fresh process whose only setting is HF_ENDPOINT."""
        env = {**os.environ, "HF_ENDPOINT": self.endpoint}
        env.pop("HF_TOKEN", None)
        out = subprocess.run([sys.executable, "-c", GRADIO_CALL, space, text, token], env=env, capture_output=True,
                             text=True, timeout=120)
        return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    h = Hub(tmp_path_factory.mktemp("spaces-hub"))
    h.alice = h.user("sally")
    h.bob = h.user("bert")
    try:
        yield h
    finally:
        h.stop()
        shutil.rmtree(h.spaces, ignore_errors=True)


def wait_stage(api, repo_id: str, stages: tuple[str, ...], timeout: float = 240, sha: str | None = None):
    deadline = time.time() + timeout
    while True:
        rt = api.get_space_runtime(repo_id)
        if rt.stage in stages and (sha is None or rt.raw.get("sha") == sha):
            return rt
        if time.time() > deadline:
            raise AssertionError(f"{repo_id} stayed {rt.stage} ({rt.raw.get('errorMessage')}), wanted {stages}")
        time.sleep(0.5)


def push(api, repo_id: str, files: dict[str, str], message: str = "update") -> str:
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(path, content.encode()) for path, content in files.items()]
    return api.create_commit(repo_id, ops, commit_message=message, repo_type="space").oid


def gradio_space_id(hub) -> str:  # noqa: ANN001
    """Any public Space of sally's (made here when the module's gradio Space isn't)."""
    api = hub.api(hub.alice)
    for s in api.list_spaces(author="sally"):
        if not s.private:
            return s.id
    repo_id = f"sally/public-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, repo_type="space")
    return repo_id


@pytest.fixture(scope="module")
def gradio_space(hub) -> str:
    repo_id = f"sally/upper-{uuid.uuid4().hex[:6]}"
    api = hub.api(hub.alice)
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    push(api, repo_id, {"README.md": readme("gradio", GRADIO), "app.py": UPPER, "requirements.txt": "\n"})
    return repo_id


def test_gradio_space_runs_and_answers_through_cove(hub, gradio_space):
    api = hub.api(hub.alice)
    rt = wait_stage(api, gradio_space, ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR", "CONFIG_ERROR"))
    assert rt.stage == "RUNNING", rt.raw
    assert rt.hardware == "cpu-basic"
    info = api.space_info(gradio_space)
    assert info.host == f"{hub.endpoint}/spaces/{gradio_space}/app/"
    assert hub.gradio(gradio_space, "hello cove") == {"ok": "HELLO COVE"}
    page = httpx.get(info.host)
    assert page.status_code == 200 and "gradio" in page.text.lower()
    assert page.headers["content-security-policy"].startswith("sandbox allow-scripts")  # opaque origin
    build_log = "".join(api.fetch_space_logs(gradio_space, build=True))
    assert f"gradio=={GRADIO}" in build_log  # the README's sdk_version


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
needs_chromium = pytest.mark.skipif(not (Path(CHROMIUM).exists() and Path(DRIVER).exists()),
                                    reason="needs chromium and chromium-driver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--window-size=1280,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield driver
    driver.quit()


def until(fn, timeout: float = 60):  # noqa: ANN001, ANN201
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError("timed out")


@needs_chromium
def test_space_page_embeds_the_app_and_a_browser_uses_it(hub, gradio_space, browser):
    from selenium.webdriver.common.by import By

    wait_stage(hub.api(hub.alice), gradio_space, ("RUNNING",))
    browser.get(f"{hub.endpoint}/spaces/{gradio_space}")
    frame = browser.find_element(By.ID, "space-frame")
    assert frame.get_attribute("src") == f"{hub.endpoint}/spaces/{gradio_space}/app/"
    assert "allow-same-origin" not in frame.get_attribute("sandbox")
    browser.switch_to.frame(frame)
    try:
        box = until(lambda: browser.find_elements(By.CSS_SELECTOR, "textarea"))[0]
        box.send_keys("typed in chromium")
        buttons = until(lambda: [b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Submit"])
        buttons[0].click()
        until(lambda: "TYPED IN CHROMIUM" in [t.get_attribute("value")
                                              for t in browser.find_elements(By.CSS_SELECTOR, "textarea")])
    finally:
        browser.switch_to.default_content()


def test_push_rebuilds_and_serves_the_new_version(hub, gradio_space):
    api = hub.api(hub.alice)
    start = time.time()
    sha = push(api, gradio_space, {"app.py": REVERSED})
    wait_stage(api, gradio_space, ("RUNNING",), sha=sha)
    assert hub.gradio(gradio_space, "abc") == {"ok": "cba"}
    # The environment was reused: requirements unchanged.
    build_log = "".join(api.fetch_space_logs(gradio_space, build=True))
    assert "Reusing the environment" in build_log
    print(f"push to RUNNING (environment reused): {time.time() - start:.1f} s")


def test_bad_requirement_is_a_build_error_and_the_old_version_keeps_serving(hub, gradio_space):
    api = hub.api(hub.alice)
    push(api, gradio_space, {"requirements.txt": "cove-no-such-package-xyz==9.9.9\n"})
    rt = wait_stage(api, gradio_space, ("BUILD_ERROR",), timeout=180)
    assert "cove-no-such-package-xyz" in rt.raw["errorMessage"]
    assert hub.gradio(gradio_space, "abc") == {"error": "ValueError: The current space is in the invalid state: "
                                                        "BUILD_ERROR. Please contact the owner to fix this."}
    # The previous version still answers at the Space's URL.
    config = httpx.get(f"{hub.endpoint}/spaces/{gradio_space}/app/config")
    assert config.status_code == 200 and config.json()["dependencies"]


def test_broken_app_is_a_runtime_error_with_its_log(hub, gradio_space):
    api = hub.api(hub.alice)
    push(api, gradio_space, {"requirements.txt": "\n", "app.py": "raise SystemExit('cove-broken-app: no model')\n"})
    rt = wait_stage(api, gradio_space, ("RUNTIME_ERROR",), timeout=180)
    assert "cove-broken-app: no model" in rt.raw["errorMessage"]
    assert "cove-broken-app" in "".join(api.fetch_space_logs(gradio_space))


def test_bad_input_is_refused_not_a_server_error(hub, gradio_space):
    auth = {"authorization": f"Bearer {hub.alice}"}
    r = httpx.post(f"{hub.endpoint}/api/spaces/{gradio_space}/sleeptime", json={"seconds": 10**30}, headers=auth)
    assert r.status_code == 400 and "seconds" in r.headers["x-error-message"]
    r = httpx.post(f"{hub.endpoint}/api/spaces/{gradio_space}/secrets", json={"key": "1 bad", "value": "v"},
                   headers=auth)
    assert r.status_code == 400
    assert httpx.get(f"{hub.endpoint}/spaces/{gradio_space}/app/a%00b").status_code == 400


def test_static_space_is_served_and_private_means_private(hub):
    api = hub.api(hub.alice)
    repo_id = f"sally/page-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="static", private=True)
    push(api, repo_id, {"index.html": "<h1>cove static</h1>", "style.css": "h1 {color: red}"})
    wait_stage(api, repo_id, ("RUNNING",), timeout=60)
    url = f"{hub.endpoint}/spaces/{repo_id}/app/"
    r = httpx.get(url, headers={"authorization": f"Bearer {hub.alice}"})
    assert r.status_code == 200 and r.text == "<h1>cove static</h1>"
    css = httpx.get(url + "style.css", headers={"x-hf-authorization": f"Bearer {hub.alice}"})
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for headers in ({}, {"authorization": f"Bearer {hub.bob}"}):
        assert httpx.get(url, headers=headers).status_code == 404
    missing = httpx.get(f"{hub.endpoint}/spaces/sally/no-such-space/app/",
                        headers={"authorization": f"Bearer {hub.bob}"})
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "RepoNotFound"
    from huggingface_hub.errors import RepositoryNotFoundError

    with pytest.raises(RepositoryNotFoundError):
        hub.api(hub.bob).get_space_runtime(repo_id)
    # Pause and restart (the stock client's calls).
    assert api.pause_space(repo_id).stage == "PAUSED"
    wait_stage(api, repo_id, ("PAUSED",))
    assert httpx.get(url, headers={"authorization": f"Bearer {hub.alice}"}).status_code == 503
    api.restart_space(repo_id)
    wait_stage(api, repo_id, ("RUNNING",), timeout=60)
    assert httpx.get(url, headers={"authorization": f"Bearer {hub.alice}"}).status_code == 200


def test_docker_space_needs_a_container_runner_and_one_hardware_tier(hub):
    api = hub.api(hub.alice)
    repo_id = f"sally/docker-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="docker")
    push(api, repo_id, {"Dockerfile": "FROM python:3.11\n", "app.py": "print(1)\n"})
    rt = wait_stage(api, repo_id, ("CONFIG_ERROR",), timeout=60)
    assert "container runner" in rt.raw["errorMessage"]
    apt = f"sally/apt-{uuid.uuid4().hex[:6]}"
    api.create_repo(apt, repo_type="space", space_sdk="gradio")
    push(api, apt, {"app.py": UPPER, "packages.txt": "ffmpeg\n"})
    rt = wait_stage(api, apt, ("CONFIG_ERROR",), timeout=60)
    assert "packages.txt" in rt.raw["errorMessage"] and "COVE_SPACES_ALLOW_PACKAGES" in rt.raw["errorMessage"]
    assert api.request_space_hardware(repo_id, "cpu-basic").requested_hardware == "cpu-basic"
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as err:
        api.request_space_hardware(repo_id, "t4-small")
    assert err.value.response.status_code == 400


@needs_chromium
def test_streamlit_space_runs_over_the_proxied_websocket(hub, browser, gradio_space):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    api = hub.api(hub.alice)
    gradio_serving = api.get_space_runtime(gradio_space).raw["replicas"]["current"] == 1  # (in module order)
    repo_id = f"sally/streamlit-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="streamlit")
    push(api, repo_id, {"README.md": readme("streamlit", STREAMLIT),
                        "app.py": "import streamlit as st\nname = st.text_input('name')\n"
                                  "st.write('hello ' + name.upper())\n"})
    rt = wait_stage(api, repo_id, ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"))
    assert rt.stage == "RUNNING", rt.raw
    # Past COVE_SPACES_MAX_RUNNING (1 here) the least recently visited app sleeps: the gradio one.
    if gradio_serving:
        wait_stage(api, gradio_space, ("SLEEPING",), timeout=30)
    browser.get(f"{hub.endpoint}/spaces/{repo_id}/app/")
    until(lambda: browser.find_elements(By.CSS_SELECTOR, "input[type=text]"))[0].send_keys("cove", Keys.ENTER)
    until(lambda: "hello COVE" in browser.page_source)  # each rerun travels over Streamlit's WebSocket
    # Deleting the Space stops its app, and its logs and working copies go.
    assert streamlit_processes(hub)
    pk = repo_pk(hub, repo_id)
    assert (hub.data / "space-logs" / pk / "run.log").exists() and (hub.spaces / "apps" / pk).exists()
    api.delete_repo(repo_id, repo_type="space")
    until(lambda: not streamlit_processes(hub), timeout=30)
    until(lambda: not (hub.data / "space-logs" / pk).exists() and not (hub.spaces / "apps" / pk).exists(),
          timeout=30)


def repo_pk(hub, repo_id: str) -> str:  # noqa: ANN001
    import sqlite3

    ns, name = repo_id.split("/")
    with contextlib.closing(sqlite3.connect(hub.data / "cove.db")) as db:
        return str(db.execute("select id from repos where namespace = ? and name = ?", (ns, name)).fetchone()[0])


def streamlit_processes(hub) -> list[str]:  # noqa: ANN001
    out = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes() if p.name.isdigit() else b""
            if b"streamlit" in cmd and str(hub.spaces).encode() in cmd:
                out.append(p.name)
        except OSError:
            pass
    return out


@pytest.fixture(scope="module")
def probe_space(hub) -> str:
    """A private gradio app that reports its secret, its environment, and what it can read of the hub's folders."""
    api = hub.api(hub.alice)
    repo_id = f"sally/probe-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio", private=True)
    api.add_space_secret(repo_id, "MY_SECRET", "s3cr3t-cove-value", description="for the test")
    api.add_space_variable(repo_id, "DATA_PATH", str(hub.data.resolve()))
    api.add_space_variable(repo_id, "OTHERS_PATH", str(hub.spaces / "apps"))
    push(api, repo_id, {"README.md": readme("gradio", GRADIO), "app.py": PROBE})
    rt = wait_stage(api, repo_id, ("RUNNING", "BUILD_ERROR", "RUNTIME_ERROR"))
    assert rt.stage == "RUNNING", rt.raw
    return repo_id


def test_secret_reaches_the_app_and_nobody_else(hub, probe_space):
    api = hub.api(hub.alice)
    assert hub.gradio(probe_space, token=hub.alice, text="secret") == {"ok": "s3cr3t-cove-value"}
    secrets = api.get_space_secrets(probe_space)
    assert set(secrets) == {"MY_SECRET"} and secrets["MY_SECRET"].description == "for the test"
    assert "s3cr3t" not in json.dumps(httpx.get(f"{hub.endpoint}/api/spaces/{probe_space}/secrets",
                                                headers={"authorization": f"Bearer {hub.alice}"}).json())
    assert api.get_space_variables(probe_space)["DATA_PATH"].value == str(hub.data.resolve())
    from huggingface_hub.errors import HfHubHTTPError

    with pytest.raises(HfHubHTTPError) as err:  # to bob the private Space is not there, nor its secrets
        hub.api(hub.bob).get_space_secrets(probe_space)
    assert err.value.response.status_code == 404
    public = gradio_space_id(hub)
    with pytest.raises(HfHubHTTPError) as err:  # a public one he may read, not manage
        hub.api(hub.bob).get_space_secrets(public)
    assert err.value.response.status_code == 403
    # Encrypted at rest: the database never holds the value.
    for f in hub.data.glob("cove.db*"):
        assert b"s3cr3t-cove-value" not in f.read_bytes()
    env = hub.gradio(probe_space, token=hub.alice, text="env")["ok"].split()
    assert not [k for k in env if k.startswith(("COVE_", "UV_"))]
    assert "HF_ENDPOINT" in env and "HF_TOKEN" in env


def test_private_space_answers_its_readers_only_and_loads_as_its_owner(hub, probe_space):
    # gradio_client sends the token as X-HF-Authorization; without one, or as bob, the Space is not there.
    assert hub.gradio(probe_space, token=hub.alice, text="whoami")["ok"].startswith("sally (read only: ")
    assert "ok" not in hub.gradio(probe_space, token=hub.bob, text="whoami")
    assert "ok" not in hub.gradio(probe_space, text="whoami")
    tokens = hub.cove("token", "list", "sally")
    assert f"space {probe_space}" in tokens  # the app's token is the owner's to see and revoke


def test_app_cannot_read_the_hub_data_folder_or_other_spaces(hub, probe_space):
    assert hub.gradio(probe_space, token=hub.alice, text="db") == {"ok": "refused: PermissionError"}
    assert hub.gradio(probe_space, token=hub.alice, text="data") == {"ok": "refused: PermissionError"}
    # It may see which Spaces run (their ids), not into their working copies (its own included: 0711 folders).
    others = hub.gradio(probe_space, token=hub.alice, text="others")["ok"].split()
    assert others and all(o.endswith(":PermissionError") for o in others), others


def test_app_cannot_connect_to_other_apps_or_local_services(hub, probe_space):
    # Another Space's app listens on this machine's 127.0.0.1 (as this one does): the app's loopback is its own,
    # so it can't reach that port and bypass Cove's access check; Cove still reaches the app, and it Cove.
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        out = hub.gradio(probe_space, token=hub.alice, text=f"connect:{port}")
    assert out == {"ok": "refused: ConnectionRefusedError"}, out
    assert hub.gradio(probe_space, token=hub.alice, text="whoami")["ok"].startswith("sally (read only: ")


def test_a_crashed_app_is_restarted(hub, probe_space):
    api = hub.api(hub.alice)
    assert hub.gradio(probe_space, token=hub.alice, text="crash") == {"ok": "bye"}
    until(lambda: "The app exited with code 3; restarting in 1 s." in "".join(api.fetch_space_logs(probe_space)),
          timeout=30)
    wait_stage(api, probe_space, ("RUNNING",), timeout=120)
    assert hub.gradio(probe_space, token=hub.alice, text="secret") == {"ok": "s3cr3t-cove-value"}


def test_idle_space_sleeps_and_a_visit_wakes_it(hub, probe_space):
    api = hub.api(hub.alice)
    assert api.set_space_sleep_time(probe_space, 1).sleep_time == 1
    wait_stage(api, probe_space, ("SLEEPING",), timeout=30)
    api.set_space_sleep_time(probe_space, 3600)
    # A visit wakes it: the proxy holds the request until the app is up (a browser waits; gradio_client's
    # 5 s timeout may not, as with a sleeping Space on the Hub).
    start = time.time()
    assert httpx.get(api.space_info(probe_space).host, timeout=120,
                     headers={"authorization": f"Bearer {hub.alice}"}).status_code == 200
    print(f"wake on visit: {time.time() - start:.1f} s")
    assert api.get_space_runtime(probe_space).stage == "RUNNING"
    assert hub.gradio(probe_space, token=hub.alice, text="secret") == {"ok": "s3cr3t-cove-value"}


def test_shutdown_stops_every_app_and_start_brings_back_the_running_ones(hub, probe_space):
    base = 200_000
    hub.stop()

    def space_processes() -> list[int]:
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    if p.stat().st_uid > base and p.stat().st_uid < base + 10_000_000:
                        out.append(int(p.name))
                except OSError:
                    pass
        return out

    assert space_processes() == []
    # An environment no Space has used for longer than COVE_SPACES_ENV_TTL goes when the supervisor starts.
    stale = hub.spaces / "envs" / ("f" * 32)
    (stale / "bin").mkdir(parents=True)
    (stale / ".cove-ok").write_text("old\n")
    os.utime(stale, (time.time() - 30 * 86400, time.time() - 30 * 86400))
    hub.start()
    api = hub.api(hub.alice)
    wait_stage(api, probe_space, ("RUNNING",))
    assert not stale.exists() and list((hub.spaces / "envs").iterdir())
    assert hub.gradio(probe_space, token=hub.alice, text="secret") == {"ok": "s3cr3t-cove-value"}


@needs_chromium
def test_private_space_works_in_a_browser_on_its_own_origin(hub, probe_space, browser):
    """COVE_SPACES_DOMAIN: the app on an origin of its own. Its owner uses the private app through the Space page
    (its queue and event-stream requests carry the app's own cookie); outsiders, the anonymous, and the owner after
    signing out are answered as if it were missing; the app's page sees none of Cove's cookies."""
    import re

    from selenium.webdriver.common.by import By

    hub.stop()
    hub.env["COVE_SPACES_DOMAIN"] = "spaces.localhost"
    hub.start()
    api = hub.api(hub.alice)
    wait_stage(api, probe_space, ("RUNNING",))
    app_host = f"{probe_space.replace('/', '-')}.spaces.localhost:{hub.port}"
    assert api.space_info(probe_space).host == f"http://{app_host}/"
    direct = f"http://127.0.0.1:{hub.port}"  # this machine's resolver doesn't know *.localhost; Chromium does

    def on_app(path: str, **headers: str) -> httpx.Response:
        return httpx.get(direct + path, headers={"host": app_host, **headers}, timeout=60)

    # Tokens work on the app's host as on Cove's (gradio_client sends X-HF-Authorization); no sandbox needed there.
    config = on_app("/config", **{"x-hf-authorization": f"Bearer {hub.alice}"})
    assert config.status_code == 200 and "content-security-policy" not in config.headers
    for headers in ({}, {"x-hf-authorization": f"Bearer {hub.bob}"}):
        assert on_app("/config", **headers).status_code == 404
    assert on_app("/api/whoami-v2", authorization=f"Bearer {hub.alice}").status_code != 200  # only the app there
    # The owner's Space page embeds the app's origin with a short-lived token for this session.
    web = httpx.Client(base_url=hub.endpoint, timeout=60)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
    assert web.post("/login", data={"csrf_token": csrf, "username": "sally", "password": "sally-password"}
                    ).status_code == 303
    page = web.get(f"/spaces/{probe_space}").text
    src = re.search(r'id="space-frame" src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert src.startswith(f"http://{app_host}/?__sign=")
    exchanged = on_app(src.split(app_host, 1)[1])
    assert exchanged.status_code == 303 and exchanged.headers["location"] == "/"
    cookie = exchanged.headers["set-cookie"]
    assert cookie.startswith("cove_space=") and "HttpOnly" in cookie and "Domain" not in cookie
    app_cookie = cookie.split(";")[0]
    assert on_app("/config", cookie=app_cookie).status_code == 200
    forged = src.split("__sign=")[1][:-4] + "0000"
    assert on_app(f"/?__sign={forged}").status_code == 404
    # In Chromium, through the Space page: type text, get the prediction.
    browser.get(hub.endpoint + "/login")
    browser.add_cookie({"name": "cove_session", "value": web.cookies["cove_session"], "path": "/"})
    browser.get(f"{hub.endpoint}/spaces/{probe_space}")
    frame = browser.find_element(By.ID, "space-frame")
    assert frame.get_attribute("src").startswith(f"http://{app_host}/?__sign=")
    assert "allow-same-origin" in frame.get_attribute("sandbox")  # its own origin, not Cove's
    browser.switch_to.frame(frame)
    try:
        box = until(lambda: browser.find_elements(By.CSS_SELECTOR, "textarea"))[0]
        box.send_keys("secret")
        submit = until(lambda: [b for b in browser.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Submit"])
        submit[0].click()
        until(lambda: "s3cr3t-cove-value" in [t.get_attribute("value")
                                              for t in browser.find_elements(By.CSS_SELECTOR, "textarea")])
        assert browser.execute_script("return location.host") == app_host
        assert browser.execute_script("return document.cookie") == ""  # not Cove's, and its own is HttpOnly
    finally:
        browser.switch_to.default_content()
    # Signing out of Cove ends the app's cookie; anonymous visitors and other users find nothing.
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/logout").text).group(1)
    assert web.post("/logout", data={"csrf_token": csrf}).status_code == 303
    assert on_app("/config", cookie=app_cookie).status_code == 404
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser.get(f"{hub.endpoint}/spaces/{probe_space}")
    assert not browser.find_elements(By.ID, "space-frame")
    browser.get(f"http://{app_host}/")
    assert "Repository not found" in browser.page_source
    assert httpx.get(f"{hub.endpoint}/spaces/{probe_space}", headers={"authorization": f"Bearer {hub.bob}"}
                     ).status_code == 404


def test_deleting_a_private_space_revokes_the_token_its_app_was_given(hub, probe_space):
    assert f"space {probe_space}" in hub.cove("token", "list", "sally")
    pk = repo_pk(hub, probe_space)
    hub.api(hub.alice).delete_repo(probe_space, repo_type="space")
    until(lambda: f"space {probe_space}" not in hub.cove("token", "list", "sally"), timeout=30)
    assert not (hub.data / "space-logs" / pk).exists() and not (hub.spaces / "apps" / pk).exists()
