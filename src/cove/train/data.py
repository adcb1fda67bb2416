"""Loading the dataset through ``datasets``, choosing splits, and the deterministic split with its hash."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .hub import is_local
from .recipe import DatasetSpec, RecipeError

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

log = logging.getLogger(__name__)

FILE_BUILDERS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".parquet": "parquet",
    ".txt": "text",
}
VALIDATION_NAMES = ("validation", "valid", "dev", "val")
TEST_NAMES = ("test",)


@dataclass
class Splits:
    """The three splits a run uses, and how they were obtained."""

    train: Dataset
    validation: Dataset
    test: Dataset
    info: dict[str, Any] = field(default_factory=dict)


def load_raw(spec: DatasetSpec, revision: str | None) -> DatasetDict:
    """Load every split of the dataset: a hub repo at a pinned revision, a local folder or a data file."""
    from datasets import DatasetDict, load_dataset

    try:
        if is_local(spec.id):
            path = Path(spec.id).expanduser()
            if path.is_file():
                builder = FILE_BUILDERS.get(path.suffix.lower())
                if builder is None:
                    raise RecipeError(
                        f"dataset.id {spec.id!r}: unsupported file type; use one of {list(FILE_BUILDERS)}"
                    )
                kwargs: dict[str, Any] = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
                loaded = load_dataset(builder, data_files={"train": str(path)}, **kwargs)
            else:
                loaded = load_dataset(str(path), name=spec.config, data_files=spec.data_files)
        else:
            loaded = load_dataset(spec.id, name=spec.config, revision=revision, data_files=spec.data_files)
    except (FileNotFoundError, ValueError) as err:
        if isinstance(err, RecipeError):
            raise
        raise RecipeError(f"cannot load dataset {spec.id!r}: {err}") from err
    if not isinstance(loaded, DatasetDict):
        loaded = DatasetDict({"train": loaded})
    return loaded


def _pick(dsd: DatasetDict, wanted: str | None, names: Sequence[str], what: str) -> str | None:
    if wanted is not None:
        if wanted not in dsd:
            raise RecipeError(f"dataset has no split {wanted!r} (it has {sorted(dsd)}); fix dataset.{what}")
        return wanted
    return next((n for n in names if n in dsd), None)


def _rows_digest(ds: Dataset, columns: Sequence[str]) -> str:
    digest = hashlib.sha256()
    cols = [ds[c] for c in columns]
    for row in zip(*cols, strict=True):
        digest.update(json.dumps(row, sort_keys=True, default=str).encode() + b"\n")
    return digest.hexdigest()


def split_hash(splits: dict[str, Dataset], columns: Sequence[str]) -> dict[str, str]:
    """sha256 of each split's rows (the used columns, in order), and of all three together."""
    hashes = {name: _rows_digest(ds, columns) for name, ds in splits.items()}
    hashes["all"] = hashlib.sha256(json.dumps(hashes, sort_keys=True).encode()).hexdigest()
    return hashes


def _three_way(
    n: int, strata: list[Any] | None, val: float, test: float, seed: int, need_val: bool, need_test: bool
) -> tuple[list[int], list[int], list[int], bool]:
    """Deterministic (stratified when possible) index split of ``range(n)``."""
    from sklearn.model_selection import train_test_split

    idx = list(range(n))
    stratified = strata is not None

    def cut(pool: list[int], frac: float) -> tuple[list[int], list[int]]:
        nonlocal stratified
        labels = [strata[i] for i in pool] if strata is not None and stratified else None
        try:
            a, b = train_test_split(pool, test_size=frac, random_state=seed, stratify=labels)
        except ValueError:  # a class too small to stratify: fall back, and record it
            stratified = False
            a, b = train_test_split(pool, test_size=frac, random_state=seed)
        return sorted(a), sorted(b)

    test_idx: list[int] = []
    val_idx: list[int] = []
    rest = idx
    if need_test:
        rest, test_idx = cut(rest, test)
    if need_val:
        rest, val_idx = cut(rest, val / (1 - test) if need_test else val)
    return rest, val_idx, test_idx, stratified


def _sample(ds: Dataset, n: int, seed: int) -> Dataset:
    """At most ``n`` rows, drawn with a seeded shuffle (files are often sorted by label), in original order."""
    if len(ds) <= n:
        return ds
    import random

    return ds.select(sorted(random.Random(seed).sample(range(len(ds)), n)))


def make_splits(
    dsd: DatasetDict,
    spec: DatasetSpec,
    *,
    strata_of: Callable[[Dataset], list[Any]] | None,
    hash_columns: Sequence[str],
) -> Splits:
    """Train/validation/test: the dataset's own splits, carving whichever is missing out of train."""
    train_name = _pick(dsd, spec.train_split, (), "train_split")
    assert train_name is not None
    val_name = _pick(dsd, spec.validation_split, VALIDATION_NAMES, "validation_split")
    test_name = _pick(dsd, spec.test_split, TEST_NAMES, "test_split")
    train = dsd[train_name]
    if spec.max_train_samples and not (val_name and test_name):
        cap = spec.max_train_samples + int(spec.max_train_samples * (spec.split.validation + spec.split.test))
        train = _sample(train, cap, spec.split.seed)
    info: dict[str, Any] = {"source": {"train": train_name, "validation": val_name, "test": test_name}}
    if val_name is None or test_name is None:
        strata = strata_of(train) if (strata_of and spec.split.stratify) else None
        tr, va, te, stratified = _three_way(
            len(train),
            strata,
            spec.split.validation,
            spec.split.test,
            spec.split.seed,
            need_val=val_name is None,
            need_test=test_name is None,
        )
        validation = train.select(va) if val_name is None else dsd[val_name]
        test = train.select(te) if test_name is None else dsd[test_name]
        train = train.select(tr)
        info.update(
            created=True,
            seed=spec.split.seed,
            fractions={"validation": spec.split.validation, "test": spec.split.test},
            stratified=stratified,
        )
        if not stratified and strata is not None:
            log.warning("a label is too rare to stratify the split; the split is random (seeded)")
    else:
        validation, test = dsd[val_name], dsd[test_name]
        info["created"] = False
    if spec.max_train_samples:
        train = _sample(train, spec.max_train_samples, spec.split.seed)
    if spec.max_eval_samples:
        validation = _sample(validation, spec.max_eval_samples, spec.split.seed)
        test = _sample(test, spec.max_eval_samples, spec.split.seed)
    info["sizes"] = {"train": len(train), "validation": len(validation), "test": len(test)}
    info["hash"] = split_hash({"train": train, "validation": validation, "test": test}, hash_columns)
    return Splits(train, validation, test, info)


def require_columns(ds: Dataset, wanted: dict[str, str | None], *, hint: str) -> None:
    """Fail with one message if a named column is missing."""
    for key, col in wanted.items():
        if col is not None and col not in ds.column_names:
            match = [c for c in ds.column_names if c.lower() == col.lower()]
            fix = f"did you mean {match[0]!r}?" if match else f"set dataset.{key} to one of {ds.column_names}"
            raise RecipeError(f"column {col!r} (dataset.{key}) is not in the dataset; {fix}{hint}")


def infer_column(
    ds: Dataset, key: str, candidates: Sequence[str], *, kind: str | None = None, exclude: Sequence[str] = ()
) -> str:
    """Find the column for ``key`` by common names, else the only column of the right kind."""
    for name in candidates:
        if name in ds.column_names and name not in exclude:
            return name
    if kind is not None:
        typed = [c for c, f in ds.features.items() if c not in exclude and getattr(f, "dtype", None) == kind]
        if len(typed) == 1:
            return typed[0]
    raise RecipeError(
        f"cannot tell which column is the {key.removesuffix('_column')} column "
        f"(columns: {ds.column_names}); set dataset.{key}"
    )
