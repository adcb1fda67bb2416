"""What a Space asks for, read from one commit: the SDK and its version, the app file, the requirements."""

from __future__ import annotations

import re
from dataclasses import dataclass

from cove.services.cards import parse_card

#: The Hub's stages (``huggingface_hub.SpaceStage``).
NO_APP_FILE = "NO_APP_FILE"
CONFIG_ERROR = "CONFIG_ERROR"
BUILDING = "BUILDING"
BUILD_ERROR = "BUILD_ERROR"
APP_STARTING = "APP_STARTING"
RUNNING = "RUNNING"
RUNNING_BUILDING = "RUNNING_BUILDING"
RUNNING_APP_STARTING = "RUNNING_APP_STARTING"
RUNTIME_ERROR = "RUNTIME_ERROR"
PAUSED = "PAUSED"
SLEEPING = "SLEEPING"
STOPPED = "STOPPED"

SDKS = ("gradio", "streamlit", "static", "docker")
_VERSION = re.compile(r"^[0-9][0-9A-Za-z.+!-]{0,40}$")
_PYTHON = re.compile(r"^3(\.[0-9]{1,2}){0,2}$")
_APP_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,200}$")


class ConfigProblem(Exception):
    """The commit can't run: ``stage`` (NO_APP_FILE or CONFIG_ERROR) and a message for the owner."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message


@dataclass(frozen=True)
class SpaceConfig:
    sdk: str
    sdk_version: str | None
    app_file: str
    python_version: str | None
    requirements: str
    meta: dict


def read_config(files: dict[str, bytes | None], sdk_default: str | None, *, allow_packages: bool) -> SpaceConfig:
    """The config of a commit from its files (``None``: the path exists but is not read). Raises `ConfigProblem`."""
    meta: dict = {}
    readme = files.get("README.md")
    if readme is not None:
        meta, _, _ = parse_card(readme.decode("utf-8", "replace"))
    sdk = meta.get("sdk") or sdk_default
    if sdk not in SDKS:
        if sdk is None and "index.html" in files:
            sdk = "static"
        elif sdk is None and "app.py" not in files:
            raise ConfigProblem(NO_APP_FILE, "This Space has no app file yet: push an app.py (or index.html).")
        else:
            raise ConfigProblem(CONFIG_ERROR, f"Unknown sdk {sdk!r}: use one of {', '.join(SDKS)} in README.md")
    if sdk == "docker":
        raise ConfigProblem(CONFIG_ERROR, "Docker Spaces need a container runner, which this hub does not have "
                                          "(it runs gradio, streamlit and static Spaces).")
    version = meta.get("sdk_version")
    version = str(version) if version is not None else None
    if version is not None and not _VERSION.match(version):
        raise ConfigProblem(CONFIG_ERROR, f"Invalid sdk_version {version!r} in README.md")
    python = meta.get("python_version")
    python = str(python) if python is not None else None
    if python is not None and not _PYTHON.match(python):
        raise ConfigProblem(CONFIG_ERROR, f"Invalid python_version {python!r} in README.md")
    app_file = meta.get("app_file") or ("index.html" if sdk == "static" else "app.py")
    if not isinstance(app_file, str) or not _APP_FILE.match(app_file) or ".." in app_file.split("/"):
        raise ConfigProblem(CONFIG_ERROR, f"Invalid app_file {app_file!r} in README.md")
    if app_file not in files:
        raise ConfigProblem(NO_APP_FILE, f"This Space has no {app_file} yet: push it to run the {sdk} app.")
    if "packages.txt" in files and sdk != "static" and not allow_packages:
        raise ConfigProblem(CONFIG_ERROR, "packages.txt (Debian packages) is not allowed on this hub: its "
                                          "administrator can allow it with COVE_SPACES_ALLOW_PACKAGES=1.")
    reqs = (files.get("requirements.txt") or b"").decode("utf-8", "replace")
    for line in reqs.splitlines():
        s = line.strip()
        if s.startswith("-") and not s.startswith(("-r ", "--requirement")) and s.split()[0] in (
                "--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host"):
            raise ConfigProblem(CONFIG_ERROR, f"requirements.txt may not choose the package index: {s!r}")
    return SpaceConfig(sdk=sdk, sdk_version=version, app_file=app_file, python_version=python,
                       requirements=reqs, meta=meta)
