"""Whole torch.nn.Module models: init_module (from the traced dataflow when
given example inputs, else from the module structure), lsuv (data-driven unit
variance) and weight_norm_init (weight-norm data init), the twins of
varinit.layers' functions with the same arguments and records; trace, the
dataflow of one forward pass.

Imported on first use of `varinit.torch`, so `import varinit` never imports
PyTorch. Inside this package `import torch` is an absolute import and names
the real PyTorch.
"""
from ..layers.records import InitRecord, LsuvRecord, WeightNormRecord
from .graph import trace
from .init_report import InitReport, UnhealthyInitError
from .initialize import init_module
from .modules import activation_of_module
from .unit_variance import lsuv
from .weight_normalization import weight_norm_init

__all__ = ["init_module", "lsuv", "weight_norm_init", "activation_of_module", "trace",
           "InitRecord", "LsuvRecord", "WeightNormRecord", "InitReport", "UnhealthyInitError"]
