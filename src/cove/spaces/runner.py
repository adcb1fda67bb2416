"""The interface between the supervisor (`manager`) and a way of running apps.

A runner builds what a commit needs (`build`), then starts it (`start`) as a `RunningApp` the proxy can reach at
`RunningApp.upstream`. `local.LocalRunner` runs each app as a sandboxed process on this machine; a runner for a
fleet (Kubernetes: one Deployment + Service per Space, the image built from the same environment recipe) would
answer the same calls with a pod's address, and the manager and proxy would not change.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cove.spaces.config import SpaceConfig

Log = Callable[[str], None]


@dataclass
class AppSpec:
    """One commit of one Space, ready to build and run."""

    repo_pk: int
    repo_id: str
    sha: str
    config: SpaceConfig
    files: Path  # a checkout of the commit (read by the runner, copied where the app may read it)
    env: dict[str, str] = field(default_factory=dict)  # variables, secrets, HF_ENDPOINT, SPACE_ID...
    prefix: str = ""  # the public path the app is served under (no trailing slash)


class RunningApp(ABC):
    #: Base URL of the app, e.g. ``http://127.0.0.1:41234``.
    upstream: str
    #: Whether the proxy strips `AppSpec.prefix` from paths (gradio: yes, with GRADIO_ROOT_PATH; streamlit: no,
    #: it serves under ``baseUrlPath`` itself).
    strip_prefix: bool = True
    sha: str

    @abstractmethod
    def exit_code(self) -> int | None:
        """None while it runs."""

    @abstractmethod
    def stop(self, timeout: float = 10) -> None:
        """Stop it and everything it started."""

    def memory(self) -> int | None:
        """Resident bytes of its processes, when known."""
        return None


class Runner(ABC):
    name: str

    def refuses(self, config: SpaceConfig) -> str | None:
        """Why this runner can't run `config` (a CONFIG_ERROR message), or None."""
        return None

    @abstractmethod
    def build(self, spec: AppSpec, log: Log, *, fresh: bool = False) -> object:
        """Build what `spec` needs (raises `build.BuildFailed`); the result is passed to `start`."""

    @abstractmethod
    def start(self, spec: AppSpec, built: object, log: Log) -> RunningApp:
        """Start the app; it may not be healthy yet (the manager waits for `healthy`)."""

    @abstractmethod
    def healthy(self, app: RunningApp, spec: AppSpec) -> bool:
        """One quick check: does the app answer HTTP?"""
