"""What the whole-model functions report, one record per parameter or layer.

The NumPy functions (varinit.layers) and their torch twins (varinit.torch)
return lists of the same records.
"""
from typing import NamedTuple, Optional, Union

from .._typing import FloatArray


class InitRecord(NamedTuple):
    """What an init did to one parameter: one line of `init_layers`' and `varinit.torch.init_module`'s reports.

    Parameters
    ----------
    name : str
        The parameter's name ("0.weight", "encoder.layers.0.linear1.bias").
    rule : str
        What it got, e.g. "kaiming normal fan_in, gain(relu)=1.41421", "zeros",
        or "untouched" with the reason.
    fan_in, fan_out : int, float or None
        The fans the rule used (None when it uses none).
    std : float
        The standard deviation of its entries.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layers = [(np.empty((256, 784), np.float32), None, "relu")]
    >>> varinit.layers.init_layers(layers, generator=0)[0]
    InitRecord(name='0.weight', rule='kaiming normal fan_in, gain(relu)=1.41421', fan_in=784, fan_out=256, std=0.0505...)
    """

    name: str
    rule: str
    fan_in: Optional[Union[int, float]]
    fan_out: Optional[Union[int, float]]
    std: float


class LsuvRecord(NamedTuple):
    """One layer after LSUV: one line of `lsuv`'s report.

    Parameters
    ----------
    name : str
        The layer's name.
    iterations : int
        How many rescalings were made.
    variance : float
        The variance of its output after the last one.
    converged : bool
        Whether it is within the tolerance.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layers = [(np.empty((64, 32)), np.empty(64), "tanh")]
    >>> record = varinit.layers.lsuv(layers, np.random.default_rng(0).standard_normal((256, 32)), generator=0)[0]
    >>> record.converged, round(record.variance, 3)
    (True, 1.0)
    """

    name: str
    iterations: int
    variance: float
    converged: bool


class WeightNormRecord(NamedTuple):
    """One layer after the weight-norm data init: one line of `weight_norm_init`'s report.

    Parameters
    ----------
    name : str
        The layer's name.
    mean, std : ndarray
        Per output unit, the mean and std on the data of t = (v . x) / ||v||
        before the init (the init sets g = 1 / std and b = -mean / std).

    Examples
    --------
    >>> import numpy as np, varinit
    >>> layers = [{"weight": np.empty((64, 32)), "bias": np.empty(64), "g": np.empty(64)}]
    >>> _ = varinit.layers.init_layers(layers, generator=0)
    >>> record = varinit.layers.weight_norm_init(layers, np.random.default_rng(0).standard_normal((512, 32)))[0]
    >>> record.name, record.mean.shape, record.std.shape
    ('0', (64,), (64,))
    """

    name: str
    mean: FloatArray
    std: FloatArray
