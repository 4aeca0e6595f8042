"""Parametrizations kept in step with the parameters init_module writes.

torch's spectral norm (`torch.nn.utils.parametrizations.spectral_norm`) divides a
weight by an estimate of its largest singular value, held in the buffers `_u` and
`_v` and refined by one power iteration per training forward pass; when it is
registered it runs 15 iterations on the weight it then holds. A weight drawn again
afterwards keeps the vectors of the old one, whose estimate of the new one's
largest singular value is a fraction of it: the layer's output at the first
forward passes is then several times what the parametrization means (4 to 5 times
on a 512-wide layer). So after init_module writes such a weight, the same 15
iterations run on the new one, as at registration (Miyato et al. 2018).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .._arrays import is_dtensor

# the power iterations torch's spectral norm runs when it is registered
SPECTRAL_ITERATIONS = 15


def spectral_norm_of(module: Any) -> Any | None:
    """The spectral norm parametrizing a module's weight when it is the weight's only
    parametrization, else None."""
    found = getattr(getattr(module, "parametrizations", None), "weight", None)
    if found is None or len(found) != 1 or type(found[0]).__name__ != "_SpectralNorm":
        return None
    return found[0]


def refresh_spectral_norms(model: torch.nn.Module, written: Iterable[str]) -> None:
    """Run SPECTRAL_ITERATIONS power iterations of each spectral norm whose weight
    (`<module>.parametrizations.weight.original`) is among the parameter names
    `written`, on its new values (nothing for meta or sharded weights)."""
    names = set(written)
    for prefix, module in model.named_modules():
        spectral = spectral_norm_of(module)
        original = f"{prefix}.parametrizations.weight.original" if prefix else "parametrizations.weight.original"
        if spectral is None or original not in names:
            continue
        weight = module.parametrizations.weight.original
        if weight.ndim > 1 and not weight.is_meta and not is_dtensor(weight):
            with torch.no_grad():
                spectral._power_method(spectral._reshape_weight_to_matrix(weight), SPECTRAL_ITERATIONS)
