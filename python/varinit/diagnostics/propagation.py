"""varinit.propagate: one forward and backward pass, measured per layer, beside mean-field theory.

`propagate(network)` takes a NumPy network (a list of dense layers, see
varinit.diagnostics.mlp; `mlp_spec` builds one) or a torch.nn.Module (see
varinit.diagnostics.torch_modules), runs a batch of inputs forward, injects a random
unit-variance gradient at the output and backpropagates it, and returns a
varinit.diagnostics.report.PropagationReport. Measurements are in float64; values that
overflow float64 (N(0, 1) weights at a few hundred layers) are reported as
inf/nan with the status "exploding", never as an error.

Inputs and the output gradient, when not given, are N(0, 1) draws (see
varinit.diagnostics.measurement).
"""
from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union, cast

import numpy as np

from .. import _validate
from ..generator import check_seed
from .._typing import ActivationName, FloatArray
from ..layers.layer import Layer, LayerSpec, as_layers, backward, check_chain, dense_matrix, forward
from . import mean_field as mf
from .measurement import INPUT_STREAM, draw_normal, layer_stats, measure, second_moment
from .mean_field import criticality
from .precision import DEFAULT_INT8_CLIP, FORMATS, PrecisionFormat, range_checks
from .report import PropagationReport
from .statuses import EXPLODING_RATIO, VANISHING_RATIO

if TYPE_CHECKING:
    import torch

DEFAULT_BATCH = 128


def _check_options(batch: int, seed: int, precision: bool, formats: Sequence[PrecisionFormat],
                   int8_clip: float) -> tuple[int, int, bool, tuple[PrecisionFormat, ...], float]:
    """The options of propagate, validated before anything runs."""
    return (_validate.integer(batch, "batch", minimum=1), check_seed(seed), _validate.flag(precision, "precision"),
            _validate.choices(formats, "formats", FORMATS),
            _validate.real(int8_clip, "int8_clip", _validate.POSITIVE))


def _as_batch(array: Any, name: str, shape_hint: str) -> FloatArray:
    arr = np.asarray(array, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be an array of shape (batch, ...) with batch >= 1, got shape {arr.shape}"
                         f"{shape_hint}")
    return arr


def propagate(network: Union[Iterable[LayerSpec], torch.nn.Module], inputs: Any = None, *, batch: int = DEFAULT_BATCH,
              seed: int = 0, output_grad: Any = None, precision: bool = False,
              formats: Sequence[PrecisionFormat] = FORMATS, int8_clip: float = DEFAULT_INT8_CLIP,
              label: str | None = None) -> PropagationReport:
    """One forward and backward pass of a batch, measured layer by layer, beside the mean-field prediction.

    The batch runs forward; a random unit-variance gradient is injected at the
    output and backpropagated. Each row of the report holds the mean, std and
    largest value of a layer's outputs, the fraction of dead and saturated
    units, the std of the gradient with respect to the outputs, the mean-field
    predictions of both stds (q_(l+1) = sigma_w^2 E[f(sqrt(q_l) z)^2] +
    sigma_b^2 forward, r_(l-1) = (n_l / n_(l-1)) chi_l r_l backward, with
    sigma_w^2 = fan_in mean(W^2) of the actual weights), the band 95% of
    networks of this finite width fall in, and a status: healthy, vanishing,
    exploding or saturated. Measurements are float64; values that overflow
    float64 show as inf/nan with the status "exploding", never as an error.
    The network is not changed (a torch module is measured on a float64
    copy).

    Parameters
    ----------
    network : list of layers or torch.nn.Module
        A NumPy network: a list of dense layers (`varinit.layers.Layer`, dicts
        of its fields, or (weight (out, in), bias, activation) tuples;
        `mlp_spec` builds one). Or a ``torch.nn.Module``: every leaf module call
        becomes a row (torch is imported only then).
    inputs : array_like or torch.Tensor, optional
        The batch, (batch, in_features). Default: N(0, 1) with `batch` rows.
    batch : int, default 128
        The batch size of the default inputs.
    seed : int, default 0
        The seed of the default inputs and output gradient.
    output_grad : array_like, optional
        The gradient injected at the output, of the output's shape. Default:
        N(0, 1).
    precision : bool, default False
        Add, per layer, the fractions of pre-activations and gradients that
        would overflow or underflow each of `formats`
        (`PropagationReport.precision_text`).
    formats : tuple of str, default ("float16", "bfloat16", "int8")
        The formats the precision checks cover.
    int8_clip : float, default 4
        The int8 clipping range: values beyond +-int8_clip saturate.
    label : str, optional
        The report's title; default: the init, activation, depth and width.

    Returns
    -------
    PropagationReport
        Prints as a text table, shows as an HTML table in Jupyter.

    References
    ----------
    .. [1] B. Poole, S. Lahiri, M. Raghu, J. Sohl-Dickstein and S. Ganguli,
       "Exponential expressivity in deep neural networks through transient chaos",
       NeurIPS 2016, arXiv:1606.05340.
    .. [2] S. S. Schoenholz, J. Gilmer, S. Ganguli and J. Sohl-Dickstein, "Deep
       information propagation", ICLR 2017, arXiv:1611.01232.
    .. [3] B. Hanin and D. Rolnick, "How to start training: the effect of
       initialization and architecture", NeurIPS 2018, arXiv:1803.01719.

    Examples
    --------
    >>> import varinit
    >>> net = varinit.diagnostics.mlp_spec(depth=50, width=512, activation="relu", init="xavier_normal")
    >>> report = varinit.propagate(net)
    >>> report.status, report.first_layer_with("vanishing")
    ('vanishing', 1)
    >>> he = varinit.propagate(varinit.diagnostics.mlp_spec(depth=50, width=512, init="kaiming_normal"))
    >>> print(he.summary())
    kaiming_normal, relu, depth 50, width 512: healthy
    >>> print(f"layer 50: std {he.layers[-1].act_std:.2f}, mean field {he.layers[-1].pred_std:.2f}")
    layer 50: std 0.88, mean field 0.84
    """
    batch, seed, precision, chosen, int8_clip = _check_options(batch, seed, precision, formats, int8_clip)
    if _is_torch_module(network):
        from .torch_modules import propagate_module

        return propagate_module(cast("torch.nn.Module", network), inputs, batch=batch, seed=seed,
                                output_grad=output_grad, precision=precision, formats=chosen,
                                int8_clip=int8_clip, label=label)
    if isinstance(network, (np.ndarray, str)) or not hasattr(network, "__iter__"):
        raise TypeError(
            "network must be a list of layers (varinit.layers.Layer, dicts or (weight, bias, activation) "
            f"tuples) or a torch.nn.Module, got {type(network).__name__}"
        )
    layers = as_layers(cast("Iterable[LayerSpec]", network))
    if not layers:
        raise ValueError("network must have at least one layer")
    check_chain(layers)
    if inputs is None:
        x = draw_normal((batch, layers[0].in_features), seed, INPUT_STREAM)
    else:
        x = _as_batch(inputs, "inputs", "")
        if x.ndim != 2 or x.shape[1] != layers[0].in_features:
            raise ValueError(f"inputs must have shape (batch, {layers[0].in_features}), got {x.shape}")
    pre, post = forward(layers, x)
    if output_grad is None:
        g_out = draw_normal(post[-1].shape, seed, INPUT_STREAM + 1)
    else:
        g_out = _as_batch(output_grad, "output_grad", "")
        if g_out.shape != post[-1].shape:
            raise ValueError(f"output_grad must have the output's shape {post[-1].shape}, got {g_out.shape}")
    grads, input_grad = backward(layers, pre, g_out)

    steps: list[mf.Step] = []
    for layer in layers:
        w = dense_matrix(layer)
        b2 = 0.0 if layer.bias is None else second_moment(layer.bias)
        steps.append(mf.Affine(second_moment(w), layer.in_features, layer.out_features, b2,
                               units=layer.out_features))
        steps.append(mf.Elementwise(layer.activation_name, layer.param))
    input_mean, input_std, _, _ = measure(x)
    out_grad_std = measure(g_out)[1]
    predictions = mf.predict(steps, input_mean, second_moment(x), second_moment(g_out))

    references = (input_std, out_grad_std, int(np.prod(g_out.shape[1:])))
    rows = []
    for i, layer in enumerate(layers):
        checks = None
        if precision:
            checks = {"activation": range_checks(pre[i], chosen, int8_clip),
                      "gradient": range_checks(grads[i], chosen, int8_clip)}
        rows.append(layer_stats(i + 1, "dense", layer.activation_name, post[i], grads[i],
                                predictions[2 * i + 1], references, checks))
    if label is None:
        label = _default_label(layers)
    return PropagationReport(label=label, layers=rows, batch=x.shape[0], input_mean=input_mean,
                             input_std=input_std, output_grad_std=out_grad_std,
                             input_grad_std=measure(input_grad)[1], notes=_criticality_notes(layers, predictions))


def _default_label(layers: Sequence[Layer]) -> str:
    inits = {layer.init for layer in layers}
    acts = {layer.activation_name for layer in layers}
    widths = {layer.out_features for layer in layers}
    init = inits.pop() if len(inits) == 1 and None not in inits else "custom"
    act = acts.pop() if len(acts) == 1 else "mixed"
    width = f"width {widths.pop()}" if len(widths) == 1 else "widths vary"
    return f"{init}, {act}, depth {len(layers)}, {width}"


def _criticality_notes(layers: Sequence[Layer], predictions: Sequence[mf.Prediction]) -> list[str]:
    """Mean-field fixed point and chi1 of the network's layer kind, when all layers
    share it, with what they mean over this network's depth.

    sigma_w^2 is averaged over the layers' drawn weights (one layer's sample
    misjudges it by ~sqrt(2 / weights)); the phase words follow the depth and the
    same thresholds as the statuses, so a network the table calls healthy is not
    called chaotic here: chi1 = 1.03 over 50 layers multiplies gradients by 4.4.
    """
    kinds = {(layer.activation_name, layer.param) for layer in layers}
    if len(kinds) != 1:
        return []
    activation, param = kinds.pop()
    sigma_w2 = sum(layer.in_features * second_moment(dense_matrix(layer)) for layer in layers) / len(layers)
    sigma_b2 = sum(0.0 if layer.bias is None else second_moment(layer.bias) for layer in layers) / len(layers)
    sigma_w, sigma_b = math.sqrt(sigma_w2), math.sqrt(sigma_b2)
    if not (math.isfinite(sigma_w) and sigma_w > 0 and math.isfinite(sigma_b)):
        return []
    try:
        crit = criticality(cast("ActivationName", activation), sigma_w, sigma_b, param)  # a checked name
    except ValueError:
        return []
    depth = len(layers)
    with np.errstate(over="ignore"):
        growth = float(np.float64(crit.chi1) ** depth)
    if growth > EXPLODING_RATIO:
        phase = f"chaotic: gradients grow x{growth:.3g} over {depth} layers"
    elif growth < VANISHING_RATIO:
        phase = f"ordered: gradients shrink x{growth:.3g} over {depth} layers"
    else:
        phase = f"near critical: gradients change x{growth:.3g} over {depth} layers, inside the healthy band"
    first, last = predictions[1].std, predictions[-1].std
    signal = ""
    if first and last is not None and math.isfinite(first) and first > 0:
        signal = f"; the mean field's activation std goes x{last / first:.3g} from layer 1 to {depth}"
    return [f"mean field: sigma_w {sigma_w:.4g}, sigma_b {sigma_b:.3g}, fixed point q* {crit.q_star:.4g}, "
            f"chi1 {crit.chi1:.4g} ({phase}){signal}"]


def _is_torch_module(obj: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(obj, torch.nn.Module)
