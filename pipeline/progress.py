"""Progress bars for long work (tqdm): shown on a terminal, silent when output is redirected."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it", **kwargs: Any
) -> Iterable[T]:
    """Wraps ``iterable`` in a tqdm bar on stderr; ``disable=None`` hides it when stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=None, leave=False, dynamic_ncols=True, **kwargs)
