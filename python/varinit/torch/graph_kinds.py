"""Which torch function makes which kind of graph node: the tables the tracer
(varinit.torch.graph) looks each recorded call up in.

A call reaches the tracer as the function object torch hands to
`__torch_function__`: `torch.relu`, the method descriptor `torch.Tensor.relu`,
the Python function `torch.nn.functional.relu` and the builtin
`torch._C._nn.gelu` are four different objects, so every spelling of an op is
registered. `SPECS` maps each to an `OpSpec`: the node kind (one of
graph.KINDS, or IGNORE), a short op name, the public qualified name, the
argument names in positional order (to read positional and keyword calls
alike) and which of those arguments hold weights. A function missing here is
either a Python function (the tracer records its body) or a builtin (an
"opaque" node named by `public_name`).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable, NamedTuple

import torch
import torch.nn.functional as F

# Not recorded: the result does not depend on the operands' values (factories
# shaped like a tensor) or is not part of the dataflow (printing, hooks, grad flags).
IGNORE = "ignore"


class OpSpec(NamedTuple):
    # a Graph node kind; "binary" for add/sub/mul/div/pow, which graph.py makes
    # add/sub/mul/div (two tensors), scale/shift/pow (a tensor and a number) or
    # elementwise (a number and a tensor: 2 - x); or IGNORE
    kind: str
    op: str                      # "conv2d", "relu", "add", "transpose", ...
    target: str                  # "torch.nn.functional.conv2d"
    names: tuple[str, ...] = ()  # argument names in positional order, the operated-on tensor first
    roles: tuple[str, ...] = ()  # arguments holding weights: a Parameter there goes to Node.params
    dims: int = 0                # spatial dimensions of a conv / pool
    reflected: bool = False      # 2 - x arrives as x.__rsub__(2): the operands are swapped
    inplace: bool = False        # writes into its first operand (relu_, add_, __setitem__)
    replay: Callable[..., Any] | None = None   # elementwise: the out-of-place function that recomputes it


SPECS: dict[Any, OpSpec] = {}

_NAMESPACES: tuple[tuple[str, Any], ...] = (
    ("torch.nn.functional", F),
    ("torch", torch),
    ("torch.Tensor", torch.Tensor),
    ("torch.special", torch.special),
    ("torch._C._nn", torch._C._nn),
)


def _register(func: Any, spec: OpSpec) -> None:
    # One function object can have several spellings (F.conv2d is torch.conv2d):
    # the first registered, the public functional name, names it.
    if func is not None and func not in SPECS:
        SPECS[func] = spec


def _spellings(name: str, namespaces: tuple[tuple[str, Any], ...] = _NAMESPACES,
               inplace_too: bool = True) -> Iterator[tuple[Callable[..., Any], str, bool]]:
    """(function, qualified name, writes in place) for every namespace that has `name`."""
    for suffix in (("", "_") if inplace_too else ("",)):
        for prefix, namespace in namespaces:
            func = getattr(namespace, name + suffix, None)
            if callable(func):
                yield func, f"{prefix}.{name}{suffix}", bool(suffix)


def _tensor_getter(name: str) -> Callable[..., Any]:
    getter: Callable[..., Any] = getattr(torch.Tensor, name).__get__
    return getter


# ------------------------------------------------------------------ elementwise

# name: (argument names after the input, in positional order). The replay is
# the first of torch.<name>, F.<name>, torch.special.<name> that exists, called
# with the recorded arguments by keyword (the spellings share their keywords).
_ELEMENTWISE: dict[str, tuple[str, ...]] = {
    "relu": (), "relu6": (), "selu": (), "silu": (), "mish": (), "hardswish": (),
    "hardsigmoid": (), "sigmoid": (), "tanh": (), "softsign": (), "tanhshrink": (),
    "logsigmoid": (), "log_sigmoid": (), "expit": (),
    "gelu": ("approximate",), "leaky_relu": ("negative_slope",), "elu": ("alpha",),
    "celu": ("alpha",), "hardtanh": ("min_val", "max_val"), "softplus": ("beta", "threshold"),
    "threshold": ("threshold", "value"), "rrelu": ("lower", "upper", "training"),
    "hardshrink": ("lambd",), "softshrink": ("lambd",),
    "clamp": ("min", "max"), "clip": ("min", "max"), "clamp_min": ("min",), "clamp_max": ("max",),
    "nan_to_num": ("nan", "posinf", "neginf"), "round": ("decimals",),
    "exp": (), "exp2": (), "expm1": (), "log": (), "log1p": (), "log2": (), "log10": (),
    "sin": (), "cos": (), "tan": (), "sinh": (), "cosh": (), "asinh": (), "atan": (),
    "arctan": (), "abs": (), "absolute": (), "neg": (), "negative": (), "positive": (),
    "sqrt": (), "rsqrt": (), "square": (), "erf": (), "erfc": (), "erfinv": (), "sign": (),
    "sgn": (), "reciprocal": (), "floor": (), "ceil": (), "trunc": (), "frac": (), "sinc": (),
}


def _replay_function(name: str) -> Callable[..., Any]:
    if name == "log_sigmoid":           # torch._C._nn's name for F.logsigmoid
        return F.logsigmoid
    for namespace in (torch, F, torch.special):
        func: Callable[..., Any] | None = getattr(namespace, name, None)
        if callable(func):
            return func
    raise LookupError(name)


for _name, _args in _ELEMENTWISE.items():
    _canonical = _replay_function(_name)
    for _func, _target, _inplace in _spellings(_name):
        _register(_func, OpSpec("elementwise", _name.replace("log_sigmoid", "logsigmoid"),
                                _target, ("input",) + _args + ("inplace",),
                                inplace=_inplace, replay=_canonical))
# PReLU's slope is a weight: its replay reads the parameter (see graph.py).
for _func, _target, _ in _spellings("prelu", inplace_too=False):
    _register(_func, OpSpec("elementwise", "prelu", _target, ("input", "weight"), ("weight",),
                            replay=F.prelu))

# ------------------------------------------------------------------ binary arithmetic

# (op, reflected) per spelling; "true_divide"/"divide"/"multiply"/"subtract" are aliases.
_BINARY = {
    "add": ("add", False), "sub": ("sub", False), "subtract": ("sub", False),
    "mul": ("mul", False), "multiply": ("mul", False), "div": ("div", False),
    "divide": ("div", False), "true_divide": ("div", False), "pow": ("pow", False),
    "float_power": ("pow", False), "rsub": ("sub", True),
}
_BINARY_NAMES = {"add": ("input", "other", "alpha"), "sub": ("input", "other", "alpha"),
                 "mul": ("input", "other"), "div": ("input", "other", "rounding_mode"),
                 "pow": ("input", "exponent"), "floordiv": ("input", "other")}
for _name, (_op, _reflected) in _BINARY.items():
    for _func, _target, _inplace in _spellings(_name, _NAMESPACES[1:3]):
        _register(_func, OpSpec("binary", _op, _target, _BINARY_NAMES[_op],
                                reflected=_reflected, inplace=_inplace))
for _dunder, _op in (("add", "add"), ("sub", "sub"), ("mul", "mul"), ("truediv", "div"),
                     ("div", "div"), ("pow", "pow"), ("floordiv", "floordiv")):
    for _prefix, _reflected, _inplace in (("", False, False), ("r", True, False),
                                          ("i", False, True)):
        _name = f"__{_prefix}{_dunder}__"
        _register(getattr(torch.Tensor, _name, None),
                  OpSpec("binary", _op, f"torch.Tensor.{_name}", _BINARY_NAMES[_op],
                         reflected=_reflected, inplace=_inplace))

# comparisons: a mask of a float tensor against a number or another float tensor is a
# function of them per element (leaky ReLU as torch.where(x > 0, x, 0.1 * x))
_COMPARISONS = {"gt": "gt", "greater": "gt", "lt": "lt", "less": "lt", "ge": "ge", "greater_equal": "ge",
                "le": "le", "less_equal": "le"}
for _name, _op in _COMPARISONS.items():
    for _func, _target, _ in _spellings(_name, _NAMESPACES[1:3], inplace_too=False):
        _register(_func, OpSpec("compare", _op, _target, ("input", "other")))
for _op in ("gt", "lt", "ge", "le"):
    _register(getattr(torch.Tensor, f"__{_op}__"),
              OpSpec("compare", _op, f"torch.Tensor.__{_op}__", ("input", "other")))
# masks joined: per element, of the masks
for _name in ("logical_and", "logical_or", "logical_xor", "logical_not"):
    for _func, _target, _ in _spellings(_name, _NAMESPACES[1:3], inplace_too=False):
        _register(_func, OpSpec("logical", _name, _target, ("input", "other")))
for _dunder, _name in (("and", "logical_and"), ("or", "logical_or"), ("xor", "logical_xor"),
                       ("invert", "logical_not")):
    _register(getattr(torch.Tensor, f"__{_dunder}__"),
              OpSpec("logical", _name, f"torch.Tensor.__{_dunder}__", ("input", "other")))

# a mixture of experts' per-expert layers: rows grouped by expert, each times its expert's
# (in, out) matrix of a 3-D weight (Hugging Face's experts under torch.nn.functional.grouped_mm)
for _namespace, _prefix, _name in ((torch, "torch", "_grouped_mm"), (F, "torch.nn.functional", "grouped_mm")):
    _register(getattr(_namespace, _name, None), OpSpec("grouped_mm", "grouped_mm", f"{_prefix}.{_name}",
                                                       ("mat_a", "mat_b", "offs", "bias", "out_dtype"), ("mat_b",)))
# the k largest entries along a dim: the values, and their (integer) indices
for _func, _target, _ in _spellings("topk", _NAMESPACES[1:3], inplace_too=False):
    _register(_func, OpSpec("topk", "topk", _target, ("input", "k", "dim", "largest", "sorted")))
# the 2-norm along dims (F.normalize's, x.norm(dim=-1, keepdim=True)): a statistic of its input
_register(torch.linalg.vector_norm, OpSpec("vector_norm", "vector_norm", "torch.linalg.vector_norm",
                                           ("input", "ord", "dim", "keepdim")))
for _func, _target, _ in _spellings("norm", _NAMESPACES[1:3], inplace_too=False):
    _register(_func, OpSpec("vector_norm", "norm", _target, ("input", "p", "dim", "keepdim")))
# the largest entry along a dim (PointNet's max over its points): torch.max(x, dim) gives it
# and its index, amax the value; max(a, b) of two tensors and a whole tensor's max are opaque
for _name in ("max", "amax"):
    for _func, _target, _ in _spellings(_name, _NAMESPACES[1:3], inplace_too=False):
        _register(_func, OpSpec("largest", _name, _target, ("input", "dim", "keepdim")))

# ------------------------------------------------------------------ layers with weights

_register(F.linear, OpSpec("linear", "linear", "torch.nn.functional.linear",
                           ("input", "weight", "bias"), ("weight", "bias")))
# bias + x @ W with W stored (in, out): Hugging Face's Conv1D (GPT-2) is a linear layer
for _func, _target, _ in _spellings("addmm", _NAMESPACES[1:3], inplace_too=False):
    _register(_func, OpSpec("addmm", "addmm", _target, ("input", "mat1", "mat2", "beta", "alpha"),
                            ("input", "mat2")))
# input + value * tensor1 * tensor2: timm's Affine (ResMLP), beta + alpha * x
for _func, _target, _ in _spellings("addcmul", _NAMESPACES[1:3], inplace_too=False):
    _register(_func, OpSpec("addcmul", "addcmul", _target, ("input", "tensor1", "tensor2", "value")))
_register(F.bilinear, OpSpec("bilinear", "bilinear", "torch.nn.functional.bilinear",
                             ("input1", "input2", "weight", "bias"), ("weight", "bias")))
for _n in (1, 2, 3):
    _register(getattr(F, f"conv{_n}d"),
              OpSpec("conv", f"conv{_n}d", f"torch.nn.functional.conv{_n}d",
                     ("input", "weight", "bias", "stride", "padding", "dilation", "groups"),
                     ("weight", "bias"), dims=_n))
    _register(getattr(F, f"conv_transpose{_n}d"),
              OpSpec("conv_transpose", f"conv_transpose{_n}d",
                     f"torch.nn.functional.conv_transpose{_n}d",
                     ("input", "weight", "bias", "stride", "padding", "output_padding",
                      "groups", "dilation"), ("weight", "bias"), dims=_n))
_register(F.embedding, OpSpec("embedding", "embedding", "torch.nn.functional.embedding",
                              ("input", "weight", "padding_idx", "max_norm", "norm_type",
                               "scale_grad_by_freq", "sparse"), ("weight",)))
_register(torch.embedding, OpSpec("embedding", "embedding", "torch.embedding",
                                  ("weight", "input", "padding_idx", "scale_grad_by_freq",
                                   "sparse"), ("weight",)))
_register(F.embedding_bag, OpSpec("embedding_bag", "embedding_bag", "torch.nn.functional.embedding_bag",
                                  ("input", "weight", "offsets", "max_norm", "norm_type", "scale_grad_by_freq",
                                   "mode", "sparse", "per_sample_weights", "include_last_offset", "padding_idx"),
                                  ("weight",)))

# ------------------------------------------------------------------ normalization

_NORMS = (
    (F.layer_norm, "torch.nn.functional.layer_norm", "layer_norm",
     ("input", "normalized_shape", "weight", "bias", "eps")),
    (torch.layer_norm, "torch.layer_norm", "layer_norm",
     ("input", "normalized_shape", "weight", "bias", "eps", "cudnn_enable")),
    (F.rms_norm, "torch.nn.functional.rms_norm", "rms_norm",
     ("input", "normalized_shape", "weight", "eps")),
    (torch.rms_norm, "torch.rms_norm", "rms_norm", ("input", "normalized_shape", "weight", "eps")),
    (F.group_norm, "torch.nn.functional.group_norm", "group_norm",
     ("input", "num_groups", "weight", "bias", "eps")),
    (torch.group_norm, "torch.group_norm", "group_norm",
     ("input", "num_groups", "weight", "bias", "eps", "cudnn_enabled")),
    (F.batch_norm, "torch.nn.functional.batch_norm", "batch_norm",
     ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")),
    (torch.batch_norm, "torch.batch_norm", "batch_norm",
     ("input", "weight", "bias", "running_mean", "running_var", "training", "momentum", "eps",
      "cudnn_enabled")),
    (F.instance_norm, "torch.nn.functional.instance_norm", "instance_norm",
     ("input", "running_mean", "running_var", "weight", "bias", "use_input_stats", "momentum",
      "eps")),
    (torch.instance_norm, "torch.instance_norm", "instance_norm",
     ("input", "weight", "bias", "running_mean", "running_var", "use_input_stats", "momentum",
      "eps", "cudnn_enabled")),
)
for _func, _target, _op, _names in _NORMS:
    # running statistics are buffers, not operands: listed as roles so they are
    # kept out of Node.inputs (graph.py names them in attrs)
    _register(_func, OpSpec("norm", _op, _target, _names,
                            ("weight", "bias", "running_mean", "running_var")))

# ------------------------------------------------------------------ dropout

for _name in ("dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
              "feature_alpha_dropout"):
    _register(getattr(F, _name), OpSpec("dropout", _name, f"torch.nn.functional.{_name}",
                                        ("input", "p", "training", "inplace")))
for _name in ("dropout", "alpha_dropout", "feature_dropout", "feature_alpha_dropout"):
    for _func, _target, _inplace in _spellings(_name, (("torch", torch),)):
        _register(_func, OpSpec("dropout", _name, _target, ("input", "p", "train"),
                                inplace=_inplace))

# ------------------------------------------------------------------ pooling

for _n in (1, 2, 3):
    _avg = ("input", "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad",
            "divisor_override")
    _max = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
    for _func, _target in ((getattr(F, f"avg_pool{_n}d"), f"torch.nn.functional.avg_pool{_n}d"),):
        _register(_func, OpSpec("avg_pool", f"avg_pool{_n}d", _target, _avg, dims=_n))
    for _suffix in ("", "_with_indices"):
        _register(getattr(F, f"max_pool{_n}d{_suffix}"),
                  OpSpec("max_pool", f"max_pool{_n}d",
                         f"torch.nn.functional.max_pool{_n}d{_suffix}", _max, dims=_n))
        _register(getattr(F, f"adaptive_max_pool{_n}d{_suffix}"),
                  OpSpec("adaptive_max_pool", f"adaptive_max_pool{_n}d",
                         f"torch.nn.functional.adaptive_max_pool{_n}d{_suffix}",
                         ("input", "output_size", "return_indices"), dims=_n))
    _register(getattr(torch, f"max_pool{_n}d"),
              OpSpec("max_pool", f"max_pool{_n}d", f"torch.max_pool{_n}d", _max, dims=_n))
    _register(getattr(F, f"adaptive_avg_pool{_n}d"),
              OpSpec("adaptive_avg_pool", f"adaptive_avg_pool{_n}d",
                     f"torch.nn.functional.adaptive_avg_pool{_n}d", ("input", "output_size"),
                     dims=_n))
    _register(getattr(torch._C._nn, f"adaptive_avg_pool{_n}d", None),
              OpSpec("adaptive_avg_pool", f"adaptive_avg_pool{_n}d",
                     f"torch._C._nn.adaptive_avg_pool{_n}d", ("input", "output_size"), dims=_n))
_register(torch.adaptive_max_pool1d,
          OpSpec("adaptive_max_pool", "adaptive_max_pool1d", "torch.adaptive_max_pool1d",
                 ("input", "output_size"), dims=1))

# max unpooling (SegNet's decoder): each value lands at its max's place, zeros elsewhere
for _n in (1, 2, 3):
    _register(getattr(F, f"max_unpool{_n}d"),
              OpSpec("max_unpool", f"max_unpool{_n}d", f"torch.nn.functional.max_unpool{_n}d",
                     ("input", "indices", "kernel_size", "stride", "padding", "output_size"), dims=_n))
for _n in (2, 3):
    _register(getattr(torch._C._nn, f"max_unpool{_n}d", None),
              OpSpec("max_unpool", f"max_unpool{_n}d", f"torch._C._nn.max_unpool{_n}d",
                     ("input", "indices", "output_size"), dims=_n))

# ------------------------------------------------------------------ local response normalization

_register(F.local_response_norm, OpSpec("local_response_norm", "local_response_norm",
                                        "torch.nn.functional.local_response_norm",
                                        ("input", "size", "alpha", "beta", "k")))

# ------------------------------------------------------------------ interpolation

_INTERPOLATE = ("input", "size", "scale_factor", "mode", "align_corners", "recompute_scale_factor", "antialias")
_register(F.interpolate, OpSpec("interpolate", "interpolate", "torch.nn.functional.interpolate", _INTERPOLATE))
_register(F.upsample, OpSpec("interpolate", "interpolate", "torch.nn.functional.upsample", _INTERPOLATE[:5]))
_register(F.upsample_nearest, OpSpec("interpolate", "upsample_nearest", "torch.nn.functional.upsample_nearest",
                                     ("input", "size", "scale_factor")))
_register(F.upsample_bilinear, OpSpec("interpolate", "upsample_bilinear", "torch.nn.functional.upsample_bilinear",
                                      ("input", "size", "scale_factor")))

# ------------------------------------------------------------------ reductions, softmax, cat

for _name in ("mean", "sum"):
    for _func, _target, _ in _spellings(_name, _NAMESPACES[1:3], inplace_too=False):
        _register(_func, OpSpec(_name, _name, _target, ("input", "dim", "keepdim", "dtype")))
# the spread over the reduced dims (a LayerNorm or RevIN written out): correction by keyword,
# or unbiased by position or keyword (torch's older spelling)
for _name in ("var", "std"):
    for _func, _target, _ in _spellings(_name, _NAMESPACES[1:3], inplace_too=False):
        _register(_func, OpSpec(_name, _name, _target, ("input", "dim", "unbiased", "keepdim")))
# log sum exp over dims (a pooling written in log space, a CRF's partition function)
for _func, _target, _ in _spellings("logsumexp", _NAMESPACES[1:4], inplace_too=False):
    _register(_func, OpSpec("logsumexp", "logsumexp", _target, ("input", "dim", "keepdim")))
# running sums along one dim (linear attention's causal state, a running mean): torch.cumsum
# and x.cumsum; the in-place x.cumsum_ stays opaque, named
for _func, _target, _ in _spellings("cumsum", _NAMESPACES[1:3], inplace_too=False):
    _register(_func, OpSpec("cumsum", "cumsum", _target, ("input", "dim", "dtype")))
_register(F.softmax, OpSpec("softmax", "softmax", "torch.nn.functional.softmax",
                            ("input", "dim", "_stacklevel", "dtype")))
for _func, _target, _ in _spellings("softmax", _NAMESPACES[1:4], inplace_too=False):
    _register(_func, OpSpec("softmax", "softmax", _target, ("input", "dim", "dtype")))
_register(F.log_softmax, OpSpec("log_softmax", "log_softmax", "torch.nn.functional.log_softmax",
                                ("input", "dim", "_stacklevel", "dtype")))
for _func, _target, _ in _spellings("log_softmax", _NAMESPACES[1:4], inplace_too=False):
    _register(_func, OpSpec("log_softmax", "log_softmax", _target, ("input", "dim", "dtype")))
for _name in ("cat", "concat", "concatenate", "stack"):
    _register(getattr(torch, _name), OpSpec("cat", "stack" if _name == "stack" else "cat",
                                            f"torch.{_name}", ("tensors", "dim")))

# ------------------------------------------------------------------ products of activations

for _name in ("matmul", "bmm", "mm", "mv"):
    for _func, _target, _ in _spellings(_name, _NAMESPACES[1:3], inplace_too=False):
        _register(_func, OpSpec("matmul", _name, _target, ("input", "other")))
_register(torch.Tensor.__matmul__, OpSpec("matmul", "matmul", "torch.Tensor.__matmul__",
                                          ("input", "other")))
_register(torch.Tensor.__rmatmul__, OpSpec("matmul", "matmul", "torch.Tensor.__rmatmul__",
                                           ("input", "other"), reflected=True))
_register(torch.einsum, OpSpec("matmul", "einsum", "torch.einsum", ("equation",)))
# a sparse matrix times a dense one (graph convolutions' normalized adjacency)
_register(torch.sparse.mm, OpSpec("matmul", "mm", "torch.sparse.mm", ("input", "other")))
_register(getattr(getattr(torch._C, "_sparse", None), "_sparse_mm", None),
          OpSpec("matmul", "mm", "torch.sparse.mm", ("input", "other")))
_register(F.scaled_dot_product_attention,
          OpSpec("attention", "scaled_dot_product_attention",
                 "torch.nn.functional.scaled_dot_product_attention",
                 ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale",
                  "enable_gqa")))

# ------------------------------------------------------------------ recurrent layers

# torch.lstm is torch._VF.lstm, what nn.LSTM/GRU/RNN call with their flat weights.
for _name, _mode in (("lstm", "LSTM"), ("gru", "GRU"), ("rnn_tanh", "RNN_TANH"),
                     ("rnn_relu", "RNN_RELU")):
    _register(getattr(torch, _name), OpSpec("rnn", _mode, f"torch._VF.{_name}"))
    _register(getattr(torch, f"{_name}_cell"),
              OpSpec("rnn", _mode, f"torch._VF.{_name}_cell",
                     ("input", "hx", "w_ih", "w_hh", "b_ih", "b_hh"),
                     ("w_ih", "w_hh", "b_ih", "b_hh")))

# ------------------------------------------------------------------ moving and selecting

_VIEWS = ("view", "view_as", "reshape", "reshape_as", "permute", "transpose", "swapaxes",
          "swapdims", "t", "flatten", "unflatten", "contiguous", "expand", "expand_as",
          "broadcast_to", "squeeze", "unsqueeze", "chunk", "split", "split_with_sizes",
          "tensor_split", "hsplit", "vsplit", "dsplit", "unbind", "narrow", "select",
          "index_select", "gather", "take_along_dim", "repeat", "repeat_interleave", "tile",
          "movedim", "moveaxis", "roll", "flip", "fliplr", "flipud", "rot90", "clone",
          "detach", "to", "type", "type_as", "float", "double", "half", "bfloat16", "cpu",
          "cuda", "unfold", "diagonal", "ravel", "as_strided", "masked_select",
          "resolve_conj", "resolve_neg", "pixel_shuffle", "pixel_unshuffle",
          "constant_pad_nd", "channel_shuffle", "native_channel_shuffle",
          # a complex tensor as pairs of reals and back (Meta's Llama rotary embeddings)
          "view_as_complex", "view_as_real")
for _name in _VIEWS:
    for _func, _target, _inplace in _spellings(_name, _NAMESPACES[:3]):
        _register(_func, OpSpec("view", _name, _target, ("input",), inplace=_inplace))
# the entries it keeps pass unchanged; the dataflow reads the fill value (-inf before a
# softmax: a mask)
for _func, _target, _inplace in _spellings("masked_fill", _NAMESPACES[:3]):
    _register(_func, OpSpec("view", "masked_fill", _target, ("input", "mask", "value"), inplace=_inplace))
# where(condition, x, value) with a number for the value: the entries kept pass unchanged
# (torch.finfo.min before a softmax: a mask, as Hugging Face's GPT-2 writes it)
_register(torch.where, OpSpec("where", "where", "torch.where", ("condition", "input", "other")))
_register(torch.Tensor.where, OpSpec("where", "where", "torch.Tensor.where", ("input", "condition", "other")))
# nearest-neighbour upsampling (inside F.interpolate) repeats elements
for _name in ("upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d",
              "_upsample_nearest_exact1d", "_upsample_nearest_exact2d",
              "_upsample_nearest_exact3d"):
    _register(getattr(torch._C._nn, _name),
              OpSpec("view", _name, f"torch._C._nn.{_name}", ("input",)))
_register(F.pad, OpSpec("view", "pad", "torch.nn.functional.pad",
                        ("input", "pad", "mode", "value")))
_register(torch._C._nn.pad, OpSpec("view", "pad", "torch._C._nn.pad",
                                   ("input", "pad", "mode", "value")))
_register(torch.Tensor.__getitem__, OpSpec("view", "__getitem__", "torch.Tensor.__getitem__",
                                           ("input", "index")))
for _name in ("T", "mT", "H", "mH", "data", "real"):
    _register(_tensor_getter(_name), OpSpec("view", _name, f"torch.Tensor.{_name}", ("input",)))

# Element writes: the first operand's value after the write, x[index] = value (a
# mixture of experts writing each expert's tokens back), x.index_add(dim, index,
# source) (Hugging Face's eager Mixtral experts).
_register(torch.Tensor.__setitem__, OpSpec("scatter", "__setitem__", "torch.Tensor.__setitem__",
                                           ("input", "index", "value"), inplace=True))
for _func, _target, _inplace in _spellings("index_add", _NAMESPACES[1:3]):
    _register(_func, OpSpec("scatter", "index_add", _target, ("input", "dim", "index", "source", "alpha"),
                            inplace=_inplace))
# x.scatter_add(dim, index, src) and x.scatter_reduce(dim, index, src, reduce): the sums
# and means a graph network aggregates its edges' messages with (PyTorch Geometric's
# scatter, and message passing written by hand)
for _func, _target, _inplace in _spellings("scatter_add", _NAMESPACES[1:3]):
    _register(_func, OpSpec("scatter", "scatter_add", _target, ("input", "dim", "index", "src"), inplace=_inplace))
# x.scatter(dim, index, src) writes src's elements where the index points; x.copy_(src), all of them
for _func, _target, _inplace in _spellings("scatter", _NAMESPACES[1:3]):
    _register(_func, OpSpec("scatter", "scatter", _target, ("input", "dim", "index", "src"), inplace=_inplace))
_register(torch.Tensor.copy_, OpSpec("scatter", "copy_", "torch.Tensor.copy_", ("input", "src"), inplace=True))
for _func, _target, _inplace in _spellings("scatter_reduce", _NAMESPACES[1:3]):
    _register(_func, OpSpec("scatter", "scatter_reduce", _target,
                            ("input", "dim", "index", "src", "reduce", "include_self"), inplace=_inplace))

# ------------------------------------------------------------------ not recorded

# (a size given as a tensor, batch_sizes[0] in a packed RNN, still makes a constant)
for _name in ("zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
              "randint_like", "zeros", "ones", "empty", "full", "arange", "rand", "randn",
              "randint", "randperm", "eye", "linspace", "logspace"):
    _register(getattr(torch, _name), OpSpec(IGNORE, _name, f"torch.{_name}"))
for _name in ("new_zeros", "new_ones", "new_empty", "new_full", "new_tensor", "requires_grad_",
              "retain_grad", "register_hook", "record_stream", "__repr__", "__str__",
              "__format__", "__array__", "__contains__", "__deepcopy__", "__reduce_ex__"):
    _register(getattr(torch.Tensor, _name), OpSpec(IGNORE, _name, f"torch.Tensor.{_name}"))
_register(_tensor_getter("grad"), OpSpec(IGNORE, "grad", "torch.Tensor.grad"))


# ------------------------------------------------------------------ names of the rest

_PUBLIC_NAMES: dict[Any, str] = {}


def public_name(func: Any) -> str:
    """The qualified public name of a torch function the tables do not list
    ("torch.nn.functional.glu", "torch.Tensor.masked_fill", "torch._weight_norm"),
    for an "opaque" node's target and the warning that names it."""
    spec = SPECS.get(func)
    if spec is not None:
        return spec.target
    if not _PUBLIC_NAMES:
        for prefix, namespace in _NAMESPACES + (("torch.linalg", torch.linalg),
                                                ("torch.fft", torch.fft)):
            for name in dir(namespace):
                try:
                    _PUBLIC_NAMES.setdefault(getattr(namespace, name), f"{prefix}.{name}")
                except (TypeError, AttributeError, RuntimeError):  # unhashable or lazy attribute
                    continue
    try:
        known = _PUBLIC_NAMES.get(func)
    except TypeError:
        known = None
    if known is not None:
        return known
    owner = getattr(func, "__self__", None)
    if getattr(func, "__name__", None) == "__get__" and owner is not None:   # a Tensor property
        return f"torch.Tensor.{owner.__name__}"
    if isinstance(owner, type):      # a classmethod: a custom autograd Function's apply
        return f"{owner.__module__}.{owner.__qualname__}.{func.__name__}"
    module = getattr(func, "__module__", None) or "torch"
    qualname = getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func))
    return f"{module}.{qualname}"


def is_inplace_name(func: Any) -> bool:
    """relu_, add_, masked_fill_: torch's naming of ops that write into their first operand."""
    name = getattr(func, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


__all__ = ["IGNORE", "OpSpec", "SPECS", "public_name", "is_inplace_name"]
