"""Whole torch.nn.Module models: init_module (analytic, per layer), lsuv
(data-driven unit variance) and weight_norm_init (weight-norm data init),
the twins of varinit.layers' functions with the same arguments and records.

Imported on first use of `varinit.torch`, so `import varinit` never imports
PyTorch. Inside this package `import torch` is an absolute import and names
the real PyTorch.
"""
from ..layers.records import InitRecord, LsuvRecord, WeightNormRecord
from .initialize import init_module
from .modules import activation_of_module
from .unit_variance import lsuv
from .weight_normalization import weight_norm_init

__all__ = ["init_module", "lsuv", "weight_norm_init", "activation_of_module",
           "InitRecord", "LsuvRecord", "WeightNormRecord"]
