"""A read-only sequence over fixed-size records left packed in one buffer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar, overload

import numpy as np

T = TypeVar("T")


class PackedRecords(Sequence[T]):
    """Records kept as one numpy record array (a view on their bytes); items are built on demand.

    Subclasses name the item type in ``_item``; bulk work reads ``rows`` columns as arrays, so a large
    table never becomes one Python object per record.
    """

    __slots__ = ("rows",)

    def __init__(self, rows: np.ndarray) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, i: int) -> T: ...
    @overload
    def __getitem__(self, i: slice) -> list[T]: ...
    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._item(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("record index out of range")
        return self._item(i)

    def _item(self, i: int) -> T:
        raise NotImplementedError
