"""Block fills: memmaps and tensors filled slab by slab equal one-piece fills, in bounded
memory, and a full filesystem is an OSError, not a SIGBUS."""
import errno
import math
import os
import signal
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import varinit
from varinit.scale_out.blocks import fill_in_blocks, slabs

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
from varinit.scale_out.blocks import fill_in_blocks
from varinit.scale_out.writers import TensorSpec, save_safetensors
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


def test_zero_dimensional_targets_are_filled_as_normal_fills_them():
    for dtype in (np.float32, ml_dtypes.bfloat16):
        a = np.full((), np.nan, dtype)
        assert fill_in_blocks(a, varinit.normal_, varinit.Generator(3).stream("t"), std=2.0) is a
        want = varinit.normal_(np.empty((), dtype), std=2.0, generator=varinit.Generator(3).stream("t"))
        assert a.tobytes() == want.tobytes() and not np.isnan(a)
    torch = pytest.importorskip("torch")
    t = torch.full((), float("nan"))
    assert fill_in_blocks(t, varinit.normal_, 11) is t
    assert t.item() == varinit.normal_(torch.empty(()), generator=11).item()


def test_torch_target_with_no_generator_follows_torch_manual_seed():
    torch = pytest.importorskip("torch")
    torch.manual_seed(7)
    blocks = fill_in_blocks(torch.empty(40, 30), varinit.kaiming_normal_, block_bytes=400)
    after_blocks = torch.rand(3)
    torch.manual_seed(7)
    direct = varinit.kaiming_normal_(torch.empty(40, 30))
    after_direct = torch.rand(3)
    assert torch.equal(blocks, direct)
    # the same draws from torch's generator as a direct call, no more, no fewer
    assert torch.equal(after_blocks, after_direct)
    torch.manual_seed(8)
    assert not torch.equal(fill_in_blocks(torch.empty(40, 30), varinit.kaiming_normal_), direct)


def test_torch_blocks_bump_the_version_counter_like_a_direct_fill():
    torch = pytest.importorskip("torch")
    w = torch.nn.Parameter(torch.ones(6, 5))
    loss = (w * w).sum()
    fill_in_blocks(w, varinit.normal_, 0, block_bytes=24)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_numpy_target_with_no_generator_takes_one_default_stream_and_none_on_failure():
    varinit.manual_seed(5)
    with pytest.raises(ValueError, match="std"):
        fill_in_blocks(np.empty((8, 8)), varinit.normal_, std=-1.0)
    a = fill_in_blocks(np.empty((8, 8)), varinit.normal_, block_bytes=64)
    b = fill_in_blocks(np.empty((8, 8)), varinit.normal_, block_bytes=64)
    varinit.manual_seed(5)
    np.testing.assert_array_equal(a, varinit.normal_(np.empty((8, 8))))
    np.testing.assert_array_equal(b, varinit.normal_(np.empty((8, 8))))


def _fake_fallocate(calls, error=None):
    def posix_fallocate(fd, offset, length):
        calls.append((os.fstat(fd).st_ino, offset, length))
        if error is not None:
            raise OSError(error, os.strerror(error))
    return posix_fallocate


def test_memmap_blocks_are_reserved_before_the_first_write(tmp_path, monkeypatch):
    path = tmp_path / "w.npy"
    npy = np.lib.format.open_memmap(path, "w+", np.float32, (300, 70))   # data after a 128-byte header
    npy[...] = 1.0
    npy.flush()
    calls = []
    monkeypatch.setattr(os, "posix_fallocate", _fake_fallocate(calls))
    view = npy[10:20]
    fill_in_blocks(view, varinit.normal_, 0, block_bytes=700)
    assert calls == [(os.stat(path).st_ino, 128 + 10 * 70 * 4, 10 * 70 * 4)]
    np.testing.assert_array_equal(view, varinit.normal_(np.empty((10, 70), np.float32), generator=0))
    assert (npy[:10] == 1).all() and (npy[20:] == 1).all()
    # no file behind the array: nothing to reserve
    calls.clear()
    fill_in_blocks(np.empty((4, 4)), varinit.normal_, 0)
    assert calls == []


def test_full_disk_raises_enospc_naming_the_file_before_anything_is_written(tmp_path, monkeypatch):
    path = tmp_path / "w.bin"
    mm = np.memmap(path, np.float32, "w+", shape=(64, 64))
    mm[...] = 3.0
    mm.flush()
    before = path.read_bytes()
    calls, progress = [], []
    monkeypatch.setattr(os, "posix_fallocate", _fake_fallocate(calls, errno.ENOSPC))
    state = varinit.default_generator.get_state()
    with pytest.raises(OSError) as info:
        fill_in_blocks(mm, varinit.normal_, block_bytes=1024, progress=lambda d, t: progress.append(d))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert str(path) in str(info.value)
    assert len(calls) == 1 and progress == []
    assert (mm == 3.0).all() and path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["w.bin"]
    assert varinit.default_generator.get_state() == state   # no stream taken
    # a filesystem that cannot reserve at all is no error: the fill goes ahead
    monkeypatch.setattr(os, "posix_fallocate", _fake_fallocate(calls, errno.EOPNOTSUPP))
    fill_in_blocks(mm, varinit.normal_, 4)
    np.testing.assert_array_equal(mm, varinit.normal_(np.empty((64, 64), np.float32), generator=4))


FULL_DISK_SCRIPT = r"""
import errno, os, sys
import numpy as np
import varinit
from varinit.scale_out.blocks import fill_in_blocks
path, mode = sys.argv[1], sys.argv[2]
if mode == "unreserved":   # the control: what a fill without the reservation does
    os.posix_fallocate = lambda fd, offset, length: None
mm = np.memmap(path, np.float32, "w+", shape=(512, 1024))   # 2 MiB, sparse, on a 1 MiB tmpfs
try:
    fill_in_blocks(mm, varinit.normal_, 0, block_bytes=64 << 10)
except OSError as exc:
    print(errno.errorcode[exc.errno], exc.filename)
"""


def test_full_tmpfs_gives_oserror_not_sigbus(small_filesystem):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    path = str(small_filesystem / "w.bin")
    out = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, path, "reserved"], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ENOSPC", path]
    os.remove(path)
    if "libasan" in os.environ.get("LD_PRELOAD", ""):
        return  # under AddressSanitizer the control's SIGBUS is caught and reported as an error
    # without the reservation the same fill is killed by SIGBUS: the test sees the difference
    control = subprocess.run([sys.executable, "-c", FULL_DISK_SCRIPT, path, "unreserved"], env=env,
                             capture_output=True, text=True, timeout=60, check=False)
    assert control.returncode == -signal.SIGBUS, (control.returncode, control.stderr)
