"""Out-of-core fills: memmaps, safetensors and Zarr files equal in-memory fills, in bounded memory."""
import json
import math
import os
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import varinit
from varinit.scale_out.out_of_core import TensorSpec, fill_in_blocks, save_safetensors, save_zarr, slabs

# where the varinit under test lives (site-packages when installed), for child processes
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(varinit.__file__)))


@settings(max_examples=80, deadline=None)
@given(shape=st.lists(st.integers(0, 9), min_size=0, max_size=4), itemsize=st.sampled_from([2, 4, 8]),
       block_bytes=st.integers(1, 600))
def test_slabs_tile_the_tensor_in_order(shape, itemsize, block_bytes):
    shape = tuple(shape)
    flat = np.zeros(math.prod(shape), np.int64)
    index = np.arange(flat.size).reshape(shape)
    expected_next = 0
    for start, block_shape in slabs(shape, itemsize, block_bytes):
        assert len(start) == len(block_shape) == len(shape)
        count = math.prod(block_shape)
        assert count == 1 or count * itemsize <= block_bytes
        covered = index[tuple(slice(s, s + n) for s, n in zip(start, block_shape))].ravel()
        # each slab is the next run of consecutive row-major indices
        np.testing.assert_array_equal(covered, np.arange(expected_next, expected_next + count))
        expected_next += count
        flat[covered] += 1
    assert expected_next == flat.size and (flat == 1).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16, ml_dtypes.bfloat16])
@pytest.mark.parametrize("block_bytes", [1, 1000, 5000, 1 << 26])
def test_memmap_fill_equals_in_memory_fill(tmp_path, dtype, block_bytes):
    shape = (37, 11, 13)
    mm = np.memmap(tmp_path / "w.bin", dtype, "w+", shape=shape)
    calls = []
    out = fill_in_blocks(mm, varinit.kaiming_normal_, varinit.Generator(4).stream("w"),
                         block_bytes=block_bytes, progress=lambda d, t: calls.append((d, t)),
                         nonlinearity="relu")
    assert out is mm
    del mm, out
    whole = varinit.kaiming_normal_(np.empty(shape, dtype), generator=varinit.Generator(4).stream("w"),
                                    nonlinearity="relu")
    on_disk = np.fromfile(tmp_path / "w.bin", dtype).reshape(shape)
    np.testing.assert_array_equal(on_disk.view(np.uint8), whole.view(np.uint8))
    dones = [d for d, _ in calls]
    assert dones == sorted(dones) and dones[-1] == whole.size and {t for _, t in calls} == {whole.size}


def test_fill_in_blocks_on_plain_and_strided_arrays():
    g = varinit.Generator(8)
    base = np.full((60, 40), np.nan)
    view = base[::2, ::-1]
    fill_in_blocks(view, varinit.uniform_, g, block_bytes=100, a=-1.0, b=1.0)
    np.testing.assert_array_equal(view, varinit.uniform_(np.empty((30, 40)), -1.0, 1.0, varinit.Generator(8)))
    assert np.isnan(base[1::2]).all()


def test_npy_memmap_with_header_and_torch_tensor(tmp_path):
    # .npy data starts after a 128-byte header: page releases must stay inside the map
    npy = np.lib.format.open_memmap(tmp_path / "w.npy", "w+", np.float32, (300, 70))
    fill_in_blocks(npy, varinit.xavier_normal_, 21, block_bytes=3000, in_axis=0, out_axis=1)
    del npy
    whole = varinit.xavier_normal_(np.empty((300, 70), np.float32), generator=21, in_axis=0, out_axis=1)
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), whole)
    torch = pytest.importorskip("torch")
    t = torch.empty(300, 70, dtype=torch.bfloat16)
    assert fill_in_blocks(t, varinit.normal_, 21, block_bytes=500) is t
    ref = varinit.normal_(np.empty((300, 70), ml_dtypes.bfloat16), generator=21)
    np.testing.assert_array_equal(t.view(torch.int16).numpy(), ref.view(np.int16))


def test_fill_in_blocks_rejects_bad_arguments_before_writing(tmp_path):
    a = np.full((10, 10), 3.0, np.float32)
    with pytest.raises(TypeError, match="initializer must take global_shape"):
        fill_in_blocks(a, varinit.orthogonal_, 0)
    with pytest.raises(ValueError, match="std"):
        fill_in_blocks(a, varinit.normal_, 0, std=-1.0)
    with pytest.raises(ValueError, match="block_bytes"):
        fill_in_blocks(a, varinit.normal_, 0, block_bytes=0)
    with pytest.raises(TypeError, match="progress"):
        fill_in_blocks(a, varinit.normal_, 0, progress=3)
    with pytest.raises(TypeError, match="NumPy array or a PyTorch CPU tensor"):
        fill_in_blocks([1.0, 2.0], varinit.normal_, 0)
    ro = np.memmap(tmp_path / "ro.bin", np.float32, "w+", shape=(4, 4))
    ro.flush()
    ro = np.memmap(tmp_path / "ro.bin", np.float32, "r", shape=(4, 4))
    with pytest.raises(ValueError, match="read-only"):
        fill_in_blocks(ro, varinit.normal_, 0)
    assert not ro.any()
    assert (a == 3.0).all()


RSS_SCRIPT = r"""
import resource, sys, numpy as np, varinit
from varinit.scale_out.out_of_core import TensorSpec, fill_in_blocks, save_safetensors
path, size = sys.argv[1], int(sys.argv[2])
def peak():
    # VmHWM is this address space's peak RSS. ru_maxrss (KiB on Linux) would
    # do too, but Linux carries it over from the parent through fork + exec,
    # so under a large pytest process it would start far above this child's use.
    try:
        with open("/proc/self/status") as status:
            return next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmHWM:"))
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
varinit.normal_(np.empty(1 << 16, np.float32), generator=0)   # warm up code paths
base = peak()
mm = np.memmap(path + ".bin", np.float32, "w+", shape=(size // 4096, 1024))
fill_in_blocks(mm, varinit.normal_, 0, block_bytes=4 << 20)
del mm
after_memmap = peak()
save_safetensors(path + ".safetensors", {"w": TensorSpec((size // 4096, 1024), "float32", varinit.normal_)},
                 0, block_bytes=4 << 20)
after_safetensors = peak()
# control: the same memmap written in one piece keeps every page mapped
mm = np.memmap(path + ".control", np.float32, "w+", shape=(size // 4096, 1024))
varinit.normal_(mm, generator=0)
after_control = peak()
print(after_memmap - base, after_safetensors - base, after_control - base)
"""


@pytest.mark.skipif(
    "libasan" in os.environ.get("LD_PRELOAD", ""),
    reason="under AddressSanitizer, freed buffers stay in ASan's quarantine (up to 256 MB by "
    "design), so RSS measures the sanitizer; the normal pass checks this bound",
)
@pytest.mark.slow
def test_peak_memory_stays_bounded(tmp_path):
    size = 64 << 20
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    out = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(tmp_path / "big"), str(size)],
                         env=env, capture_output=True, text=True, check=True)
    memmap_growth, safetensors_growth, control_growth = map(int, out.stdout.split())
    # 4 MiB slabs: a correct fill grows the peak by a few MiB; half the file
    # size is far from both that and the unbounded case.
    assert memmap_growth < size // 2, out.stdout
    assert safetensors_growth < size // 2, out.stdout
    # the control proves the measurement sees mapped pages at all
    assert control_growth > size * 3 // 4, out.stdout
    whole = varinit.normal_(np.empty((size // 4096, 1024), np.float32), generator=0)
    on_disk = np.fromfile(str(tmp_path / "big.bin"), np.float32).reshape(whole.shape)
    np.testing.assert_array_equal(on_disk, whole)
    from safetensors.numpy import load_file

    named = varinit.normal_(np.empty(whole.shape, np.float32), generator=varinit.Generator(0).stream("w"))
    np.testing.assert_array_equal(load_file(str(tmp_path / "big.safetensors"))["w"], named)


def _model():
    return {
        "embed.weight": TensorSpec((50, 16), "float32", varinit.normal_, {"std": 0.02}),
        "layers.0.attn.qkv.weight": TensorSpec((48, 16), "float32", varinit.xavier_uniform_, {"blocks": 3}),
        "layers.0.attn.qkv.bias": TensorSpec((48,), "float32", varinit.zeros_),
        "layers.0.mlp.fc1.weight": TensorSpec((64, 16), "float64", varinit.kaiming_uniform_,
                                              {"nonlinearity": "relu"}),
        "layers.0.mlp.fc2.weight": TensorSpec((16, 64), "float16", varinit.trunc_normal_, {"std": 0.02}),
        "layers.0.norm.weight": TensorSpec((16,), "float32", varinit.ones_),
        "head.weight": TensorSpec((10, 16), "float32", varinit.orthogonal_),
        "temperature": TensorSpec((), "float64", varinit.normal_),
        "empty": TensorSpec((0, 4), "float32", varinit.normal_),
    }


def _expected(name, spec, seed):
    dtype = ml_dtypes.bfloat16 if spec.dtype == "bfloat16" else np.dtype(spec.dtype)
    arr = np.empty(spec.shape, dtype)
    if spec.initializer in (varinit.zeros_, varinit.ones_):
        return spec.initializer(arr)
    return spec.initializer(arr, generator=varinit.Generator(seed).stream(name), **spec.kwargs)


def test_safetensors_round_trip(tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    model = _model()
    model["lm_head.weight"] = TensorSpec((30, 16), "bfloat16", varinit.kaiming_normal_)
    path = tmp_path / "init.safetensors"
    calls = []
    save_safetensors(path, model, varinit.Generator(77), metadata={"format": "np"}, block_bytes=64,
                     progress=lambda d, t: calls.append((d, t)))
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0 and header["__metadata__"] == {"format": "np"}
    assert header["lm_head.weight"]["dtype"] == "BF16" and header["temperature"]["shape"] == []
    ends = sorted(v["data_offsets"] for k, v in header.items() if k != "__metadata__")
    assert ends[0][0] == 0 and all(a[1] == b[0] for a, b in zip(ends, ends[1:]))
    assert ends[-1][1] == len(raw) - 8 - n
    # numpy cannot hold BF16: read this file with torch
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == set(model)
        for name, spec in model.items():
            got = f.get_tensor(name)
            want = _expected(name, spec, 77)
            if spec.dtype == "bfloat16":
                np.testing.assert_array_equal(got.view(__import__("torch").int16).numpy(), want.view(np.int16))
            else:
                np.testing.assert_array_equal(got.numpy(), want)
    assert calls[-1] == (sum(math.prod(s.shape) for s in model.values()),) * 2
    del model["lm_head.weight"]
    save_safetensors(tmp_path / "np.safetensors", model, 77)
    loaded = load_file(str(tmp_path / "np.safetensors"))
    for name, spec in model.items():
        np.testing.assert_array_equal(loaded[name], _expected(name, spec, 77))


def test_zarr_group_round_trip(tmp_path):
    zarr = pytest.importorskip("zarr")
    model = _model()
    store = zarr.storage.LocalStore(str(tmp_path / "init.zarr"))
    calls = []
    save_zarr(store, model, 5, chunks={"embed.weight": (7, 3), "layers.0.mlp.fc1.weight": (64, 1)},
              progress=lambda d, t: calls.append(d))
    group = zarr.open_group(store, mode="r")
    assert group["embed.weight"].chunks == (7, 3)
    for name, spec in model.items():
        np.testing.assert_array_equal(group[name][...], _expected(name, spec, 5))
    assert calls[-1] == sum(math.prod(s.shape) for s in model.values())
    small = {"w": TensorSpec((100, 30), "float32", varinit.lecun_normal_)}
    g2 = save_zarr(str(tmp_path / "small.zarr"), small, 5, chunks=(7, 9))
    assert g2["w"].chunks == (7, 9)
    np.testing.assert_array_equal(g2["w"][...], _expected("w", small["w"], 5))


def test_model_writers_reject_bad_input(tmp_path):
    with pytest.raises(TypeError, match="dtype of 'w'"):
        save_safetensors(tmp_path / "a", {"w": TensorSpec((2, 2), "int32")}, 0)
    with pytest.raises(TypeError, match="Zarr"):
        save_zarr(str(tmp_path / "b.zarr"), {"w": TensorSpec((2, 2), "bfloat16")}, 0)
    with pytest.raises(TypeError, match="generator"):
        save_safetensors(tmp_path / "c", {"w": TensorSpec((2, 2))}, None)
    with pytest.raises(TypeError, match="names must be str"):
        save_safetensors(tmp_path / "d", {3: TensorSpec((2, 2))}, 0)
    with pytest.raises(ValueError, match="shape of 'w'"):
        save_safetensors(tmp_path / "e", {"w": TensorSpec((2, -2))}, 0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "e").exists()
