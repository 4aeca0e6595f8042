"""Architecture recipes: what a residual, attention, wide or whitened layer
needs beyond its fans.

- depth: depth_scale (GPT-2, Fixup, T-Fixup, DeepNorm), branch_scale,
  zero_branch_output_, zero_gamma_, identity_;
- attention: attention_qk_std, attention_qk_;
- width: mup_scales, mup_init_ (muP, Yang et al. 2021);
- whitening_, delta_orthogonal_;
- output heads: optimistic_bias_, prior_bias_.
"""
from .attention import attention_qk_, attention_qk_std
from .delta_orthogonal import delta_orthogonal_
from .heads import optimistic_bias_, prior_bias_
from .mup import MupScales, mup_init_, mup_scales
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
from .whitening import whitening_

__all__ = [
    "depth_scale", "branch_scale", "zero_branch_output_", "zero_gamma_", "identity_",
    "DeepNormScales", "DeepNormEncoderDecoder", "TFixupScales",
    "attention_qk_std", "attention_qk_", "mup_scales", "mup_init_", "MupScales",
    "whitening_", "delta_orthogonal_", "optimistic_bias_", "prior_bias_",
]
