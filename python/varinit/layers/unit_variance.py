"""Layer-sequential unit-variance (LSUV) initialization, Mishkin & Matas 2016
("All you need is a good init", ICLR).

1. Pre-initialize each weight layer with an orthogonal matrix (Saxe et al. 2014)
   and a zero bias.
2. For each layer in forward order: compute its output z on the data (with
   the layers before it already fixed) and, while |Var(z) - 1| >= tol and
   fewer than max_iter rescalings were made, divide its weight (and bias) by
   sqrt(Var(z)). Var(z) is the variance of all the layer's outputs, pooled
   over the batches.
Optional mean correction (not in the paper): before each rescaling, subtract
from each output unit's bias the mean of its output over all the batches, so
the layer's outputs start centred; rescaling weight and bias together keeps
them centred.

`lsuv` takes a NumPy model (a list of dense layers, see varinit.layers);
`lsuv_module` (exported as `varinit.torch.lsuv`) takes a torch.nn.Module and
watches its Linear and Conv layers through forward hooks.
"""
import math
import numpy as np

from .. import _validate
from .._arrays import as_array
from .layer import activate, as_layers, check_chain, pre_activation
from .schemes import as_generator, fill_constant, stream_for
from ..init import orthogonal_
from .records import LsuvRecord
from .transaction import all_or_nothing, check_finite


def check_options(tol, max_iter, mean_correction, orthogonal_init, by_name):
    """lsuv's options (NumPy and torch alike), validated before any layer is touched."""
    return (_validate.real(tol, "tol", _validate.BOUNDED_GT_0_LT_1),
            _validate.integer(max_iter, "max_iter", minimum=1),
            _validate.flag(mean_correction, "mean_correction"),
            _validate.flag(orthogonal_init, "orthogonal_init"),
            _validate.flag(by_name, "by_name"))


class Moments:
    """Pooled per-unit sums of a layer's outputs over several batches."""

    def __init__(self):
        self.count = 0
        self.total = 0.0
        self.squares = 0.0

    def add(self, z, unit_axis):
        z = np.asarray(z, np.float64)
        axes = tuple(a for a in range(z.ndim) if a != unit_axis % z.ndim)
        self.count += z.size // z.shape[unit_axis]
        self.total = self.total + z.sum(axis=axes)
        self.squares = self.squares + (z * z).sum(axis=axes)

    def unit_means(self):
        return self.total / self.count

    def variance(self, name):
        """Variance of all outputs pooled (all units, all batches); a
        ValueError when it is zero up to rounding (constant outputs), since
        no rescaling can make it 1."""
        n = self.count * np.size(self.total)
        mean = np.sum(self.total) / n
        square = float(np.sum(self.squares) / n)
        variance = square - mean * mean
        # E[z^2] - mean^2 in float64 loses ~1e-16 * E[z^2]; float32 outputs are
        # themselves only good to ~1e-7 relative, so below 1e-12 * E[z^2] it is noise.
        if not variance > 1e-12 * square:
            raise ValueError(
                f"layer {name}: its output has zero variance on the data, so it cannot be rescaled"
            )
        return float(variance)


def as_batches(data):
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data must hold at least one batch")
        return list(data)
    return [data]


def rescale_to_unit_variance(name, measure, scaled, bias, tol, max_iter, mean_correction):
    """LSUV's loop for one layer: measure() gives the Moments of its output on the
    data; the arrays in `scaled` and the bias are divided by the output's std
    until its variance is 1 within tol or max_iter rescalings were made (with
    mean_correction, the bias first takes off each unit's mean). The LsuvRecord."""
    iterations = 0
    while True:
        moments = measure()
        if mean_correction and bias is not None and iterations == 0:
            bias -= moments.unit_means().astype(bias.dtype)
            moments = measure()
        variance = moments.variance(name)
        converged = abs(variance - 1.0) < tol
        if converged or iterations == max_iter:
            return LsuvRecord(name, iterations, variance, converged)
        for arr in scaled + [bias]:
            if arr is not None:
                arr *= 1.0 / math.sqrt(variance)
        iterations += 1


def lsuv(layers, data, *, tol=0.1, max_iter=10, mean_correction=False, orthogonal_init=True,
         by_name=False, generator=None):
    """LSUV for a NumPy model: a list of dense layers (varinit.layers.Layer,
    dicts or (weight, bias, activation) tuples) and a batch (or a list of
    batches) of inputs of shape (batch, in). Weights are changed in place.

    Var(W x + b) = 1 within tol for every layer, in order (Mishkin & Matas 2016).
    Returns a list of LsuvRecord(name, iterations, variance, converged).

    Example::

        >>> layers = [(np.empty((64, 32), np.float32), np.empty(64, np.float32), "tanh"),
        ...           (np.empty((10, 64), np.float32), np.empty(10, np.float32), "linear")]
        >>> report = varinit.layers.lsuv(layers, np.random.default_rng(0).standard_normal((256, 32)), generator=0)
    """
    tol, max_iter, mean_correction, orthogonal_init, by_name = check_options(
        tol, max_iter, mean_correction, orthogonal_init, by_name)
    layers = as_layers(layers)
    batches = [np.asarray(x, np.float64) for x in as_batches(data)]
    check_finite(batches)
    check_chain(layers)
    generator = as_generator(generator, False) if orthogonal_init else None
    changed = [t for layer in layers for t in (layer.weight, layer.bias, layer.g)]
    with all_or_nothing(changed, [generator] if generator is not None else []):
        return _lsuv(layers, batches, tol, max_iter, mean_correction, generator, by_name)


def _lsuv(layers, batches, tol, max_iter, mean_correction, generator, by_name):
    if generator is not None:
        for layer in layers:
            weight_name = f"{layer.name}.weight"
            orthogonal_(layer.weight, generator=stream_for(generator, weight_name, by_name))
            if layer.bias is not None:
                fill_constant(layer.bias, f"{layer.name}.bias", 0.0)
    report = []
    hidden = batches
    for layer in layers:
        outputs = []

        def measure(layer=layer, hidden=hidden):
            moments = Moments()
            outputs[:] = [pre_activation(layer, h) for h in hidden]
            for z in outputs:
                moments.add(z, -1)
            return moments

        # With weight norm, g carries the scale (rescaling v would be undone by the norm).
        scaled = [as_array(layer.g) if layer.g is not None else as_array(layer.weight)]
        bias = as_array(layer.bias) if layer.bias is not None else None
        report.append(rescale_to_unit_variance(layer.name, measure, scaled, bias, tol, max_iter, mean_correction))
        hidden = [activate(layer, z) for z in outputs]
    return report
