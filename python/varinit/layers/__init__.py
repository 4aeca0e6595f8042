"""Whole NumPy models: a model is a list of `Layer`s.

init_layers (analytic, per layer), lsuv (data-driven unit variance) and
weight_norm_init (weight-norm data init) work on them in place; their torch
twins with the same names, arguments and records are in varinit.torch.
"""
from .initialize import init_layers
from .layer import Layer, backward, forward
from .records import InitRecord, LsuvRecord, WeightNormRecord
from .reports import LsuvReport, WeightNormReport
from .unit_variance import lsuv
from .weight_normalization import weight_norm_init

__all__ = ["Layer", "forward", "backward", "init_layers", "lsuv", "weight_norm_init",
           "InitRecord", "LsuvRecord", "WeightNormRecord", "LsuvReport", "WeightNormReport"]
