"""Cove imports only what its install declares.

The test environment holds more than a user's install (httpx, pytest, the training stack), so a module that
imports an undeclared package passes every other test and then fails on a fresh machine, as `cove demo` (the
README's run command) once did with httpx. Here each module's imports must come from the standard library,
Cove itself, or the packages its install brings: the base dependencies, plus the extra that owns the module.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
import tomllib
from functools import cache
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "cove"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

#: Modules that may import an extra's packages (the extra is what `cove train` / the S3 store need).
EXTRA_OWNERS = {
    "train": ("train/", "metrics/", "cli/train.py"),
    "s3": ("storage/blobs_s3.py",),
    "inference": ("inference/tasks.py", "inference/worker.py"),  # the model workers' own processes
    "postgres": ("db/changes.py",),  # the LISTEN connection, opened only on a PostgreSQL database
}


@cache
def _closure(requirements: tuple[str, ...]) -> frozenset[str]:
    """Normalised names of the distributions these requirements install, transitively."""
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        name = _norm(req.name)
        key = name + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        seen.add(name)
        try:
            reqs = md.requires(req.name) or []
        except md.PackageNotFoundError:
            continue  # optional on this platform; nothing below it can be imported either
        for sub in reqs:
            sub_req = Requirement(sub)
            for wanted in ("", *req.extras):
                todo.append((sub_req, wanted))
    return frozenset(n for n in seen if "[" not in n)


def _norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _imports(path: Path) -> set[str]:
    """Top-level names of the absolute imports in one module."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_import_is_declared() -> None:
    providers = md.packages_distributions()
    base = tuple(PROJECT["dependencies"])
    extras = PROJECT["optional-dependencies"]
    undeclared = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel.startswith("db/migrations/"):
            continue
        allowed = base + tuple(r for extra, owned in EXTRA_OWNERS.items() if rel.startswith(owned)
                               for r in extras[extra])
        installed = _closure(allowed)
        for name in sorted(_imports(path)):
            if name in sys.stdlib_module_names or name in ("cove", "__future__"):
                continue
            dists = {_norm(d) for d in providers.get(name, [])}
            if not dists & installed:
                undeclared.append(f"{rel}: {name} (from {sorted(dists) or 'nothing installed'})")
    assert not undeclared, "imports not declared in pyproject.toml:\n" + "\n".join(undeclared)


def test_the_check_sees_an_undeclared_import() -> None:
    providers = md.packages_distributions()
    assert "pytest" in {_norm(d) for d in providers["pytest"]}
    assert "pytest" not in _closure(tuple(PROJECT["dependencies"]))
    assert "fastapi" in _closure(tuple(PROJECT["dependencies"]))
