"""varinit: principled neural-network weight initialization, in place, from a
fast C core whose values are the same bits on every machine.

The top level holds what a single tensor needs: the torch.nn.init set
(uniform_, normal_, trunc_normal_, kaiming_normal_, xavier_uniform_,
orthogonal_, ...), variance_scaling_ and lecun_* (Keras/JAX), fans, gains,
the generator and seeding, thread and ISA control, and propagate. The rest
lives in subpackages, each imported on first use:

- varinit.recipes: depth scaling for residual nets, attention, muP width
  scaling, whitening, delta-orthogonal, output-head biases;
- varinit.diagnostics: the propagation report, mean-field theory, low
  precision checks, training-scale helpers, plots, a ready-made MLP;
- varinit.layers: whole NumPy models (Layer, init_layers, lsuv,
  weight_norm_init);
- varinit.torch: whole torch.nn.Module models (init_module, lsuv,
  weight_norm_init); imports PyTorch;
- varinit.scale_out: Dask constructors, out-of-core fills and file writers.
- varinit.keras, varinit.jax: Keras 3 initializer classes and JAX/Flax
  initializer factories with varinit's values; import Keras / JAX.
"""
import importlib as _importlib
import types as _types

from . import _core
from .diagnostics.propagation import propagate
from .fan_rules import fans
from .gains import calculate_gain, gain
from .generator import Generator, NamedStream, Stream, default_generator, initial_seed, manual_seed
from .init import (
    constant_,
    dirac_,
    eye_,
    kaiming_normal_,
    kaiming_uniform_,
    lecun_normal_,
    lecun_uniform_,
    normal_,
    ones_,
    orthogonal_,
    sparse_,
    trunc_normal_,
    uniform_,
    variance_scaling_,
    xavier_normal_,
    xavier_uniform_,
    zeros_,
)

__version__ = "0.1.0"
STREAM_VERSION = _core.STREAM_VERSION
isa = _core.isa
cpu_features = _core.cpu_features
set_num_threads = _core.set_num_threads
get_num_threads = _core.get_num_threads

__all__ = [
    # torch.nn.init, name for name
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_", "calculate_gain",
    # Keras/JAX variance scaling
    "variance_scaling_", "lecun_normal_", "lecun_uniform_",
    # fans and gains
    "fans", "gain",
    # seeds and streams
    "Generator", "Stream", "NamedStream", "default_generator", "manual_seed", "initial_seed",
    "STREAM_VERSION",
    # threads and instruction sets
    "set_num_threads", "get_num_threads", "isa", "cpu_features",
    # the diagnostic every user starts with
    "propagate",
]

_SUBPACKAGES = ("recipes", "diagnostics", "layers", "torch", "scale_out", "cli", "keras", "jax")


def __getattr__(name: str) -> _types.ModuleType:
    # Subpackages load on first use: varinit.torch imports PyTorch, and the
    # others are not needed to fill a tensor.
    if name in _SUBPACKAGES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
