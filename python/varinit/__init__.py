"""varinit: principled neural-network weight initialization, in place, from a
fast C core whose values are the same bits on every machine.

The torch.nn.init names (uniform_, normal_, trunc_normal_, kaiming_normal_,
xavier_uniform_, orthogonal_, ...) fill NumPy arrays and PyTorch CPU tensors;
variance_scaling_ and lecun_* follow Keras/JAX; fans() computes fans per layer.
"""
from . import _core
from .fans import fans
from .gains import calculate_gain
from .generator import Generator, default_generator, initial_seed, manual_seed
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
set_num_threads = _core.set_num_threads
get_num_threads = _core.get_num_threads

__all__ = [
    "Generator", "STREAM_VERSION", "calculate_gain", "constant_", "default_generator",
    "dirac_", "eye_", "fans", "get_num_threads", "initial_seed", "isa", "kaiming_normal_",
    "kaiming_uniform_", "lecun_normal_", "lecun_uniform_", "manual_seed", "normal_", "ones_",
    "orthogonal_", "set_num_threads", "sparse_", "trunc_normal_", "uniform_", "variance_scaling_",
    "xavier_normal_", "xavier_uniform_", "zeros_",
]
