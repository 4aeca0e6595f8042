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
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import _validate
from .._arrays import as_array
from .layer import activate, as_layers, check_chain, pre_activation
from .schemes import as_generator, fill_constant, stream_for
from ..init import orthogonal_
from .._typing import Array, FloatArray, GeneratorLike
from ..generator import Generator
from .layer import Layer, LayerSpec
from ..progress import Progress, reporter
from .records import LsuvRecord
from .reports import LsuvReport
from .transaction import all_or_nothing, check_finite


def check_options(tol: float, max_iter: int, mean_correction: bool, orthogonal_init: bool,
                  by_name: bool) -> tuple[float, int, bool, bool, bool]:
    """lsuv's options (NumPy and torch alike), validated before any layer is touched."""
    return (_validate.real(tol, "tol", _validate.BOUNDED_GT_0_LT_1),
            _validate.integer(max_iter, "max_iter", minimum=1),
            _validate.flag(mean_correction, "mean_correction"),
            _validate.flag(orthogonal_init, "orthogonal_init"),
            _validate.flag(by_name, "by_name"))


class Moments:
    """Pooled per-unit sums of a layer's outputs over several batches."""

    def __init__(self) -> None:
        self.count = 0
        self.total: FloatArray | float = 0.0
        self.squares: FloatArray | float = 0.0

    def add(self, z: object, unit_axis: int) -> None:
        z = np.asarray(z, np.float64)
        axes = tuple(a for a in range(z.ndim) if a != unit_axis % z.ndim)
        self.count += z.size // z.shape[unit_axis]
        self.total = self.total + z.sum(axis=axes)
        self.squares = self.squares + (z * z).sum(axis=axes)

    def unit_means(self) -> FloatArray:
        return np.asarray(self.total) / self.count

    def variance(self, name: str | None) -> float:
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


def as_batches(data: object) -> list[Any]:
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("data must hold at least one batch")
        return list(data)
    return [data]


def rescale_to_unit_variance(name: str, measure: Callable[[], Moments], scaled: list[Array], bias: Array | None,
                             tol: float, max_iter: int, mean_correction: bool) -> LsuvRecord:
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


def lsuv(layers: Iterable[LayerSpec], data: npt.ArrayLike | list[npt.ArrayLike] | tuple[npt.ArrayLike, ...], *,
         tol: float = 0.1, max_iter: int = 10, mean_correction: bool = False, orthogonal_init: bool = True,
         by_name: bool = False, generator: GeneratorLike = None, progress: Progress = None) -> LsuvReport:
    """Layer-sequential unit variance (LSUV) for a NumPy model, in place.

    Mishkin and Matas (2016): every weight is first made orthogonal (bias 0);
    then, layer by layer in forward order, its output z = W x + b on the data
    is measured and W <- W / sqrt(Var(z)), b <- b / sqrt(Var(z)) until
    abs(Var(z) - 1) < `tol` or `max_iter` rescalings were made. Var(z) pools all
    units and all batches. A failed call changes no array and no generator.

    Parameters
    ----------
    layers : list
        The model: `Layer` objects, dicts of Layer fields, or (weight, bias,
        activation[, param]) tuples, in forward order. Dense layers only.
    data : array_like or list of array_like
        A batch of inputs (batch, in), or a list of batches.
    tol : float, default 0.1
        The tolerance on Var(z), in (0, 1).
    max_iter : int, default 10
        The most rescalings per layer.
    mean_correction : bool, default False
        Before each rescaling, subtract from each unit's bias the mean of its
        output over all the batches (not in the paper).
    orthogonal_init : bool, default True
        Start from orthogonal weights and zero biases; False starts from the
        weights as they are.
    by_name : bool, default False
        Draw each orthogonal weight from ``generator.stream(f"{name}.weight")``.
    generator : None, int, Generator, Stream, numpy.random.Generator or torch.Generator, optional
        Where the random stream comes from. None: the default generator
        (`manual_seed`), or for a torch tensor a key drawn from torch's default
        generator, so ``torch.manual_seed`` governs it. An int s: key s, stream
        0, the same values at every call. A `Generator`: its next stream.
    progress : bool or callable, optional
        True: a tqdm progress bar over the layers, when tqdm is installed
        (`varinit.progress`); a callable is called as ``progress(done,
        total)`` after each layer.
        ``Generator.stream(name)``: the stream of that name. A NumPy or torch
        generator: a fresh 64-bit key drawn from it.

    Returns
    -------
    LsuvReport
        A list of LsuvRecord, one per layer: (name, iterations, variance,
        converged), with a summary, a text table and a notebook HTML view.

    References
    ----------
    .. [1] D. Mishkin and J. Matas, "All you need is a good init", ICLR 2016,
       arXiv:1511.06422.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layers = [(np.empty((64, 32), np.float32), np.empty(64, np.float32), "tanh"),
    ...           (np.empty((10, 64), np.float32), np.empty(10, np.float32), "linear")]
    >>> data = np.random.default_rng(0).standard_normal((256, 32))
    >>> for record in varinit.layers.lsuv(layers, data, generator=0):
    ...     print(record.name, record.iterations, f"{record.variance:.3f}", record.converged)
    0 1 1.000 True
    1 1 1.000 True
    """
    tol, max_iter, mean_correction, orthogonal_init, by_name = check_options(
        tol, max_iter, mean_correction, orthogonal_init, by_name)
    model = as_layers(layers)
    batches = [np.asarray(x, np.float64) for x in as_batches(data)]
    check_finite(batches)
    check_chain(model)
    source = as_generator(generator, False) if orthogonal_init else None
    changed = [t for layer in model for t in (layer.weight, layer.bias, layer.g)]
    step = reporter(progress, "varinit: lsuv", unit="layers")
    with all_or_nothing(changed, [source] if source is not None else []):
        return _lsuv(model, batches, tol, max_iter, mean_correction, source, by_name, step)


def _lsuv(layers: list[Layer], batches: list[FloatArray], tol: float, max_iter: int, mean_correction: bool,
          generator: Generator | None, by_name: bool,
          step: Callable[[int, int], object] | None = None) -> LsuvReport:
    if generator is not None:
        for layer in layers:
            weight_name = f"{layer.name}.weight"
            orthogonal_(layer.weight, generator=stream_for(generator, weight_name, by_name))
            if layer.bias is not None:
                fill_constant(layer.bias, f"{layer.name}.bias", 0.0)
    report = LsuvReport()
    hidden = batches
    for layer in layers:
        outputs: list[FloatArray] = []

        def measure(layer: Layer = layer, hidden: list[FloatArray] = hidden) -> Moments:
            moments = Moments()
            outputs[:] = [pre_activation(layer, h) for h in hidden]
            for z in outputs:
                moments.add(z, -1)
            return moments

        # With weight norm, g carries the scale (rescaling v would be undone by the norm).
        scaled = [as_array(layer.g) if layer.g is not None else as_array(layer.weight)]
        bias = as_array(layer.bias) if layer.bias is not None else None
        report.append(rescale_to_unit_variance(str(layer.name), measure, scaled, bias, tol, max_iter, mean_correction))
        hidden = [activate(layer, z) for z in outputs]
        if step is not None:
            step(len(report), len(layers))
    return report
