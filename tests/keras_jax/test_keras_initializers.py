"""varinit.keras on Keras 3's torch backend: the same bits as varinit's NumPy fill for
the same seed and stream, Keras's fans, the call rule (a counter per seeded instance,
fixed streams, the default generator), config and model round trips, clear errors.

CI installs the [test] extra, which holds Keras: there a missing Keras fails the run
instead of skipping these tests (CI=true); elsewhere they skip without it.
"""
import math
import os

import ml_dtypes
import numpy as np
import pytest

import varinit
from varinit.generator import Stream

os.environ.setdefault("KERAS_BACKEND", "torch")
if os.environ.get("CI"):
    import keras
else:
    keras = pytest.importorskip("keras", reason="needs the [keras] extra: pip install 'varinit[keras]'")
import torch  # noqa: E402 - Keras's backend here, and the PyTorch side of torch_layout

import varinit.keras as vk  # noqa: E402

# Keras's torch backend converts tensors to NumPy in a way NumPy 2 deprecates
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

KERAS_AXES = dict(in_axis=-2, out_axis=-1)


def keras_orthogonal(gain):
    """Keras's layout: the (prod(shape[:-1]), shape[-1]) matrix, reshaped."""
    def fill(arr, generator):
        matrix = np.empty((math.prod(arr.shape[:-1]), arr.shape[-1]), arr.dtype)
        varinit.orthogonal_(matrix, gain, generator)
        arr[...] = matrix.reshape(arr.shape)
    return fill


# name -> (initializer for given seed keywords, the NumPy fill it must equal)
RANDOM = {
    "RandomNormal": (lambda **s: vk.RandomNormal(0.5, 0.2, **s),
                     lambda a, g: varinit.normal_(a, 0.5, 0.2, g)),
    "RandomUniform": (lambda **s: vk.RandomUniform(-0.3, 0.1, **s),
                      lambda a, g: varinit.uniform_(a, -0.3, 0.1, g)),
    "TruncatedNormal": (lambda **s: vk.TruncatedNormal(0.1, 0.2, **s),
                        lambda a, g: varinit.trunc_normal_(a, 0.1, 0.2, 0.1 - 0.4, 0.1 + 0.4, g)),
    "VarianceScaling": (lambda **s: vk.VarianceScaling(0.5, "fan_avg", "uniform", **s),
                        lambda a, g: varinit.variance_scaling_(a, 0.5, "fan_avg", "uniform", g, **KERAS_AXES)),
    "VarianceScaling_untruncated": (
        lambda **s: vk.VarianceScaling(3.0, "fan_out", "untruncated_normal", **s),
        lambda a, g: varinit.variance_scaling_(a, 3.0, "fan_out", "normal", g, **KERAS_AXES)),
    "GlorotNormal": (vk.GlorotNormal, lambda a, g: varinit.variance_scaling_(
        a, 1.0, "fan_avg", "truncated_normal", g, **KERAS_AXES)),
    "GlorotUniform": (vk.GlorotUniform, lambda a, g: varinit.variance_scaling_(
        a, 1.0, "fan_avg", "uniform", g, **KERAS_AXES)),
    "HeNormal": (vk.HeNormal, lambda a, g: varinit.variance_scaling_(
        a, 2.0, "fan_in", "truncated_normal", g, **KERAS_AXES)),
    "HeUniform": (vk.HeUniform, lambda a, g: varinit.variance_scaling_(a, 2.0, "fan_in", "uniform", g, **KERAS_AXES)),
    "LecunNormal": (vk.LecunNormal, lambda a, g: varinit.variance_scaling_(
        a, 1.0, "fan_in", "truncated_normal", g, **KERAS_AXES)),
    "LecunUniform": (vk.LecunUniform, lambda a, g: varinit.variance_scaling_(
        a, 1.0, "fan_in", "uniform", g, **KERAS_AXES)),
    "Orthogonal": (lambda **s: vk.Orthogonal(1.5, **s), keras_orthogonal(1.5)),
}
SHAPES = [(48, 24), (24, 48), (3, 3, 8, 16)]   # Dense (in, out) tall and wide, Conv2D (kh, kw, in, out)


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def as_numpy(tensor, name):
    """The tensor's values in NumPy dtype `name` (bfloat16 comes back through float32, exactly)."""
    assert keras.backend.standardize_dtype(tensor.dtype) == name
    return np.asarray(keras.ops.convert_to_numpy(tensor)).astype(np_dtype(name))


def reference(fill, shape, name, generator):
    arr = np.full(shape, 0.25, np_dtype(name))
    fill(arr, generator)
    return arr


@pytest.mark.parametrize("name", RANDOM)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_values_equal_the_numpy_fill(name, shape, dtype):
    make, fill = RANDOM[name]
    got = as_numpy(make(seed=1234, stream="layer/kernel")(shape, dtype), dtype)
    want = reference(fill, shape, dtype, varinit.Generator(1234).stream("layer/kernel"))
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("name", RANDOM)
def test_a_seeded_instance_counts_streams(name):
    """seed=S without a stream: call k is stream k of S (the first: generator=S)."""
    make, fill = RANDOM[name]
    init, counter = make(seed=77), varinit.Generator(77)
    calls = [as_numpy(init((32, 16)), "float32") for _ in range(3)]
    for got in calls:
        assert got.tobytes() == reference(fill, (32, 16), "float32", counter).tobytes()
    assert calls[0].tobytes() == reference(fill, (32, 16), "float32", 77).tobytes()
    assert not np.array_equal(calls[0], calls[1])
    # a new instance (what from_config and a rebuilt model make) replays the sequence
    again = type(init).from_config(init.get_config())
    assert as_numpy(again((32, 16)), "float32").tobytes() == calls[0].tobytes()


def test_fixed_streams_repeat_and_unseeded_calls_follow_the_default_generator():
    fixed = vk.HeNormal(seed=5, stream=9)
    first, second = as_numpy(fixed((16, 8)), "float32"), as_numpy(fixed((16, 8)), "float32")
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() == reference(RANDOM["HeNormal"][1], (16, 8), "float32", Stream(5, 9)).tobytes()

    varinit.manual_seed(42)
    unseeded = vk.HeNormal()
    calls = [as_numpy(unseeded((16, 8)), "float32") for _ in range(2)]
    varinit.manual_seed(42)
    want = [reference(RANDOM["HeNormal"][1], (16, 8), "float32", None) for _ in range(2)]
    assert [c.tobytes() for c in calls] == [w.tobytes() for w in want]
    assert not np.array_equal(*calls)


@pytest.mark.parametrize("name", ["HeNormal", "GlorotUniform", "RandomNormal", "Orthogonal"])
@pytest.mark.parametrize("shape", [(48, 24), (3, 3, 8, 16), (5, 8, 16)])
def test_torch_layout_holds_the_pytorch_weights(name, shape):
    """torch_layout=True: kernel == weight.permute(*kernel axes, in, out) of the PyTorch
    weight (out, in, *kernel) filled by varinit from the same seed and stream."""
    make, _ = RANDOM[name]
    torch_fill = {
        "HeNormal": lambda w, g: varinit.variance_scaling_(w, 2.0, "fan_in", "truncated_normal", g),
        "GlorotUniform": lambda w, g: varinit.variance_scaling_(w, 1.0, "fan_avg", "uniform", g),
        "RandomNormal": lambda w, g: varinit.normal_(w, 0.5, 0.2, g),
        "Orthogonal": lambda w, g: varinit.orthogonal_(w, 1.5, g),
    }[name]
    weight = torch.empty((shape[-1], shape[-2]) + shape[:-2])
    torch_fill(weight, varinit.Generator(3).stream("conv"))
    kernel = as_numpy(make(seed=3, stream="conv", torch_layout=True)(shape), "float32")
    permuted = weight.permute(*range(2, weight.dim()), 1, 0).numpy()
    assert kernel.tobytes() == np.ascontiguousarray(permuted).tobytes()


def sample_variance(initializer, shape):
    return float(np.var(as_numpy(initializer(shape), "float32").astype(np.float64)))


@pytest.mark.parametrize("shape", [
    (512, 256),         # Dense
    (3, 3, 128, 64),    # Conv2D
    (3, 3, 32, 128),    # Conv2D(groups=4) on 128 channels: Keras's fans
])
@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize("distribution", ["truncated_normal", "untruncated_normal", "uniform"])
def test_variance_matches_keras_own_variance_scaling(shape, mode, distribution):
    """Sample variances of varinit's and Keras's VarianceScaling for one shape. Each has
    relative spread at most sqrt(2 / n) (normal values; the truncated and uniform ones
    spread less); 6 of them on each side fail a correct fan with probability < 1e-8,
    while a receptive field counted wrongly (x 9) or a swapped mode (x 2) is far off."""
    ours = sample_variance(vk.VarianceScaling(2.0, mode, distribution, seed=1), shape)
    theirs = sample_variance(keras.initializers.VarianceScaling(2.0, mode, distribution, seed=1), shape)
    spread = math.sqrt(2 / math.prod(shape))
    assert abs(ours / theirs - 1) < 12 * spread
    assert 12 * spread < 0.5


@pytest.mark.parametrize("mode,fan", [("fan_in", 128), ("fan_out", 256), ("fan_avg", 192)])
def test_input_and_output_axes_count_those_axes_alone(mode, fan):
    """Keras's input_axes/output_axes (keras-team/keras pull 22789): the fans are the
    products of those axes; axis 0 of (4, 128, 256) counts in neither. 6-sigma bound on
    the sample variance; counting axis 0 would give a quarter of it."""
    shape = (4, 128, 256)
    init = vk.VarianceScaling(2.0, mode, "untruncated_normal", seed=1, input_axes=[1], output_axes=[2])
    variance = sample_variance(init, shape)
    bound = 6 * math.sqrt(2 / math.prod(shape))
    assert abs(variance * fan / 2.0 - 1) < bound < 0.5


def test_fans_are_keras_not_varinit_grouped_rule():
    """A grouped kernel (kh, kw, in/g, out) gets Keras's fan_out = out * kh * kw, g times
    varinit.fans(layer="conv", groups=g)'s: the class keeps the layout's own rule."""
    kernel = (3, 3, 32, 128)
    fan_out = varinit.fans(kernel, **KERAS_AXES)[1]
    assert fan_out == 128 * 9
    assert varinit.fans((128, 32, 3, 3), layer="conv", groups=4)[1] * 4 == fan_out
    variance = sample_variance(vk.VarianceScaling(1.0, "fan_out", "untruncated_normal", seed=2), kernel)
    assert abs(variance * fan_out - 1) < 6 * math.sqrt(2 / math.prod(kernel))


def test_keras_normal_means_its_truncated_normal():
    a = vk.VarianceScaling(2.0, "fan_in", "normal", seed=1, stream=0)
    b = vk.VarianceScaling(2.0, "fan_in", "truncated_normal", seed=1, stream=0)
    assert a.get_config()["distribution"] == "truncated_normal"
    assert as_numpy(a((64, 32)), "float32").tobytes() == as_numpy(b((64, 32)), "float32").tobytes()


@pytest.mark.parametrize("initializer,shape,want", [
    (vk.Constant(0.375), (3, 4), np.full((3, 4), 0.375)),
    (vk.Zeros(), (2, 5), np.zeros((2, 5))),
    (vk.Ones(), (5,), np.ones(5)),
    (vk.Identity(2.5), (3, 4), 2.5 * np.eye(3, 4)),
])
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_deterministic_initializers(initializer, shape, want, dtype):
    got = as_numpy(initializer(shape, dtype), dtype)
    assert got.tobytes() == want.astype(np_dtype(dtype)).tobytes()


ALL = [make(seed=3, stream="s") for make, _ in RANDOM.values()] + [
    vk.HeNormal(seed=3), vk.GlorotUniform(seed=2**64 - 1, stream=2**64 - 1, torch_layout=True),
    vk.VarianceScaling(2.0, "fan_avg", "uniform", seed=4, input_axes=[1], output_axes=[2]),
    vk.Constant(0.5), vk.Zeros(), vk.Ones(), vk.Identity(2.0),
]


@pytest.mark.parametrize("initializer", ALL, ids=lambda i: type(i).__name__)
def test_config_round_trip(initializer):
    config = initializer.get_config()
    copy = type(initializer).from_config(config)
    assert copy.get_config() == config
    serialized = keras.initializers.serialize(initializer)
    assert serialized["registered_name"] == f"varinit>{type(initializer).__name__}"
    found = keras.initializers.get(serialized)
    assert type(found) is type(initializer) and found.get_config() == config
    shape = (4, 8, 6) if config.get("input_axes") else (8, 6)
    if config.get("stream") is not None or "seed" not in config:   # fixed values: compare them
        assert as_numpy(found(shape), "float32").tobytes() == as_numpy(initializer(shape), "float32").tobytes()


def test_in_a_keras_model_saved_and_loaded(tmp_path):
    shared = vk.GlorotUniform(seed=21)   # one instance, two layers: streams 0 and 1 of seed 21
    model = keras.Sequential([
        keras.Input((6, 6, 3)),
        keras.layers.Conv2D(8, 3, kernel_initializer=vk.HeNormal(seed=21, stream="conv")),
        keras.layers.Flatten(),
        keras.layers.Dense(10, kernel_initializer=shared),
        keras.layers.Dense(4, kernel_initializer=shared),
    ])
    conv, _, dense1, dense2 = model.layers
    kernel = as_numpy(conv.kernel.value, "float32")
    assert kernel.shape == (3, 3, 3, 8)
    want = reference(RANDOM["HeNormal"][1], (3, 3, 3, 8), "float32", varinit.Generator(21).stream("conv"))
    assert kernel.tobytes() == want.tobytes()
    counter, glorot = varinit.Generator(21), RANDOM["GlorotUniform"][1]
    for dense in (dense1, dense2):
        got = as_numpy(dense.kernel.value, "float32")
        assert got.tobytes() == reference(glorot, got.shape, "float32", counter).tobytes()
    out = model.predict(np.ones((2, 6, 6, 3), np.float32), verbose=0)
    assert out.shape == (2, 4) and np.isfinite(out).all()

    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert type(loaded.layers[0].kernel_initializer) is vk.HeNormal
    assert loaded.layers[0].kernel_initializer.get_config() == conv.kernel_initializer.get_config()
    for before, after in zip(model.layers, loaded.layers):
        for w0, w1 in zip(before.weights, after.weights):
            assert as_numpy(w0.value, "float32").tobytes() == as_numpy(w1.value, "float32").tobytes()


@pytest.mark.parametrize("make,error,words", [
    (lambda: vk.HeNormal(seed=keras.random.SeedGenerator(1)), TypeError, "seed"),
    (lambda: vk.HeNormal(seed=-1), ValueError, "seed"),
    (lambda: vk.HeNormal(seed=2**64), ValueError, "seed"),
    (lambda: vk.HeNormal(seed=1.5), TypeError, "seed"),
    (lambda: vk.HeNormal(stream="w"), ValueError, "stream"),
    (lambda: vk.HeNormal(seed=1, stream=True), TypeError, "stream"),
    (lambda: vk.HeNormal(seed=1, torch_layout=1), TypeError, "torch_layout"),
    (lambda: vk.VarianceScaling(0.0), ValueError, "scale"),
    (lambda: vk.VarianceScaling(1.0, "fan_sum"), ValueError, "mode"),
    (lambda: vk.VarianceScaling(1.0, "fan_in", "gaussian"), ValueError, "distribution"),
    (lambda: vk.VarianceScaling(input_axes=[0]), ValueError, "output_axes"),
    (lambda: vk.VarianceScaling(input_axes=[0.0], output_axes=[1]), TypeError, "input_axes"),
    (lambda: vk.HeNormal(input_axes=[0], output_axes=[1], torch_layout=True), ValueError, "torch_layout"),
    (lambda: vk.RandomUniform(1.0, 0.0), ValueError, "minval"),
    (lambda: vk.RandomNormal(stddev=-1.0), ValueError, "stddev"),
    (lambda: vk.Orthogonal(gain="2"), TypeError, "gain"),
])
def test_bad_arguments_raise_naming_them(make, error, words):
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize("make,shape,dtype,error,words", [
    (vk.HeNormal, (5,), "float32", ValueError, "at least 2"),
    (vk.HeNormal, (4, 4), "int32", TypeError, "dtype"),
    (vk.HeNormal, (4, -1), "float32", ValueError, "shape"),
    (lambda **s: vk.HeNormal(input_axes=[0], output_axes=[3], **s), (4, 4, 4), "float32", ValueError,
     "output_axes=\\[3\\] is out of range"),
])
def test_a_failed_call_takes_no_stream(make, shape, dtype, error, words):
    seeded = make(seed=8)
    with pytest.raises(error, match=words):
        seeded(shape, dtype)
    # the counter did not move: the next call is still stream 0
    assert as_numpy(seeded((4, 4, 2, 2)), "float32").tobytes() == as_numpy(make(seed=8)((4, 4, 2, 2)),
                                                                             "float32").tobytes()
    state = varinit.default_generator.get_state()
    with pytest.raises(error, match=words):
        make()(shape, dtype)
    assert varinit.default_generator.get_state() == state


def test_input_and_output_axes_must_differ():
    with pytest.raises(ValueError, match="input_axes=\\[0, 1\\] and output_axes=\\[1\\] must name different"):
        vk.HeNormal(seed=1, input_axes=[0, 1], output_axes=[1])((4, 4, 4))


@pytest.mark.parametrize("initializer,shape,dtype,words", [
    (vk.Constant(1e6), (2, 2), "float16", "value"),
    (vk.Identity(), (2, 2, 2), "float32", "2 dimensions"),
    (vk.Orthogonal(seed=1), (5,), "float32", "at least 2 dimensions"),
    (vk.RandomNormal(stddev=1e30, seed=1), (2, 2), "float16", "mean and std"),
])
def test_values_the_dtype_or_shape_cannot_hold_are_refused(initializer, shape, dtype, words):
    with pytest.raises(ValueError, match=words):
        initializer(shape, dtype)
