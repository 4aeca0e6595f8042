"""varinit: principled neural-network weight initialization, in place, from a
fast C core whose values are the same bits on every machine.

The torch.nn.init names (uniform_, normal_, trunc_normal_, kaiming_normal_,
xavier_uniform_, orthogonal_, ...) fill NumPy arrays and PyTorch CPU tensors;
variance_scaling_ and lecun_* follow Keras/JAX; fans() computes fans per layer;
gain() and criticality() handle any activation; depth_scale, attention_qk_,
mup_init_, whitening_, delta_orthogonal_ and friends are architecture recipes.
init_layers, lsuv and weight_norm_init initialize whole NumPy models;
varinit.torch (imported on first use) does the same for torch.nn.Module.
"""
from types import ModuleType as _ModuleType

from . import _core
from .activations import activation_derivative, activation_fn, gain, second_moment
from .attention import attention_qk_, attention_qk_std
from .delta_orthogonal import delta_orthogonal_
from .fans import fans
from .gains import calculate_gain
from .gaussian import gaussian_expectation
from .generator import Generator, NamedStream, default_generator, initial_seed, manual_seed
from .heads import optimistic_bias_, prior_bias_
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
from .layers import Layer, init_layers
from .lsuv import LsuvRecord, lsuv
from .mean_field import Criticality, critical_sigma_w, criticality
from .network import DenseLayer, mlp_spec
from .plots import plot_propagation, plot_weight_histograms
from .precision import int8_input_scale, min_weight_std, quantize_int8, range_checks
from .propagation import propagate
from .report import PropagationReport, compare_text
from .residual import (
    DeepNormEncoderDecoder,
    DeepNormScales,
    TFixupScales,
    branch_scale,
    depth_scale,
    identity_,
    zero_branch_output_,
    zero_gamma_,
)
from .schemes import InitRecord
from .training_scales import adam_lr, critical_input_scale, gradient_norm_growth
from .weight_norm import weight_norm_init
from .whitening import whitening_
from .width import MupScales, mup_init_, mup_scales

__version__ = "0.1.0"
STREAM_VERSION = _core.STREAM_VERSION
isa = _core.isa
cpu_features = _core.cpu_features
set_num_threads = _core.set_num_threads
get_num_threads = _core.get_num_threads

# Everything imported above that is not a submodule is the public API.
__all__ = sorted(
    name for name, value in globals().items()
    if not name.startswith("_") and not isinstance(value, _ModuleType)
)


def __getattr__(name):
    # varinit.torch (init_module, lsuv, weight_norm_init on torch.nn.Module)
    # imports PyTorch, so it is loaded on first use only.
    if name == "torch":
        import importlib

        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
