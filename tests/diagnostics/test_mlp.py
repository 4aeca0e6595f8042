"""mlp_spec: every init draws the std it names, with the activation's gain where it applies."""
import math

import numpy as np
import pytest

import varinit
from varinit.diagnostics.mlp import SMALL_STD, mlp_spec

WIDTH = 384   # 147456 weights per layer: the sample std has relative sd 1/sqrt(2n) = 0.18%


@pytest.mark.parametrize("init, activation, target", [
    ("naive", "relu", 1.0),
    ("small", "relu", SMALL_STD),
    ("xavier_normal", "relu", math.sqrt(2 / (WIDTH + WIDTH))),
    ("xavier_uniform", "tanh", math.sqrt(2 / (WIDTH + WIDTH))),
    ("kaiming_normal", "relu", math.sqrt(2 / WIDTH)),
    ("kaiming_normal", "tanh", 5 / 3 / math.sqrt(WIDTH)),                 # torch's table for tanh
    ("kaiming_uniform", "gelu", varinit.gain("gelu") / math.sqrt(WIDTH)),  # varinit.gain elsewhere
    ("lecun_normal", "selu", 1 / math.sqrt(WIDTH)),
    ("lecun_uniform", "relu", 1 / math.sqrt(WIDTH)),
    ("orthogonal", "relu", math.sqrt(2 / WIDTH)),
    (0.05, "relu", 0.05),
])
def test_spec_init_std(init, activation, target):
    layers = mlp_spec(depth=2, width=WIDTH, activation=activation, init=init, seed=1)
    for layer in layers:
        assert layer.weight.shape == (WIDTH, WIDTH) and layer.weight.dtype == np.float64
        # 2% is > 10 relative sds of the sample std (uniform and truncated normals have smaller sds)
        assert layer.weight.std() == pytest.approx(target, rel=0.02)
        assert np.all(layer.bias == 0)
    assert not np.array_equal(layers[0].weight, layers[1].weight)


def test_spec_is_reproducible_and_seeds_differ():
    a = mlp_spec(depth=3, width=16, seed=7)
    b = mlp_spec(depth=3, width=16, seed=7)
    c = mlp_spec(depth=3, width=16, seed=8)
    assert all(np.array_equal(x.weight, y.weight) for x, y in zip(a, b))
    assert not np.array_equal(a[0].weight, c[0].weight)


def test_spec_options():
    layers = mlp_spec(depth=2, width=8, in_features=3, activation="leaky_relu", param=0.2, bias_std=0.5, seed=2)
    assert layers[0].weight.shape == (8, 3) and layers[1].weight.shape == (8, 8)
    assert layers[0].bias.std() > 0 and layers[0].param == 0.2
    assert varinit.propagate(layers, batch=4).layers[0].width == 8
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        mlp_spec(depth=0)
    with pytest.raises(TypeError, match="width must be an int"):
        mlp_spec(width=2.5)
    with pytest.raises(ValueError, match="bias_std must be a finite number"):
        mlp_spec(depth=1, width=4, bias_std=-1.0)
    with pytest.raises(ValueError, match="init given as a std must be a finite number >= 0"):
        mlp_spec(depth=1, width=4, init=float("nan"))
