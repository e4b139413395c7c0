"""Progress bars for long work (tqdm): on a terminal, as widgets in a notebook, silent when output is redirected."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def in_notebook() -> bool:
    """True inside a Jupyter kernel (IPython with a kernel), where stderr is not a terminal but is shown."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None  # type: ignore[attr-defined]
    return shell is not None and getattr(shell, "kernel", None) is not None


def _tqdm_class(notebook: bool) -> type:
    """tqdm's auto mode (a widget) in a notebook that has ipywidgets, else the plain text bar (tqdm's auto
    mode would fall back to it too, with a warning about ipywidgets)."""
    if notebook:
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            pass
        else:
            from tqdm.auto import tqdm

            return tqdm
    from tqdm.std import tqdm

    return tqdm


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it", **kwargs: Any
) -> Iterable[T]:
    """Wraps ``iterable`` in a tqdm bar on stderr. ``disable=None`` hides it when stderr is not a terminal,
    except in a notebook, where stderr is shown below the cell."""
    notebook = in_notebook()
    bar = _tqdm_class(notebook)
    disable = False if notebook else None
    return bar(iterable, desc=desc, total=total, unit=unit, disable=disable, leave=False, dynamic_ncols=True, **kwargs)
