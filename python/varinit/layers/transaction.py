"""All or nothing for the whole-model functions that change a model in steps
(lsuv, weight_norm_init): if any step fails, every tensor they may have
written gets its old values back and the generators their old state, so a
failed call leaves the model and the streams as they were.
"""
from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, cast

import numpy as np

from ..generator import Generator

from .._arrays import as_array, mark_written
from ..generator import default_generator


@contextlib.contextmanager
def all_or_nothing(tensors: Iterable[object], generators: Iterable[Generator] = ()) -> Iterator[None]:
    """Snapshot `tensors` (None entries skipped) and the state of `generators`
    (varinit.Generator objects; the default generator and torch's default
    generator always); restore them if the block raises, and bump the torch
    tensors' version counters if it succeeds."""
    written = [t for t in tensors if t is not None]
    saved = [np.array(as_array(t), copy=True) for t in written]
    restored = [default_generator] + [g for g in generators if g is not default_generator]
    states = [g.get_state() for g in restored]
    torch = sys.modules.get("torch")
    torch_state = torch.get_rng_state() if torch is not None else None
    try:
        yield
    except BaseException:
        for tensor, values in zip(written, saved):
            as_array(tensor)[...] = values
        for generator, state in zip(restored, states):
            generator.set_state(state)
        if torch is not None and torch_state is not None:
            torch.set_rng_state(torch_state)
        raise
    for tensor in written:
        mark_written(tensor)


def check_finite(batches: Sequence[object], name: str = "data") -> None:
    """ValueError naming `name` unless every floating value of every batch is finite:
    one NaN would otherwise turn every weight it reaches into NaN."""
    for index, batch in enumerate(batches):
        if hasattr(batch, "detach"):        # a torch tensor, of any dtype (bfloat16 has no NumPy twin)
            tensor = cast(Any, batch)
            finite = not tensor.is_floating_point() or bool(tensor.detach().isfinite().all())
        else:
            values = np.asarray(batch)
            finite = not np.issubdtype(values.dtype, np.floating) or bool(np.all(np.isfinite(values)))
        if not finite:
            where = f"{name}[{index}]" if len(batches) > 1 else name
            raise ValueError(f"{where} has NaN or infinite values; expected finite inputs")
