"""init_by_structure: init_module without example inputs, from the module structure alone.

What `init_module` does to each kind of module (its own parameters only):

- Linear, Conv1d/2d/3d, ConvTranspose1d/2d/3d: weight by the scheme (see
  varinit.layers.schemes) with the gain of the activation that follows the layer and
  the layer's true fans (convolutions: layer="conv", groups, stride; transposed:
  layer="conv_transpose", groups, stride); bias 0.
- Embedding, EmbeddingBag: N(0, embedding_std^2) (torch's default std 1
  keeps each looked-up vector at unit variance); the padding_idx row 0. A
  table tied to a Linear (a language model's head) is initialized once, by
  the head's fan-in rule, std 1/sqrt(d): an N(0, 1) table would give logits
  of std sqrt(d); the report names the tie.
- LayerNorm, RMSNorm, BatchNorm*, InstanceNorm*, GroupNorm: weight 1, bias 0;
  running statistics reset (mean 0, variance 1, no batches tracked).
- MultiheadAttention: the packed in_proj_weight (3E, E) as 3 blocks, so each
  of W_Q, W_K, W_V gets its own fans (pytorch issue 166378), or the separate
  q/k/v_proj_weight; no activation follows them; biases and bias_k/bias_v 0.
  out_proj is a Linear and is treated as one.
- LSTM, GRU, RNN and their cells (LSTMCell, GRUCell, RNNCell): weight_ih_l*
  (a cell's weight_ih) by the scheme as 4 / 3 / 1 gate blocks (gain 1
  unless `activations` names the module: the gates' sigmoid/tanh are not
  followed by another layer's weights); weight_hh_l* orthogonal per gate block
  (Saxe et al. 2014), so each gate's recurrent map preserves norms; weight_hr
  (LSTM projections) by the scheme; biases 0 except two LSTM gate blocks of
  bias_ih (bias_hh stays 0): the forget gate's is 1, so it starts at
  sigmoid(1) = 0.73 and gradients flow through the cell early in training
  (Gers et al. 2000; Jozefowicz et al. 2015), and the output gate's is 2.5,
  so h = o * tanh(c) starts with o = 0.92 instead of 0.5 and its std is not
  a third of its input's (about 0.55 instead of 0.3 over 20 steps); with
  example inputs, init_module may also solve one gate's offset in bias_hh
  (SOLVED_GATES) where a layer's output would stay low.
- Any other module with parameters of its own (a ViT's cls_token or
  pos_embed, a custom nn.Parameter): left as it is, and listed in the report
  as "untouched" with the reason; init_module's overrides= gives it a rule.

scheme="normal" with std=s is the fixed-std recipe of Hugging Face's
`initializer_range` and timm's ViT: every weight-layer weight, attention
input weight and embedding N(0, s^2) (or `distribution`'s law with std s),
no gain; biases 0, norms 1 and 0; recurrent weights keep their orthogonal
rule.

The activation that follows a layer is, in this order: `activations[name]`
(exact module name or a shell-style pattern, e.g. "*.fc1"); the one the
module structure shows (in an nn.Sequential, the first activation module
after the layer, looking past Dropout, Identity and normalization modules);
else the default `activation`.
"""
from __future__ import annotations

import fnmatch
import math
import re
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypedDict, Union, cast

import numpy as np
import torch

from .. import _validate
from .._arrays import as_array, is_dtensor
from ..fan_rules import check_phase_balanced
from ..gains import DEFAULT_GAIN_RULE, check_gain_rule
from ..init import constant_, normal_
from .._typing import ActivationName, FanMode, FloatArray, GainRule, GeneratorLike
from ..generator import Generator, user_frame
from ..layers.records import InitRecord
from ..layers.schemes import (
    ActivationSpec,
    SchemeDistribution,
    gain_and_label,
    as_generator,
    check_choices,
    check_residual_scale,
    fill_constant,
    fill_normal,
    fill_orthogonal,
    draw_with_std,
    fill_weight,
    stream_for,
)
from .parametrizations import spectral_norm_of
from .sharded import write_rows

# init_by_structure's schemes: varinit.layers.schemes' and "normal", one fixed std
StructureScheme = Literal["kaiming", "xavier", "lecun", "orthogonal", "normal"]
# An activation for init_by_structure: as gain_and_label takes it, or an activation module
ModuleActivation = Union[ActivationSpec, torch.nn.Module]


class StructureKeywords(TypedDict, total=False):
    """The keywords init_module passes on to init_by_structure (without example_inputs)."""

    scheme: StructureScheme
    activation: ModuleActivation
    activations: Mapping[str, ModuleActivation] | None
    mode: FanMode
    residual_scale: float | None
    residual_pattern: str
    embedding_std: float
    phase_balanced: bool
    infer_dropout: bool
    by_name: bool
    gain_rule: GainRule
    std: float | None
    name_prefix: str


# A module kind's rule: (walk, module name, module, its own (name, parameter) pairs)
Handler = Callable[["_Walk", str, Any, list[tuple[str, torch.nn.Parameter]]], None]

# GPT-2 (Radford et al. 2019) scales the output projection of every attention
# and MLP branch ("c_proj"); torch's attention calls its projection "out_proj".
DEFAULT_RESIDUAL_PATTERN = r"(^|\.)(c_proj|out_proj)$"

_NAMED_ACTIVATIONS: dict[type[torch.nn.Module], ActivationName] = {
    torch.nn.ReLU: "relu",
    torch.nn.Tanh: "tanh",
    torch.nn.Sigmoid: "sigmoid",
    torch.nn.SiLU: "silu",
    torch.nn.Mish: "mish",
    torch.nn.SELU: "selu",
    torch.nn.Hardswish: "hardswish",
}
# Modules of torch.nn.modules.activation that are not elementwise functions.
_NOT_ELEMENTWISE = (
    torch.nn.MultiheadAttention, torch.nn.Softmax, torch.nn.Softmin, torch.nn.LogSoftmax,
    torch.nn.Softmax2d, torch.nn.GLU, torch.nn.PReLU,
)
_PASS_THROUGH = (
    torch.nn.modules.dropout._DropoutNd, torch.nn.Identity, torch.nn.modules.batchnorm._NormBase,
    torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.LocalResponseNorm,
) + ((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ())
_NORMS = (
    torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm,
) + ((torch.nn.RMSNorm,) if hasattr(torch.nn, "RMSNorm") else ())
_CONV = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_CONV_TRANSPOSE = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
_WEIGHT_LAYERS = (torch.nn.Linear,) + _CONV + _CONV_TRANSPOSE
_GATE_BLOCKS: dict[str, int] = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def recurrent_mode(module: Any) -> str:
    """"LSTM", "GRU", "RNN_TANH" or "RNN_RELU" for a recurrent layer or cell: nn.RNNBase
    names it in `mode`; a cell (nn.RNNCellBase) only by its class."""
    if isinstance(module, torch.nn.RNNBase):
        return str(module.mode)
    if isinstance(module, torch.nn.LSTMCell):
        return "LSTM"
    if isinstance(module, torch.nn.GRUCell):
        return "GRU"
    return "RNN_RELU" if module.nonlinearity == "relu" else "RNN_TANH"


class _ModuleFunction:
    """An elementwise activation module as a function on NumPy arrays, for the
    gain's quadrature."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.__name__ = type(module).__name__

    def __call__(self, z: FloatArray) -> FloatArray:
        with torch.no_grad():
            values: FloatArray = self.module(torch.as_tensor(np.asarray(z, np.float64))).numpy()
            return values


def activation_of_module(module: torch.nn.Module) -> ActivationSpec:
    """The activation an activation module applies, as init_module reads it; None for other modules.

    Parameters
    ----------
    module : torch.nn.Module
        Any module.

    Returns
    -------
    str, tuple, callable or None
        A name ("gelu"), a (name, param) pair (LeakyReLU's slope, ELU's alpha,
        Softplus's beta; a PReLU is a leaky_relu whose slope is the root mean
        square of its slopes), a function wrapping the module for the other
        elementwise activations of torch.nn, or None when `module` is not an
        elementwise activation.

    Examples
    --------
    >>> import torch, varinit
    >>> varinit.torch.activation_of_module(torch.nn.LeakyReLU(0.2))
    ('leaky_relu', 0.2)
    >>> varinit.torch.activation_of_module(torch.nn.GELU())
    'gelu'
    >>> varinit.torch.activation_of_module(torch.nn.Linear(2, 2)) is None
    True
    """
    for cls, name in _NAMED_ACTIVATIONS.items():
        if type(module) is cls:
            return name
    if type(module) is torch.nn.GELU:
        return "gelu_tanh" if module.approximate == "tanh" else "gelu"
    if type(module) is torch.nn.Softplus:
        return ("softplus", float(module.beta))
    if type(module) is torch.nn.LeakyReLU:
        return ("leaky_relu", float(module.negative_slope))
    if type(module) is torch.nn.ELU:
        return ("elu", float(module.alpha))
    if type(module) is torch.nn.PReLU:
        # Channel c passes z ~ N(0, q) with E[prelu_c(z)^2] = q (1 + a_c^2) / 2, so
        # the next layer, summing over channels, sees q (1 + mean(a^2)) / 2: the
        # second moment of a leaky ReLU whose slope is the slopes' root mean square.
        slopes = module.weight.detach().to(torch.float64)
        return ("leaky_relu", float(torch.sqrt(torch.mean(slopes * slopes))))
    if (type(module).__module__ == "torch.nn.modules.activation"
            and not isinstance(module, _NOT_ELEMENTWISE)):
        return _ModuleFunction(module)
    return None


def _user_activation(value: ModuleActivation, key: str) -> ActivationSpec:
    if isinstance(value, torch.nn.Module):
        spec = activation_of_module(value)
        if spec is None:
            raise ValueError(f"activations[{key!r}]: {type(value).__name__} is not an elementwise activation")
        return spec
    gain_and_label(value)  # a clear error now rather than halfway through the model
    return value


def _sequential_weight_layers(
        model: torch.nn.Module) -> Iterator[tuple[torch.nn.Module, list[torch.nn.Module], list[torch.nn.Module]]]:
    """(layer, the modules before it, the modules after it) for every weight
    layer that is a direct child of an nn.Sequential in the model."""
    for container in model.modules():
        if isinstance(container, torch.nn.Sequential):
            children = list(container)
            for i, child in enumerate(children):
                if isinstance(child, _WEIGHT_LAYERS):
                    yield child, children[:i], children[i + 1:]


def _inferred_activations(model: torch.nn.Module) -> dict[int, ActivationSpec]:
    """id(layer) -> activation spec, from the order of nn.Sequential children."""
    found: dict[int, ActivationSpec] = {}
    for layer, _, after in _sequential_weight_layers(model):
        for follower in after:
            spec = activation_of_module(follower)
            if spec is not None:
                found[id(layer)] = spec
                break
            if not isinstance(follower, _PASS_THROUGH):
                break
    return found


# Inverted dropout: scales kept inputs by 1/(1-p), raising their second moment by
# the same factor. AlphaDropout keeps the moments and is left out on purpose.
_INVERTED_DROPOUT = (torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d)


def _inferred_keep_probs(model: torch.nn.Module) -> dict[int, float]:
    """id(layer) -> keep probability of the inverted dropout on its inputs: the
    product of 1 - p over the Dropout modules just before it in an
    nn.Sequential (an elementwise activation or Identity in between keeps
    the factor; anything else ends the search)."""
    found: dict[int, float] = {}
    for layer, before, _ in _sequential_weight_layers(model):
        keep = 1.0
        for module in reversed(before):
            if type(module) in _INVERTED_DROPOUT:
                keep *= 1.0 - cast("torch.nn.modules.dropout._DropoutNd", module).p
            elif not (isinstance(module, torch.nn.Identity) or activation_of_module(module) is not None):
                break
        if keep != 1.0:
            found[id(layer)] = keep
    return found


class _Walk:
    """The state of one init_module call: the choices and the report."""

    def __init__(self, *, scheme: Any, mode: FanMode, distribution: SchemeDistribution, residual_scale: float,
                 residual_pattern: re.Pattern[str], activation: ActivationSpec,
                 activations: dict[str, ActivationSpec], embedding_std: float, by_name: bool,
                 generator: Generator, phase_balanced: bool, gain_rule: GainRule,
                 fixed_std: float | None = None) -> None:
        self.scheme, self.mode, self.distribution = scheme, mode, distribution
        self.residual_scale = residual_scale
        self.residual_pattern = residual_pattern
        self.default_activation = activation
        self.activations = activations
        self.embedding_std = embedding_std
        self.by_name = by_name
        self.generator = generator
        self.phase_balanced = phase_balanced
        self.gain_rule = gain_rule
        self.fixed_std = fixed_std
        self.aliases: dict[int, list[str]] = {}
        self.linear_weights: set[int] = set()
        self.inferred: dict[int, ActivationSpec] = {}
        self.keep_probs: dict[int, float] = {}
        self.report: list[InitRecord] = []
        self.seen: set[int] = set()
        self.prefix = ""

    def user_activation(self, name: str) -> ActivationSpec:
        """activations[name], the first matching pattern's value, or None."""
        for key, value in self.activations.items():
            if key == name or fnmatch.fnmatchcase(name, key):
                return value
        return None

    def activation_for(self, name: str, module: torch.nn.Module) -> ActivationSpec:
        given = self.user_activation(name)
        if given is not None:
            return given
        return self.inferred.get(id(module), self.default_activation)

    def stream(self, name: str) -> GeneratorLike:
        return stream_for(self.generator, f"{self.prefix}.{name}" if self.prefix else name, self.by_name)

    def weight(self, param: torch.Tensor, name: str, module_name: str, activation: ActivationSpec,
               layout: dict[str, Any]) -> None:
        if self.fixed_std is not None:
            draw_with_std(param, self.distribution, self.fixed_std, self.stream(name))
            self.report.append(InitRecord(name, f"fixed-std {self.distribution} (scheme 'normal')", None, None,
                                          self.fixed_std))
            return
        residual = self.residual_scale if self.residual_pattern.search(module_name) else 1.0
        self.report.append(fill_weight(
            param, name, scheme=self.scheme, activation=activation, mode=self.mode,
            distribution=self.distribution, residual_scale=residual, generator=self.stream(name),
            layout=layout, gain_rule=self.gain_rule,
        ))

    def constant(self, param: torch.Tensor, name: str, value: float) -> None:
        self.report.append(fill_constant(param, name, value))


def _full(module_name: str, param_name: str) -> str:
    return f"{module_name}.{param_name}" if module_name else param_name


def _init_weight_layer(walk: _Walk, name: str, module: Any, params: list[tuple[str, torch.nn.Parameter]]) -> None:
    if isinstance(module, _CONV_TRANSPOSE):
        layout: dict[str, Any] = {"layer": "conv_transpose", "groups": module.groups, "stride": tuple(module.stride)}
        if walk.phase_balanced:
            layout.update(phase_balanced=True, dilation=tuple(module.dilation))
    elif isinstance(module, _CONV):
        # the stride sets the backward fan (fan_out / prod(stride)): mode="fan_out" and
        # xavier's fan_avg need it, as the transposed conv's fan_in does above
        layout = {"layer": "conv", "groups": module.groups, "stride": tuple(module.stride)}
    else:
        layout = {"layer": "linear"}
    if id(module) in walk.keep_probs:
        layout["keep_prob"] = walk.keep_probs[id(module)]
    activation = walk.activation_for(name, module)
    own = dict(params)
    spectral = _spectral_original(module, name)
    if spectral is not None:
        walk.seen.add(id(spectral[1]))
        walk.weight(spectral[1], spectral[0], name, activation, layout)
    norm = _weight_norm_pair(module, name)
    if norm is not None:
        (g_name, g), (v_name, v) = norm
        for tensor in (g, v):
            walk.seen.add(id(tensor))
        own.pop("weight_g", None)
        own.pop("weight_v", None)
        walk.weight(v, v_name, name, activation, layout)
        # w = g v / ||v|| per output unit: each unit's weights have norm g, so g
        # takes the norm the scheme gives a unit, std * sqrt(inputs per unit)
        # (Salimans & Kingma 2016, with He's or Glorot's variance).
        norm_value = walk.report[-1].std * math.sqrt(v.numel() / g.numel())
        walk.report.append(InitRecord(g_name, f"constant {norm_value:.6g}: the norm the scheme gives "
                                      "each unit's weights", None, None, 0.0))
        constant_(g, norm_value)
    for pname, param in own.items():
        full = _full(name, pname)
        if pname == "weight":
            walk.weight(param, full, name, activation, layout)
        elif pname == "bias":
            walk.constant(param, full, 0.0)
        else:
            walk.report.append(InitRecord(full, "untouched", None, None, float("nan")))


def _spectral_original(module: Any, name: str) -> tuple[str, torch.Tensor] | None:
    """(name, tensor) of the weight under a layer's only parametrization when that is
    spectral norm (W / sigma_max(W): its scale is divided out, so the scheme's std
    serves as well as any), else None."""
    if spectral_norm_of(module) is None:
        return None
    return _full(name, "parametrizations.weight.original"), module.parametrizations.weight.original


def _weight_norm_pair(module: Any,
                      name: str) -> tuple[tuple[str, torch.Tensor], tuple[str, torch.Tensor]] | None:
    """((g name, g), (v name, v)) of a weight-normalized layer, or None.

    torch.nn.utils.parametrizations.weight_norm keeps them as original0 and
    original1 of module.parametrizations.weight; the older
    torch.nn.utils.weight_norm as weight_g and weight_v.
    """
    if torch.nn.utils.parametrize.is_parametrized(module, "weight"):
        plist = module.parametrizations.weight
        if _spectral_original(module, name) is not None:
            return None
        if len(plist) != 1 or type(plist[0]).__name__ != "_WeightNorm" or plist[0].dim not in (0, None):
            raise ValueError(f"{name or 'the model'}: init_module handles a weight whose only "
                             "parametrization is weight_norm with dim=0")
        prefix = _full(name, "parametrizations.weight")
        return (f"{prefix}.original0", plist.original0), (f"{prefix}.original1", plist.original1)
    if isinstance(getattr(module, "weight_g", None), torch.nn.Parameter):
        return (_full(name, "weight_g"), module.weight_g), (_full(name, "weight_v"), module.weight_v)
    return None


def _init_attention(walk: _Walk, name: str, module: Any, params: list[tuple[str, torch.nn.Parameter]]) -> None:
    activation = walk.user_activation(name)
    for pname, param in params:
        full = _full(name, pname)
        if pname == "in_proj_weight":
            walk.weight(param, full, name, activation, {"layer": "linear", "blocks": 3})
        elif pname in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
            walk.weight(param, full, name, activation, {"layer": "linear"})
        else:  # in_proj_bias, bias_k, bias_v
            walk.constant(param, full, 0.0)


# The offsets in an LSTM's b_ih, by gate block (torch orders the gates i, f, g, o):
# the forget gate starts at sigmoid(1) = 0.73, so gradients flow through the cell
# early in training (Gers et al. 2000; Jozefowicz et al. 2015); the output gate at
# sigmoid(2.5) = 0.92: h = o * tanh(c) is bounded by its gate, and at o = 0.5 its
# std is about 0.3 at unit gate preactivations, a third of the signal around it;
# opening the gate leaves the cell's dynamics as they are and passes more of
# dL/dh on to the cell.
LSTM_GATE_OFFSETS: dict[int, float] = {1: 1.0, 3: 2.5}


def write_lstm_gate_offsets(bias: Any, value: float | None = None) -> None:
    """Set the LSTM_GATE_OFFSETS blocks of an LSTM's b_ih (plain or DTensor) to
    their offsets, or all to `value`."""
    hidden = bias.shape[0] // 4
    for block, offset in LSTM_GATE_OFFSETS.items():
        write_rows(bias, slice(block * hidden, (block + 1) * hidden), offset if value is None else value)


# The gate whose offset the dataflow solve may set, in bias_hh, to lift a gated output
# (dataflow._gate_offset), by mode: (block, sign of the offset, the gate's name). An
# LSTM's input gate opens (i up: more of g written into the cell); a GRU's update gate
# closes (z down: h = (1 - z) * n + z * h_prev takes more of the new n).
SOLVED_GATES: dict[str, tuple[int, float, str]] = {"LSTM": (0, 1.0, "input"), "GRU": (1, -1.0, "update")}


def write_gate_offset(bias: Any, mode: str, value: float) -> None:
    """Set the SOLVED_GATES block of a recurrent layer's bias (plain or DTensor) to `value`."""
    block = SOLVED_GATES[mode][0]
    hidden = bias.shape[0] // _GATE_BLOCKS[mode]
    write_rows(bias, slice(block * hidden, (block + 1) * hidden), value)


def _init_recurrent(walk: _Walk, name: str, module: Any, params: list[tuple[str, torch.nn.Parameter]]) -> None:
    mode = recurrent_mode(module)
    blocks = _GATE_BLOCKS[mode]
    activation = walk.user_activation(name)
    for pname, param in params:
        full = _full(name, pname)
        if pname.startswith("weight_ih"):
            walk.weight(param, full, name, activation, {"layer": "linear", "blocks": blocks})
        elif pname.startswith("weight_hh"):
            walk.report.append(fill_orthogonal(param, full, blocks=blocks, generator=walk.stream(full)))
        elif pname.startswith("weight_hr"):
            walk.weight(param, full, name, None, {"layer": "linear"})
        elif pname.startswith("bias_ih") and mode == "LSTM":
            walk.constant(param, full, 0.0)
            if not param.is_meta:  # a meta model gets the plan, not the values
                write_lstm_gate_offsets(param)
            walk.report[-1] = InitRecord(
                full, f"zeros, forget-gate block {LSTM_GATE_OFFSETS[1]:g}, output-gate block {LSTM_GATE_OFFSETS[3]:g}",
                None, None, 0.0)
        else:
            walk.constant(param, full, 0.0)


def _init_embedding(walk: _Walk, name: str, module: Any, params: list[tuple[str, torch.nn.Parameter]]) -> None:
    for pname, param in params:
        full = _full(name, pname)
        if walk.fixed_std is not None:
            walk.weight(param, full, name, None, {})
        elif id(param) in walk.linear_weights:
            # tied to a head: the head's fan-in rule, so the logits have unit variance
            std = 1.0 / math.sqrt(param.shape[1])
            normal_(param, 0.0, std, walk.stream(full))
            walk.report.append(InitRecord(full, "normal(0, 1/d): tied to a Linear head, which fixes its scale "
                                          "(logits of unit variance)", param.shape[1], None, std))
        else:
            walk.report.append(fill_normal(param, full, std=walk.embedding_std, generator=walk.stream(full)))
        zero_padding_row(module, param)


def zero_padding_row(module: Any, weight: torch.Tensor) -> int | None:
    """Write zero into the padding_idx row of an nn.Embedding's or nn.EmbeddingBag's
    weight, as torch's own init leaves it (no gradient ever reaches it); the row, or
    None when the module has none."""
    padding = getattr(module, "padding_idx", None) if isinstance(
        module, (torch.nn.Embedding, torch.nn.EmbeddingBag)) else None
    if padding is not None and not weight.is_meta:
        write_rows(weight, padding, 0.0)
    return padding


def _init_norm(walk: _Walk, name: str, module: Any, params: list[tuple[str, torch.nn.Parameter]]) -> None:
    for pname, param in params:
        walk.constant(param, _full(name, pname), 1.0 if pname == "weight" else 0.0)


def _handler(module: torch.nn.Module) -> Handler | None:
    if isinstance(module, torch.nn.MultiheadAttention):
        return _init_attention
    if isinstance(module, (torch.nn.RNNBase, torch.nn.RNNCellBase)):
        return _init_recurrent
    if isinstance(module, _WEIGHT_LAYERS):
        return _init_weight_layer
    if isinstance(module, (torch.nn.Embedding, torch.nn.EmbeddingBag)):
        return _init_embedding
    if isinstance(module, _NORMS):
        return _init_norm
    return None


def check_fillable(model: torch.nn.Module, allow_meta: bool = False) -> None:
    """Refuse, before the first write, any parameter init_module would fill but cannot:
    a failure halfway would leave the model half initialized."""
    for module_name, module in model.named_modules():
        if _handler(module) is None:
            continue
        for pname, param in module.named_parameters():
            full = _full(module_name, pname)
            if isinstance(param, torch.nn.parameter.UninitializedParameter):
                raise ValueError(f"parameter {full} is uninitialized (lazy module): run one forward pass first")
            if allow_meta and param.is_meta:
                continue
            try:
                as_array(param.to_local() if is_dtensor(param) else param)   # a DTensor: its shard
            except (TypeError, ValueError, RuntimeError) as error:
                raise type(error)(f"parameter {full}: {error}") from None


def _check_phase_balanced_layers(model: torch.nn.Module) -> None:
    """Refuse, before the first write, phase_balanced=True for a transposed conv whose
    taps leave some output phase without any (varinit.fan_rules.check_phase_balanced)."""
    for module_name, module in model.named_modules():
        if isinstance(module, _CONV_TRANSPOSE):
            try:
                check_phase_balanced(module.kernel_size, module.stride, module.dilation)
            except ValueError as error:
                raise ValueError(f"{module_name or 'the model'}: {error}") from None


def init_by_structure(model: torch.nn.Module, *, scheme: StructureScheme = "kaiming",
                      activation: ModuleActivation = None,
                      activations: Mapping[str, ModuleActivation] | None = None, mode: FanMode = "fan_in",
                      distribution: SchemeDistribution = "normal", residual_scale: float | None = None,
                      residual_pattern: str = DEFAULT_RESIDUAL_PATTERN, embedding_std: float = 1.0,
                      phase_balanced: bool = False, infer_dropout: bool = False, by_name: bool = False,
                      generator: GeneratorLike = None, gain_rule: GainRule = DEFAULT_GAIN_RULE,
                      name_prefix: str = "", std: float | None = None,
                      skip: Iterable[str] = (),
                      progress: Callable[[int, int], object] | None = None) -> list[InitRecord]:
    """init_module without example inputs: initialize every parameter of a
    torch.nn.Module in place from its module structure; returns the report.


    Weights of Linear/Conv/ConvTranspose layers (and the input weights of
    attention and recurrent layers) follow `scheme` ("kaiming", "xavier",
    "lecun", "orthogonal"; see varinit.layers.schemes for the formulas; or
    "normal", a fixed std `std` for every weight and embedding) with the
    gain of the activation that follows each layer by `gain_rule`
    (varinit.gains: "exact" by default, or torch's table); the module docstring lists
    what every other module kind gets. `activations` maps module names or
    shell-style patterns to activations (a name, (name, param), a callable or
    an activation module) and `activation` is the default where neither
    `activations` nor the model's structure says (None: linear, gain 1).

    residual_scale (e.g. varinit.recipes.depth_scale("gpt2", L) = 1/sqrt(2 L) for L blocks, Radford et
    al. 2019) multiplies the std of the weights of the modules whose names
    match the regular expression `residual_pattern` (default: names ending in
    "c_proj" or "out_proj"); None leaves every std as the scheme gives it.

    phase_balanced=True gives every transposed convolution's output phases
    the same variance (varinit.fan_rules.phase_scale). infer_dropout=True
    divides out the inverted dropout on a layer's inputs (Var times
    keep_prob = 1 - p) when Dropout(p) modules come just before it in an
    nn.Sequential; off by default since the model is then at unit variance in
    training mode and below it in eval mode.

    The same generator seed gives the same model, bit for bit. With
    by_name=True each parameter draws from generator.stream(its name), so the
    values do not depend on the order in which modules were created.

    `progress`, if given, is called as progress(done, total) over the modules.
    Parameters named in `skip` are left as they are (init_module's `only=`
    and `overrides=` decide them).

    Returns a list of InitRecord(name, rule, fan_in, fan_out, std), one per
    parameter.

    Example::

        >>> import torch, varinit
        >>> model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
        >>> report = varinit.torch.init_module(model, generator=0)
        >>> report[0]
        InitRecord(name='0.weight', rule='kaiming normal fan_in, gain(relu)=1.41421', fan_in=784, fan_out=256, std=0.0505...)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    fixed_std = _fixed_std(scheme, std)
    check_choices("kaiming" if fixed_std is not None else scheme, mode, distribution)
    check_gain_rule(gain_rule)
    residual = check_residual_scale(residual_scale)
    pattern = _validate.regex(residual_pattern, "residual_pattern")
    embedding_std = _validate.real(embedding_std, "embedding_std", _validate.NON_NEGATIVE)
    phase_balanced = _validate.flag(phase_balanced, "phase_balanced")
    infer_dropout = _validate.flag(infer_dropout, "infer_dropout")
    by_name = _validate.flag(by_name, "by_name")
    if activations is None:
        activations = {}
    if not isinstance(activations, dict):
        raise TypeError(f"activations must be a dict of module name -> activation, got {type(activations).__name__}")
    chosen = {key: _user_activation(value, key) for key, value in activations.items()}
    default = _user_activation(activation, "default") if activation is not None else None
    check_fillable(model, allow_meta=True)
    if phase_balanced:
        _check_phase_balanced_layers(model)
    walk = _Walk(
        scheme=scheme, mode=mode, distribution=distribution, residual_scale=residual,
        residual_pattern=pattern, activation=default, activations=chosen,
        embedding_std=embedding_std, by_name=by_name,
        generator=as_generator(generator, True), phase_balanced=phase_balanced, gain_rule=gain_rule,
        fixed_std=fixed_std,
    )
    if not isinstance(name_prefix, str):
        raise TypeError(f"name_prefix must be a str, got {type(name_prefix).__name__}")
    walk.prefix = name_prefix
    walk.inferred = _inferred_activations(model)
    walk.aliases = _aliases(model)
    walk.linear_weights = {id(m.weight) for m in model.modules()
                           if isinstance(m, torch.nn.Linear) and isinstance(m.weight, torch.nn.Parameter)}
    skipped = set(skip)
    if infer_dropout:
        walk.keep_probs = _inferred_keep_probs(model)
    with torch.no_grad():
        modules = list(model.named_modules())
        for done, (name, module) in enumerate(modules):
            if progress is not None:
                progress(done, len(modules))
            if isinstance(module, torch.nn.modules.batchnorm._NormBase) and module.track_running_stats:
                module.reset_running_stats()  # buffers, as a freshly built module has them
            params = [(p, t) for p, t in module.named_parameters(recurse=False)
                      if id(t) not in walk.seen and _full(name, p) not in skipped]
            if not params and not torch.nn.utils.parametrize.is_parametrized(module):
                continue
            walk.seen.update(id(t) for _, t in params)
            handler = _handler(module)
            if handler is None:
                walk.report.extend(InitRecord(
                    _full(name, p), f"untouched: a parameter of {type(module).__name__} that no rule covers "
                    "(name it in init_module's overrides= to give it one)", None, None, float("nan"))
                    for p, _ in params)
            else:
                handler(walk, name, module, params)
    if progress is not None:
        progress(len(modules), len(modules))
    _warn_unknown_activations(model, walk)
    walk.report[:] = [_with_ties(record, walk.aliases) for record in walk.report]
    if name_prefix:
        return [record._replace(name=f"{name_prefix}.{record.name}") for record in walk.report]
    return walk.report


def _fixed_std(scheme: object, std: float | None) -> float | None:
    """The fixed std of scheme="normal", or None for the fan-based schemes (which take no std)."""
    if scheme == "normal":
        if std is None:
            raise ValueError("scheme='normal' draws every weight with one fixed std: pass std= (e.g. 0.02)")
        return _validate.real(std, "std", _validate.POSITIVE)
    if std is not None:
        raise ValueError(f"std applies with scheme='normal' (a fixed std); scheme={scheme!r} takes its std "
                         "from the fans")
    return None


def _aliases(model: torch.nn.Module) -> dict[int, list[str]]:
    """{id(tensor): [every name]} of the parameters the model holds under several names (tied)."""
    names: dict[int, list[str]] = {}
    for name, tensor in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(tensor), []).append(name)
    return {key: value for key, value in names.items() if len(value) > 1}


def _with_ties(record: InitRecord, aliases: dict[int, list[str]]) -> InitRecord:
    for names in aliases.values():
        if record.name == names[0]:
            return record._replace(rule=f"{record.rule}; tied with {', '.join(names[1:])}: initialized once")
    return record


def _warn_unknown_activations(model: torch.nn.Module, walk: _Walk) -> None:
    """Name the weight layers whose activation nothing said: outside an
    nn.Sequential the structure cannot show what forward() applies (F.relu in
    forward, a residual addition), and gain 1 is then a guess, not a fact."""
    if walk.default_activation is not None:
        return
    in_sequential = {id(layer) for layer, _, _ in _sequential_weight_layers(model)}
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, _WEIGHT_LAYERS)]
    unknown = [name for name, m in layers[:-1]
               if id(m) not in in_sequential and walk.user_activation(name) is None]
    if unknown:
        shown = ", ".join(unknown[:8]) + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
        warnings.warn(
            f"init_module: the structure does not show which activation follows {shown}; they get "
            "gain 1 (linear). Pass example_inputs to follow the model's dataflow, or name them in "
            "activations=.", UserWarning, stacklevel=user_frame()[1])


