"""progress=: how the long calls (LSUV, the writers, block fills, whole-model init)
report how far they are.

- None or False: quiet;
- a callable: called as progress(done, total) after each step;
- True: a tqdm progress bar (tqdm.auto: a widget in a notebook, text in a
  terminal) when tqdm is installed; without tqdm the call runs quietly and
  says so once in a warning (pip install tqdm).
"""
from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Union

Progress = Union[bool, Callable[[int, int], object], None]
# what a long loop calls after each step: progress(done, total), or None for quiet
Step = Union[Callable[[int, int], object], None]

_warned_missing = False


def reporter(progress: Progress, desc: str, unit: str = "it") -> Step:
    """The callable progress(done, total) behind a progress= argument, or None for quiet."""
    if progress is None or progress is False:
        return None
    if progress is True:
        return _bar(desc, unit)
    if callable(progress) and not isinstance(progress, bool):
        return progress
    raise TypeError(f"progress must be True, False, None or a callable progress(done, total), "
                    f"got {type(progress).__name__}")


def _bar(desc: str, unit: str) -> Step:
    global _warned_missing
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if not _warned_missing:
            _warned_missing = True
            warnings.warn("progress=True shows a bar with tqdm, which is not installed (pip install tqdm); "
                          "running quietly", UserWarning, stacklevel=3)
        return None
    state: dict[str, Any] = {}

    def update(done: int, total: int) -> None:
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, desc=desc, unit=unit, leave=False)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update
