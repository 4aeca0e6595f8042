"""varinit: principled neural-network weight initialization, in place, from a
fast C core whose values are the same bits on every machine.

The torch.nn.init names (uniform_, normal_, trunc_normal_, kaiming_normal_,
xavier_uniform_, orthogonal_, ...) fill NumPy arrays and PyTorch CPU tensors;
variance_scaling_ and lecun_* follow Keras/JAX; fans() computes fans per layer;
gain() and criticality() handle any activation; depth_scale, attention_qk_,
mup_init_, whitening_, delta_orthogonal_ and friends are architecture recipes.
"""
from . import _core
from .activations import activation_derivative, activation_fn, gain, second_moment
from .attention import attention_qk_, attention_qk_std
from .delta_orthogonal import delta_orthogonal_
from .fans import fans
from .gains import calculate_gain
from .gaussian import gaussian_expectation
from .generator import Generator, default_generator, initial_seed, manual_seed
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
from .training_scales import adam_lr, critical_input_scale, gradient_norm_growth
from .whitening import whitening_
from .width import MupScales, mup_init_, mup_scales

__version__ = "0.1.0"
STREAM_VERSION = _core.STREAM_VERSION
isa = _core.isa

__all__ = [
    "Criticality", "activation_derivative", "activation_fn", "critical_sigma_w", "criticality",
    "gain", "gaussian_expectation", "second_moment",
    "DenseLayer", "PropagationReport", "adam_lr", "compare_text", "critical_input_scale",
    "gradient_norm_growth", "int8_input_scale", "min_weight_std", "mlp_spec", "plot_propagation",
    "plot_weight_histograms", "propagate", "quantize_int8", "range_checks",
    "DeepNormEncoderDecoder", "DeepNormScales", "MupScales", "TFixupScales", "attention_qk_",
    "attention_qk_std", "branch_scale", "delta_orthogonal_", "depth_scale", "identity_",
    "mup_init_", "mup_scales", "optimistic_bias_", "prior_bias_", "whitening_",
    "zero_branch_output_", "zero_gamma_",
    "Generator", "STREAM_VERSION", "calculate_gain", "constant_", "default_generator",
    "dirac_", "eye_", "fans", "initial_seed", "isa", "kaiming_normal_", "kaiming_uniform_",
    "lecun_normal_", "lecun_uniform_", "manual_seed", "normal_", "ones_", "orthogonal_",
    "sparse_", "trunc_normal_", "uniform_", "variance_scaling_", "xavier_normal_",
    "xavier_uniform_", "zeros_",
]
