"""varinit.jax on JAX's CPU backend: the same bits as varinit's NumPy fill for the same
seed and stream, the JAX key -> (key, stream) rule, jit/vmap/eval_shape, JAX's fans
(batch_axis included), Flax modules, clear errors.

CI installs the [test] extra, which holds jax and flax: there a missing one fails the
run instead of skipping these tests (CI=true); elsewhere they skip without them.
"""
import math
import os

import ml_dtypes
import numpy as np
import pytest

import varinit
from varinit.generator import NamedStream, Stream

if os.environ.get("CI"):
    import flax.linen as nn
    import jax
else:
    jax = pytest.importorskip("jax", reason="needs the [jax] extra: pip install 'varinit[jax]'")
    nn = pytest.importorskip("flax.linen", reason="needs flax: pip install flax")
import jax.numpy as jnp  # noqa: E402

import varinit.jax as vj  # noqa: E402

JAX_AXES = dict(in_axis=-2, out_axis=-1, batch_axis=())


def scaling(scale, mode, distribution, **axes):
    layout = {**JAX_AXES, **axes}
    return lambda a, g: varinit.variance_scaling_(a, scale, mode, distribution, g, **layout)


def columns_orthogonal(scale):
    def fill(arr, generator):
        matrix = np.empty((math.prod(arr.shape[:-1]), arr.shape[-1]), arr.dtype)
        varinit.orthogonal_(matrix, scale, generator)
        arr[...] = matrix.reshape(arr.shape)
    return fill


# name -> (factory for given keywords, the NumPy fill it must equal)
FACTORIES = {
    "normal": (lambda **k: vj.normal(0.3, **k), lambda a, g: varinit.normal_(a, 0.0, 0.3, g)),
    "truncated_normal": (lambda **k: vj.truncated_normal(0.3, lower=-1.5, upper=2.0, **k),
                         lambda a, g: varinit.trunc_normal_(a, 0.0, 0.3, -1.5 * 0.3, 2.0 * 0.3, g)),
    "uniform": (lambda **k: vj.uniform(0.2, **k), lambda a, g: varinit.uniform_(a, 0.0, 0.2, g)),
    "variance_scaling": (lambda **k: vj.variance_scaling(0.5, "fan_geo_avg", "normal", **k),
                         scaling(0.5, "fan_geo_avg", "normal")),
    "glorot_normal": (vj.glorot_normal, scaling(1.0, "fan_avg", "truncated_normal")),
    "glorot_uniform": (vj.glorot_uniform, scaling(1.0, "fan_avg", "uniform")),
    "he_normal": (vj.he_normal, scaling(2.0, "fan_in", "truncated_normal")),
    "he_uniform": (vj.he_uniform, scaling(2.0, "fan_in", "uniform")),
    "lecun_normal": (vj.lecun_normal, scaling(1.0, "fan_in", "truncated_normal")),
    "lecun_uniform": (vj.lecun_uniform, scaling(1.0, "fan_in", "uniform")),
    "orthogonal": (lambda **k: vj.orthogonal(1.5, **k), columns_orthogonal(1.5)),
}
SHAPES = [(48, 24), (24, 48), (3, 3, 8, 16)]   # Dense (in, out) tall and wide, Conv (kh, kw, in, out)


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def reference(fill, shape, dtype, generator):
    arr = np.full(shape, 0.25, np_dtype(dtype))
    fill(arr, generator)
    return arr


def host(array):
    assert isinstance(array, jax.Array)
    return np.asarray(array)


@pytest.mark.parametrize("name", FACTORIES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_values_equal_the_numpy_fill(name, shape, dtype):
    make, fill = FACTORIES[name]
    got = host(make(seed=99, stream="block/kernel")(jax.random.key(5), shape, jnp.dtype(np_dtype(dtype))))
    assert got.dtype == np_dtype(dtype)
    want = reference(fill, shape, dtype, varinit.Generator(99).stream("block/kernel"))
    assert got.tobytes() == want.tobytes()


def test_float64_with_x64():
    with jax.enable_x64(True):
        got = host(vj.he_uniform(seed=1, stream=2)(jax.random.key(0), (16, 8), jnp.float64))
    assert got.tobytes() == reference(FACTORIES["he_uniform"][1], (16, 8), "float64", Stream(1, 2)).tobytes()


@pytest.mark.parametrize("name", FACTORIES)
def test_the_key_to_stream_rule(name):
    make, fill = FACTORIES[name]
    # no seed: the key's 64 bits are varinit's key, stream 0; PRNGKey(s) gives key s
    for key in (jax.random.PRNGKey(1234), jax.random.key(1234)):
        got = host(make()(key, (32, 16)))
        assert got.tobytes() == reference(fill, (32, 16), "float32", 1234).tobytes()
        assert vj.stream_for(key) == Stream(1234, 0)
    # a seed: the key selects a named stream of it
    key = jax.random.fold_in(jax.random.key(0), 7)
    words = np.asarray(jax.random.key_data(key))
    k = int(words[0]) << 32 | int(words[1])
    named = NamedStream(55, f"jax.random.key:{k:016x}")
    assert vj.stream_for(key, seed=55) == named
    got = host(make(seed=55)(key, (32, 16)))
    assert got.tobytes() == reference(fill, (32, 16), "float32", named).tobytes()
    # distinct keys, distinct values
    other = host(make(seed=55)(jax.random.fold_in(jax.random.key(0), 8), (32, 16)))
    assert not np.array_equal(got, other)
    # seed and stream: the key is ignored
    fixed = make(seed=55, stream=3)
    assert host(fixed(key, (32, 16))).tobytes() == host(fixed(jax.random.key(1), (32, 16))).tobytes()


@pytest.mark.parametrize("name", FACTORIES)
def test_jit_vmap_and_eval_shape_give_the_same_values(name):
    make, _ = FACTORIES[name]
    init = make(seed=4)
    keys = jax.random.split(jax.random.key(3), 3)
    eager = [host(init(k, (12, 6))) for k in keys]
    jitted = jax.jit(lambda k: init(k, (12, 6)))
    assert all(host(jitted(k)).tobytes() == e.tobytes() for k, e in zip(keys, eager))
    mapped = host(jax.vmap(lambda k: init(k, (12, 6)))(keys))
    assert mapped.tobytes() == np.stack(eager).tobytes()
    shape = jax.eval_shape(lambda k: init(k, (12, 6), jnp.bfloat16), keys[0])
    assert (shape.shape, shape.dtype) == ((12, 6), jnp.bfloat16)


@pytest.mark.parametrize("name", ["he_normal", "glorot_uniform", "normal", "orthogonal"])
@pytest.mark.parametrize("shape", [(48, 24), (3, 3, 8, 16)])
def test_torch_layout_holds_the_pytorch_weights(name, shape):
    torch = pytest.importorskip("torch")
    torch_fill = {
        "he_normal": lambda w, g: varinit.variance_scaling_(w, 2.0, "fan_in", "truncated_normal", g),
        "glorot_uniform": lambda w, g: varinit.variance_scaling_(w, 1.0, "fan_avg", "uniform", g),
        "normal": lambda w, g: varinit.normal_(w, 0.0, 0.3, g),
        "orthogonal": lambda w, g: varinit.orthogonal_(w, 1.5, g),
    }[name]
    weight = torch.empty((shape[-1], shape[-2]) + shape[:-2])
    torch_fill(weight, varinit.Generator(3).stream("conv"))
    kernel = host(FACTORIES[name][0](seed=3, stream="conv", torch_layout=True)(jax.random.key(0), shape))
    permuted = np.ascontiguousarray(weight.permute(*range(2, weight.dim()), 1, 0).numpy())
    assert kernel.tobytes() == permuted.tobytes()


def sample_variance(init, shape, seed):
    return float(np.var(host(init(jax.random.key(seed), shape)).astype(np.float64)))


@pytest.mark.parametrize("shape,axes", [
    ((512, 256), {}),
    ((3, 3, 128, 64), {}),
    ((4, 128, 256), dict(batch_axis=0)),                       # 4 stacked (in, out) kernels
    ((3, 3, 64, 32, 4), dict(in_axis=-3, out_axis=-2, batch_axis=-1)),
    ((8, 16, 512), dict(in_axis=(0, 1), out_axis=2)),
])
@pytest.mark.parametrize("mode,distribution", [   # the distribution does not change the fans
    ("fan_in", "truncated_normal"), ("fan_out", "normal"), ("fan_avg", "uniform"),
    ("fan_geo_avg", "truncated_normal")])
def test_variance_matches_jax_own_variance_scaling(shape, axes, mode, distribution):
    """Sample variances of varinit's and JAX's variance_scaling on one shape: each has
    relative spread at most sqrt(2 / n); 6 of them on each side fail a correct fan with
    probability < 1e-8, while a batch axis counted as receptive field (x 4) is far off."""
    ours = sample_variance(vj.variance_scaling(2.0, mode, distribution, **axes), shape, 1)
    theirs = sample_variance(jax.nn.initializers.variance_scaling(2.0, mode, distribution, **axes), shape, 1)
    spread = math.sqrt(2 / math.prod(shape))
    assert abs(ours / theirs - 1) < 12 * spread
    assert 12 * spread < 0.5


def test_flax_layers_with_named_streams_hold_the_numpy_fills():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(8, (3, 3), kernel_init=vj.he_normal(seed=21, stream="conv"))(x)
            x = x.reshape(x.shape[0], -1)
            x = nn.Dense(16, kernel_init=vj.glorot_uniform(seed=21, stream="dense1"))(x)
            return nn.Dense(4, kernel_init=vj.orthogonal(seed=21, stream="dense2"))(x)

    x = jnp.ones((2, 6, 6, 3))
    params = Net().init(jax.random.key(0), x)["params"]
    g = varinit.Generator(21)
    want = {
        "Conv_0": reference(FACTORIES["he_normal"][1], (3, 3, 3, 8), "float32", g.stream("conv")),
        "Dense_0": reference(FACTORIES["glorot_uniform"][1], (288, 16), "float32", g.stream("dense1")),
        "Dense_1": reference(columns_orthogonal(1.0), (16, 4), "float32", g.stream("dense2")),
    }
    for layer, kernel in want.items():
        assert host(params[layer]["kernel"]).tobytes() == kernel.tobytes()
    jitted = jax.jit(Net().init)(jax.random.key(0), x)["params"]
    assert all(host(jitted[layer]["kernel"]).tobytes() == kernel.tobytes() for layer, kernel in want.items())
    assert Net().apply({"params": params}, x).shape == (2, 4)


def test_flax_gives_each_layer_its_own_key_and_values():
    seen = []
    base = vj.he_normal()

    def recording(key, shape, dtype):
        seen.append(key)
        return base(key, shape, dtype)

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Dense(16, kernel_init=recording)(x)   # Dense_0, initialized first
            return nn.Dense(16, kernel_init=recording)(x)

    params = Net().init(jax.random.key(0), jnp.ones((1, 16)))["params"]
    first, second = host(params["Dense_0"]["kernel"]), host(params["Dense_1"]["kernel"])
    assert not np.array_equal(first, second)
    for kernel, key in zip((first, second), seen):
        want = reference(FACTORIES["he_normal"][1], (16, 16), "float32", vj.stream_for(key))
        assert kernel.tobytes() == want.tobytes()


def test_flax_scan_stacks_distinct_layers():
    class Block(nn.Module):
        @nn.compact
        def __call__(self, x, _):
            return nn.relu(nn.Dense(256, kernel_init=vj.he_normal(seed=3), use_bias=False)(x)), None

    Stack = nn.scan(Block, variable_axes={"params": 0}, split_rngs={"params": True}, length=4)
    x = jnp.ones((2, 256))
    kernel = host(Stack().init(jax.random.key(0), x, None)["params"]["Dense_0"]["kernel"])
    assert kernel.shape == (4, 256, 256)
    assert len({layer.tobytes() for layer in kernel}) == 4
    jitted = host(jax.jit(Stack().init)(jax.random.key(0), x, None)["params"]["Dense_0"]["kernel"])
    assert jitted.tobytes() == kernel.tobytes()
    # each layer's variance is He's for one (256, 256) layer: 6-sigma bound on n = 65536 values
    for layer in kernel.astype(np.float64):
        assert abs(layer.var() * 256 / 2 - 1) < 6 * math.sqrt(2 / layer.size)


def test_a_stacked_flax_parameter_with_batch_axis():
    class Experts(nn.Module):
        @nn.compact
        def __call__(self, x):
            w = self.param("w", vj.he_normal(batch_axis=0, seed=8, stream="experts"), (4, 256, 128))
            return jnp.einsum("bi,eio->beo", x, w)

    params = Experts().init(jax.random.key(0), jnp.ones((1, 256)))["params"]
    want = reference(scaling(2.0, "fan_in", "truncated_normal", batch_axis=0), (4, 256, 128), "float32",
                     varinit.Generator(8).stream("experts"))
    assert host(params["w"]).tobytes() == want.tobytes()
    for expert in want.astype(np.float64):   # fan_in 256 per expert, not 4 * 256
        assert abs(expert.var() * 256 / 2 - 1) < 6 * math.sqrt(2 / expert.size)


@pytest.mark.parametrize("make,error,words", [
    (lambda: vj.he_normal(stream="w"), ValueError, "stream"),
    (lambda: vj.he_normal(seed=-1), ValueError, "seed"),
    (lambda: vj.he_normal(seed=1, stream=2**64), ValueError, "stream"),
    (lambda: vj.he_normal(seed=1.0), TypeError, "seed"),
    (lambda: vj.he_normal(batch_axis=0, torch_layout=True), ValueError, "torch_layout"),
    (lambda: vj.he_normal(torch_layout="yes"), TypeError, "torch_layout"),
    (lambda: vj.variance_scaling(0.0, "fan_in", "normal"), ValueError, "scale"),
    (lambda: vj.variance_scaling(1.0, "fan_sum", "normal"), ValueError, "mode"),
    (lambda: vj.variance_scaling(1.0, "fan_in", "gaussian"), ValueError, "distribution"),
    (lambda: vj.truncated_normal(lower=2.0, upper=-2.0), ValueError, "lower"),
    (lambda: vj.uniform(-1.0), ValueError, "scale"),
    (lambda: vj.orthogonal(column_axis=0, torch_layout=True), ValueError, "torch_layout"),
    (lambda: vj.orthogonal(column_axis=1.0), TypeError, "column_axis"),
    (lambda: vj.normal(dtype=jnp.int32), TypeError, "dtype"),
])
def test_bad_factory_arguments_raise_naming_them(make, error, words):
    with pytest.raises(error, match=words):
        make()


@pytest.mark.parametrize("init,key,shape,dtype,error,words", [
    (vj.he_normal(), 1234, (4, 4), None, TypeError, "key must be a JAX PRNG key"),
    (vj.he_normal(), np.zeros(2, np.float32), (4, 4), None, TypeError, "key must be a JAX PRNG key"),
    (vj.he_normal(), "batch", (4, 4), None, ValueError, "one PRNG key"),
    (vj.he_normal(), "rbg", (4, 4), None, ValueError, "threefry2x32"),
    (vj.he_normal(), "key", (5,), None, ValueError, "fewer than 2 dimensions"),
    (vj.he_normal(batch_axis=2), "key", (4, 4), None, ValueError, "batch_axis=2 is out of range"),
    (vj.he_normal(batch_axis=1), "key", (3, 4, 4), None, ValueError, "in_axis=-2 and batch_axis both"),
    (vj.orthogonal(column_axis=2), "key", (4, 4), None, ValueError, "column_axis=2 is out of range"),
    (vj.normal(), "key", (4, -1), None, ValueError, "shape"),
    (vj.normal(), "key", (4, 4), jnp.int32, TypeError, "dtype"),
    (vj.normal(), "key", (4, 4), jnp.float64, ValueError, "jax_enable_x64"),
])
@pytest.mark.parametrize("jit", [False, True])
def test_bad_calls_raise_clear_errors_eagerly_and_under_jit(init, key, shape, dtype, error, words, jit):
    """Under jit the checks run at trace time: the error is the same, not a wrapped
    runtime error from inside the host callback."""
    key = {"key": jax.random.key(0), "batch": jax.random.split(jax.random.key(0), 2),
           "rbg": jax.random.key(0, impl="rbg")}.get(key, key) if isinstance(key, str) else key
    call = (lambda k: init(k, shape, dtype)) if dtype is not None else (lambda k: init(k, shape))
    if jit and isinstance(key, jax.Array):
        call = jax.jit(call)
    with pytest.raises(error, match=words):
        call(key)


def test_out_sharding_is_refused():
    with pytest.raises(NotImplementedError, match="out_sharding"):
        vj.he_normal()(jax.random.key(0), (4, 4), jnp.float32, out_sharding=object())
