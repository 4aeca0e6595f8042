"""What the whole-model functions report, one record per parameter or layer.

The NumPy functions (varinit.layers) and their torch twins (varinit.torch)
return lists of the same records.
"""
from typing import NamedTuple, Optional, Union

import numpy as np


class InitRecord(NamedTuple):
    """What was done to one parameter: its name, the rule, its fans (None when
    the rule uses none) and the standard deviation of its entries."""

    name: str
    rule: str
    fan_in: Optional[Union[int, float]]
    fan_out: Optional[Union[int, float]]
    std: float


class LsuvRecord(NamedTuple):
    """One layer after LSUV: its name, how many rescalings were made, the
    variance of its output after the last one, and whether it is within tol."""

    name: str
    iterations: int
    variance: float
    converged: bool


class WeightNormRecord(NamedTuple):
    """One layer after the weight-norm data init: its name and, per output
    unit, the mean and std on the data of t = (v . x) / ||v|| before the init
    (the init sets g = 1 / std and b = -mean / std)."""

    name: str
    mean: np.ndarray
    std: np.ndarray
