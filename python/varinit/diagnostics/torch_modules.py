"""varinit.propagate for a torch.nn.Module: forward hooks, autograd, mean-field beside them.

The module is deep-copied and converted to float64 (so the measurement does
not round, and the user's model and its hooks stay untouched); in-place
activations of the copy are switched off so every output keeps its own
gradient. Every call of a leaf module (one with no children) is a row: its
output is measured in a forward hook and the gradient with respect to it is
captured by a tensor hook during `output.backward(unit-variance gradient)`.
The model runs in its current mode (call model.eval() to switch dropout off).

Mean-field predictions follow the leaf calls as a chain (varinit.diagnostics.mean_field.predict):
Linear and Conv (fans of varinit.fans, groups included) are Affine steps,
elementwise activations are Elementwise steps, Identity / Flatten / eval
Dropout pass the signal; any other module, or a call whose input is not the
previous call's output (a residual connection, a branch), stops the
prediction there.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from . import mean_field as mf
from ..fan_rules import fans
from .precision import range_checks
from .measurement import INPUT_STREAM, draw_normal, layer_stats, measure, second_moment
from .precision import PrecisionFormat, RangeCheck
from .report import PropagationReport

if TYPE_CHECKING:
    import torch

# torch activation class name -> varinit activation name (and the attribute holding its param).
ACTIVATIONS: dict[str, tuple[str, str | None]] = {
    "ReLU": ("relu", None), "LeakyReLU": ("leaky_relu", "negative_slope"), "Tanh": ("tanh", None),
    "Sigmoid": ("sigmoid", None), "SiLU": ("silu", None), "Mish": ("mish", None),
    "ELU": ("elu", "alpha"), "SELU": ("selu", None), "Softplus": ("softplus", "beta"),
    "Hardswish": ("hardswish", None), "CELU": ("celu", "alpha"), "ReLU6": ("relu6", None),
    "Hardsigmoid": ("hardsigmoid", None), "Softsign": ("softsign", None),
}
PASS_THROUGH = ("Identity", "Flatten")


def _activation(module: Any) -> tuple[str, float | None] | None:
    """(varinit activation name, param) of an elementwise torch activation module, or None.
    `module` is Any: its attributes (min_val, negative_slope, ...) depend on its class."""
    cls = type(module).__name__
    if cls == "GELU":
        return ("gelu_tanh" if getattr(module, "approximate", "none") == "tanh" else "gelu"), None
    if cls == "Hardtanh" and (module.min_val, module.max_val) != (-1.0, 1.0):
        return None   # varinit's hardtanh clips at +-1
    if cls == "Hardtanh":
        return "hardtanh", None
    if cls in ACTIVATIONS:
        name, attr = ACTIVATIONS[cls]
        return name, (None if attr is None else float(getattr(module, attr)))
    return None


def _step(module: torch.nn.Module, conv_types: tuple[type[torch.nn.modules.conv._ConvNd], ...],
          linear_type: type[torch.nn.Linear]) -> mf.Step:
    """The mean-field step of one leaf module call."""
    cls = type(module).__name__
    act = _activation(module)
    if act is not None:
        return mf.Elementwise(*act)
    if cls in PASS_THROUGH or (cls.startswith("Dropout") and (not module.training or module.p == 0)):
        return mf.Elementwise("linear")
    if isinstance(module, linear_type):
        w = module.weight.detach().numpy()
        b2 = 0.0 if module.bias is None else second_moment(module.bias.detach().numpy())
        return mf.Affine(second_moment(w), module.in_features, module.out_features, b2,
                         units=module.out_features)
    if isinstance(module, conv_types):
        w = module.weight.detach().numpy()
        # a strided conv's fan_out is its average over input positions (varinit.fans)
        fan_in, fan_out = fans(w.shape, layer="conv", groups=module.groups, stride=tuple(module.stride))
        b2 = 0.0 if module.bias is None else second_moment(module.bias.detach().numpy())
        return mf.Affine(second_moment(w), fan_in, fan_out, b2)
    return mf.Opaque(cls)


def _first_in_features(module: torch.nn.Module) -> int | None:
    for sub in module.modules():
        if hasattr(sub, "in_features"):
            return int(getattr(sub, "in_features"))
    return None


def propagate_module(module: torch.nn.Module, inputs: Any, *, batch: int, seed: int, output_grad: Any,
                     precision: bool, formats: Sequence[PrecisionFormat], int8_clip: float,
                     label: str | None) -> PropagationReport:
    """propagate() for a torch.nn.Module (see the module docstring)."""
    import torch

    model = copy.deepcopy(module).to(torch.float64)
    for sub in model.modules():
        if hasattr(sub, "inplace"):
            setattr(sub, "inplace", False)
    if inputs is None:
        in_features = _first_in_features(model)
        if in_features is None:
            raise ValueError("inputs is required for a module without a Linear layer to infer "
                             "its input size from")
        x = torch.from_numpy(draw_normal((batch, in_features), seed, INPUT_STREAM))
    elif isinstance(inputs, torch.Tensor):
        # Token ids and other integer inputs go in as they are (an Embedding
        # needs integers); floating inputs are measured in float64.
        x = inputs.detach().clone()
        if x.is_floating_point():
            x = x.to(torch.float64)
    else:
        x = torch.from_numpy(np.array(inputs))
        if x.is_floating_point():
            x = x.to(torch.float64)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"inputs must have a batch dimension of size >= 1, got shape {tuple(x.shape)}")
    if x.is_floating_point():
        x.requires_grad_(True)

    records: list[dict[str, Any]] = []

    def forward_hook(name: str, sub: torch.nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not isinstance(output, torch.Tensor):
            return
        previous = records[-1]["tensor"] if records else x
        record = {"name": name, "module": sub, "tensor": output,
                  "chained": bool(args) and args[0] is previous,
                  "values": output.detach().numpy().copy(), "grad": None}
        records.append(record)
        if output.requires_grad:
            output.register_hook(lambda g, rec=record: rec.__setitem__("grad", g.detach().numpy().copy()))

    handles = [sub.register_forward_hook(lambda s, a, o, n=name: forward_hook(n, s, a, o))
               for name, sub in model.named_modules() if not list(sub.children())]
    try:
        y = model(x)
        if isinstance(y, (tuple, list)):
            y = y[0]
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"the module must return a tensor (or a tuple starting with one), got {type(y).__name__}")
        if output_grad is None:
            g_out = draw_normal(tuple(y.shape), seed, INPUT_STREAM + 1)
        else:
            g_out = np.array(output_grad.detach() if isinstance(output_grad, torch.Tensor) else output_grad,
                             dtype=np.float64)
            if g_out.shape != tuple(y.shape):
                raise ValueError(f"output_grad must have the output's shape {tuple(y.shape)}, got {g_out.shape}")
        y.backward(torch.from_numpy(g_out))
    finally:
        for handle in handles:
            handle.remove()
    if not records:
        raise ValueError("the module has no leaf module whose output is a tensor: nothing to measure")

    conv_types = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    steps = [_step(r["module"], conv_types, torch.nn.Linear) if r["chained"] else mf.Opaque("branch")
             for r in records]
    x_np = x.detach().numpy().astype(np.float64)
    input_mean, input_std, _, _ = measure(x_np)
    # token ids have no scale an activation could be compared with
    activation_reference = input_std if x.is_floating_point() else None
    out_grad_std = measure(g_out)[1]
    predictions = mf.predict(steps, input_mean, second_moment(x_np), second_moment(g_out))

    rows = []
    for i, (record, prediction) in enumerate(zip(records, predictions)):
        sub = record["module"]
        cls = type(sub).__name__
        act = _activation(sub)
        act_name = act[0] if act else "linear"
        checks: dict[str, list[RangeCheck]] | None = None
        if precision:
            checks = {"activation": range_checks(record["values"], formats, int8_clip)}
            if record["grad"] is not None:
                checks["gradient"] = range_checks(record["grad"], formats, int8_clip)
        name = f"{record['name']} {cls}".strip()
        rows.append(layer_stats(i + 1, name, act_name, record["values"], record["grad"], prediction,
                                (activation_reference, out_grad_std, int(np.prod(g_out.shape[1:]))),
                                checks))
    input_grad = None if x.grad is None else measure(x.grad.numpy())[1]
    if label is None:
        label = f"{type(module).__name__}, {len(rows)} leaf calls"
    return PropagationReport(label=label, layers=rows, batch=int(x.shape[0]), input_mean=input_mean,
                             input_std=input_std, output_grad_std=out_grad_std, input_grad_std=input_grad)
