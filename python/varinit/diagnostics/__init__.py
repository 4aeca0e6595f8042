"""Diagnostics: how a signal travels through a network, beside the theory.

- propagate: one forward and backward pass measured per layer (NumPy layer
  lists and torch modules), with the mean-field prediction; PropagationReport
  and compare_text;
- mean field: criticality, critical_sigma_w;
- low precision: range_checks, min_weight_std, int8_input_scale, quantize_int8;
- training scales: adam_lr, critical_input_scale, gradient_norm_growth;
- plots: plot_propagation, plot_weight_histograms;
- mlp_spec: a ready-made NumPy MLP to compare initializations on.
"""
from .mean_field import Criticality, critical_sigma_w, criticality
from .mlp import mlp_spec
from .plots import plot_propagation, plot_weight_histograms
from .precision import int8_input_scale, min_weight_std, quantize_int8, range_checks
from .propagation import propagate
from .report import LayerStats, PropagationReport, compare_text
from .training_scales import adam_lr, critical_input_scale, gradient_norm_growth

__all__ = [
    "propagate", "PropagationReport", "LayerStats", "compare_text",
    "criticality", "critical_sigma_w", "Criticality",
    "range_checks", "min_weight_std", "int8_input_scale", "quantize_int8",
    "adam_lr", "critical_input_scale", "gradient_norm_growth",
    "plot_propagation", "plot_weight_histograms", "mlp_spec",
]
