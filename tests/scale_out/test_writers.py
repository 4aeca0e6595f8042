"""Model writers: safetensors files and Zarr stores equal in-memory fills, and a failed
write (bad spec, exception, full disk, kill) loses nothing."""
import errno
import json
import math
import os
import struct
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest

import varinit
from varinit.scale_out import writers
from varinit.scale_out.writers import TensorSpec, open_zarr_checked, save_safetensors, save_zarr

# where the varinit under test lives (site-packages when installed), for child processes
PYTHON_DIR = os.path.dirname(os.path.dirname(os.path.abspath(varinit.__file__)))


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


# ---- what a failed write leaves behind -------------------------------------------------------
def _tree(root):
    """Every file under `root` (hidden ones included) by relative path, with its bytes."""
    out = {}
    for directory, _, files in os.walk(root):
        for name in files:
            full = os.path.join(directory, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


def _region_normal(fail_on_call=None, exc=RuntimeError):
    """A region initializer that draws normal_ values, except that it raises `exc` on
    fills of more than one element once it has been called `fail_on_call` times
    (one-element fills are the probes, which must pass)."""
    calls = []

    def init(tensor, generator=None, *, global_shape=None, start=None):
        if tensor.size > 1:
            calls.append(tensor.shape)
            if fail_on_call is not None and len(calls) >= fail_on_call:
                raise exc("disk controller on fire")
        return varinit.normal_(tensor, generator=generator, global_shape=global_shape, start=start)

    return init


def _three(initializer=varinit.normal_):
    return {"a.weight": TensorSpec((32, 16)), "b.weight": TensorSpec((32, 16)),
            "c.weight": TensorSpec((32, 16), "float32", initializer), "d.weight": TensorSpec((8,))}


@pytest.mark.parametrize("params, error, match", [
    # the reproduction: a typo in the keywords
    ({"w": TensorSpec((64, 64), "float32", varinit.kaiming_normal_, {"typo": 1})}, TypeError, "'w'.*typo"),
    # the README's meta-device recipe: kaiming_uniform_ on a 1-D bias
    ({"fc.weight": TensorSpec((4, 3), "float32", varinit.kaiming_uniform_),
      "fc.bias": TensorSpec((4,), "float32", varinit.kaiming_uniform_)}, ValueError, "'fc.bias'"),
    ({"ok": TensorSpec((3,)), "w": TensorSpec((4, 4), "float32", varinit.normal_, {"std": -1.0})},
     ValueError, "'w'.*std"),
    ({"w": TensorSpec((9, 4), "float32", varinit.orthogonal_, {"gian": 2.0})}, TypeError, "'w'.*gian"),
    ({"w": TensorSpec((4,), "float32", "normal")}, TypeError, "initializer of 'w'"),
    ({"w": TensorSpec((4,), "float32", varinit.normal_, [("std", 1.0)])}, TypeError, "kwargs of 'w'"),
    ({"w": "float32"}, TypeError, r"params\['w'\]"),
    ({"w": ((4, 4), "float32", varinit.normal_, {}, "extra")}, TypeError, r"params\['w'\]"),
    ({"w": TensorSpec((2**40, 2**40))}, ValueError, "'w'.*2\\*\\*63"),
    ({"__metadata__": TensorSpec((4,))}, ValueError, "__metadata__"),
    ({"w\ud800": TensorSpec((4,))}, ValueError, "surrogate"),
])
def test_safetensors_bad_spec_leaves_the_file_untouched(tmp_path, params, error, match):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"w": TensorSpec((256, 256))}, 0)
    before = path.read_bytes()
    with pytest.raises(error, match=match):
        save_safetensors(path, params, 0)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]
    with pytest.raises(ValueError, match="metadata"):
        save_safetensors(path, {"w": TensorSpec((4,))}, 0, metadata={"k": "\udc80"})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.safetensors"]


@pytest.mark.parametrize("previous", [True, False])
@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_safetensors_failure_mid_write_keeps_the_old_file(tmp_path, previous, interrupt):
    path = tmp_path / "m.safetensors"
    if previous:
        save_safetensors(path, {"w": TensorSpec((256, 256))}, 0)
    before = _tree(tmp_path)
    with pytest.raises(interrupt, match="on fire") as info:
        # the third tensor fails after its first slab
        save_safetensors(path, _three(_region_normal(2, interrupt)), 0, block_bytes=512)
    if interrupt is RuntimeError:
        assert "while writing tensor 'c.weight'" in info.value.__notes__
    assert _tree(tmp_path) == before   # the old file, byte for byte, and no partial file
    # a user's progress callback interrupted (Ctrl-C) midway: the same
    def progress(done, total):
        if done > total // 2:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        save_safetensors(path, _three(), 0, block_bytes=512, progress=progress)
    assert _tree(tmp_path) == before


def test_safetensors_replaces_through_a_link_and_keeps_permissions(tmp_path):
    from safetensors.numpy import load_file

    real = tmp_path / "real.safetensors"
    save_safetensors(real, {"w": TensorSpec((4,))}, 0)
    os.chmod(real, 0o640)
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    save_safetensors(link, {"v": TensorSpec((3, 2))}, 5)
    assert link.is_symlink() and os.stat(real).st_mode & 0o777 == 0o640
    assert list(load_file(str(real))) == ["v"]
    assert sorted(os.listdir(tmp_path)) == ["link.safetensors", "real.safetensors"]
    with pytest.raises(IsADirectoryError):
        save_safetensors(tmp_path, {"v": TensorSpec((3, 2))}, 5)
    with pytest.raises(FileNotFoundError, match="no such directory") as info:
        save_safetensors(tmp_path / "nowhere" / "m.safetensors", {"v": TensorSpec((3, 2))}, 5)
    assert info.value.filename == str(tmp_path / "nowhere" / "m.safetensors")


def test_full_disk_is_an_oserror_before_any_data(tmp_path, monkeypatch):
    path = tmp_path / "m.safetensors"
    save_safetensors(path, {"w": TensorSpec((16, 16))}, 0)
    before = _tree(tmp_path)
    reserved, progress = [], []

    def posix_fallocate(fd, offset, length):
        reserved.append((offset, length))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", posix_fallocate)
    with pytest.raises(OSError) as info:
        save_safetensors(path, _three(), 0, progress=lambda d, t: progress.append(d))
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    header = len(json.dumps({"x": 0}))  # the reservation covers the whole file
    assert reserved[0][0] == 0 and reserved[0][1] > 3 * 32 * 16 * 4 + header
    assert progress == [] and _tree(tmp_path) == before


def test_full_tmpfs_keeps_the_old_file(small_filesystem, monkeypatch):
    path = small_filesystem / "m.safetensors"
    save_safetensors(path, {"w": TensorSpec((128, 128))}, 0)     # 64 KiB on a 1 MiB filesystem
    before = _tree(small_filesystem)
    big = {"w": TensorSpec((512, 1024))}                          # 2 MiB
    with pytest.raises(OSError) as info:
        save_safetensors(path, big, 1)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert _tree(small_filesystem) == before
    # where nothing can be reserved, the write itself meets the full disk: the same result
    monkeypatch.setattr(os, "posix_fallocate", lambda fd, offset, length: None)
    with pytest.raises(OSError) as info:
        save_safetensors(path, big, 1, block_bytes=64 << 10)
    assert info.value.errno == errno.ENOSPC
    assert _tree(small_filesystem) == before


KILL_SCRIPT = r"""
import sys, time, varinit
from varinit.scale_out.writers import TensorSpec, save_safetensors, save_zarr
kind, path = sys.argv[1], sys.argv[2]
def progress(done, total):
    if done >= total // 4:   # a quarter written: tell the parent, then wait to be killed
        print("writing", flush=True)
        time.sleep(120)
params = {f"w{i}": TensorSpec((256, 256), "float32", varinit.normal_) for i in range(4)}
if kind == "safetensors":
    save_safetensors(path, params, 1, block_bytes=16 << 10, progress=progress)
else:
    save_zarr(path, params, 1, chunks=(64, 256), progress=progress)
"""


def _kill_mid_write(kind, path):
    env = dict(os.environ, PYTHONPATH=PYTHON_DIR)
    child = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, kind, str(path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line == "writing\n", child.stderr.read()
    finally:
        child.kill()   # SIGKILL: no handler, no cleanup
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()


@pytest.mark.parametrize("previous", [True, False])
def test_safetensors_killed_mid_write_keeps_the_old_file(tmp_path, previous):
    from safetensors.numpy import load_file

    path = tmp_path / "m.safetensors"
    if previous:
        save_safetensors(path, {"w": TensorSpec((64, 64))}, 0)
    before = path.read_bytes() if previous else None
    _kill_mid_write("safetensors", path)
    assert (path.read_bytes() if path.exists() else None) == before
    if previous:
        np.testing.assert_array_equal(load_file(str(path))["w"], _expected("w", TensorSpec((64, 64)), 0))
    # the child's partial file is hidden beside the destination, never at it
    others = [n for n in os.listdir(tmp_path) if n != "m.safetensors"]
    assert len(others) == 1 and others[0].startswith(".m.safetensors.") and others[0].endswith(".partial")


# ---- Zarr ----------------------------------------------------------------------------------
def _small(seed_shape=(40, 24)):
    return {"enc/w": TensorSpec(seed_shape), "b": TensorSpec((24,), "float16", varinit.zeros_)}


def _assert_holds(store, params, seed):
    group = open_zarr_checked(store)
    for name, spec in params.items():
        np.testing.assert_array_equal(group[name][...], _expected(name, spec, seed))


@pytest.mark.parametrize("params, chunks, error, match", [
    ({"enc/w": TensorSpec((40, 24), "float32", varinit.kaiming_normal_, {"typo": 1})}, "auto", TypeError, "enc/w"),
    (_three(_region_normal()) | {"x": TensorSpec((4,), "float32", varinit.normal_, {"std": -1.0})},
     "auto", ValueError, "'x'"),
    ({"w": TensorSpec((4,), "bfloat16")}, "auto", TypeError, "Zarr"),
    ({"a//b": TensorSpec((4,))}, "auto", ValueError, "node path"),
    ({"__w": TensorSpec((4,))}, "auto", ValueError, "node path"),
    ({"a": TensorSpec((4,)), "a/b": TensorSpec((4,))}, "auto", ValueError, "inside the array 'a'"),
    ({"w": TensorSpec((4, 4))}, {"v": (2, 2)}, ValueError, "not in params"),
    ({"w": TensorSpec((4, 4))}, (2,), ValueError, "chunks of 'w' must have 2"),
    ({"w": TensorSpec((4, 4))}, (2, 0), ValueError, "chunks of 'w'"),
    # "b" is made a plain directory below: save_zarr never replaces what is not a Zarr array
    ({"b": TensorSpec((4, 4))}, "auto", ValueError, "not a Zarr array"),
])
def test_zarr_bad_input_leaves_the_store_untouched(tmp_path, params, chunks, error, match):
    store = tmp_path / "init.zarr"
    save_zarr(store, _small(), 0)
    (store / "b" / "notes.txt").write_text("mine")
    os.remove(store / "b" / "zarr.json")
    before = _tree(tmp_path)
    with pytest.raises(error, match=match):
        save_zarr(store, params, 1, chunks=chunks)
    assert _tree(tmp_path) == before


def test_zarr_refuses_to_write_into_what_is_not_a_zarr_group(tmp_path):
    plain = tmp_path / "photos"
    plain.mkdir()
    (plain / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ValueError, match="not a Zarr v3 group"):
        save_zarr(plain, _small(), 0)
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        save_zarr(tmp_path / "file.zarr", _small(), 0)
    store = tmp_path / "g.zarr"
    save_zarr(store, _small(), 0)
    with pytest.raises(ValueError, match="'enc'.*not a Zarr array"):   # enc is a group
        save_zarr(store, {"enc": TensorSpec((3,))}, 0)
    with pytest.raises(ValueError, match="'b/x'.*not a Zarr group"):  # b is an array
        save_zarr(store, {"b/x": TensorSpec((3,))}, 0)
    assert sorted(os.listdir(tmp_path)) == ["file.zarr", "g.zarr", "photos"]
    _assert_holds(store, _small(), 0)


def test_zarr_keeps_other_arrays_and_replaces_named_ones(tmp_path):
    store = tmp_path / "init.zarr"
    save_zarr(store, _small(), 0)
    extra = {"head/w": TensorSpec((5, 3), "float64")}
    save_zarr(store, extra, 2)
    _assert_holds(store, _small(), 0)
    _assert_holds(store, extra, 2)
    save_zarr(store, {"enc/w": TensorSpec((7, 2))}, 3)   # another shape replaces the array
    group = open_zarr_checked(store)
    np.testing.assert_array_equal(group["enc/w"][...], _expected("enc/w", TensorSpec((7, 2)), 3))
    np.testing.assert_array_equal(group["head/w"][...], _expected("head/w", extra["head/w"], 2))
    assert sorted(os.listdir(tmp_path)) == ["init.zarr"]   # no staging left behind


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_zarr_failure_mid_write_keeps_the_old_store(tmp_path, interrupt):
    store = tmp_path / "init.zarr"
    old = _three()
    save_zarr(store, old, 0)
    before = _tree(tmp_path)
    with pytest.raises(interrupt, match="on fire"):
        save_zarr(store, _three(_region_normal(2, interrupt)), 1, chunks={"c.weight": (8, 16)})
    assert _tree(tmp_path) == before
    _assert_holds(store, old, 0)
    with pytest.raises(RuntimeError, match="on fire"):   # a store that did not exist stays absent
        save_zarr(tmp_path / "new.zarr", _three(_region_normal(2)), 1, chunks={"c.weight": (8, 16)})
    assert sorted(os.listdir(tmp_path)) == ["init.zarr"]


def test_zarr_failure_while_swapping_in_puts_everything_back(tmp_path, monkeypatch):
    store = tmp_path / "init.zarr"
    save_zarr(store, _three(), 0)
    before = _tree(store)
    real_rename, renames = os.rename, []

    def rename(src, dst):
        renames.append(dst)
        if str(src).endswith(".partial/c.weight"):   # the third array's move into the store fails
            raise OSError(errno.EIO, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(OSError, match="I/O error"):
        save_zarr(store, _three() | {"new/w": TensorSpec((3,))}, 1)
    monkeypatch.undo()
    assert len(renames) > 3   # the failure came after earlier arrays had been swapped in
    after = _tree(store)
    assert json.loads(after.pop("zarr.json")) == json.loads(before.pop("zarr.json"))
    assert after == before
    _assert_holds(store, _three(), 0)
    assert sorted(os.listdir(tmp_path)) == ["init.zarr"]


def test_zarr_failure_to_restore_keeps_the_old_arrays_and_says_where(tmp_path, monkeypatch):
    store = tmp_path / "init.zarr"
    save_zarr(store, _three(), 0)
    old_c = (store / "c.weight" / "zarr.json").read_bytes()
    real_rename = os.rename

    def rename(src, dst):
        # the third array's move in fails, and so does moving the old third array back
        if str(src).endswith((".partial/c.weight", ".replaced/2")):
            raise OSError(errno.EIO, "I/O error")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(writers.StoreNotRestoredError, match="kept in") as info:
        save_zarr(store, _three(), 1)
    monkeypatch.undo()
    kept = [n for n in os.listdir(tmp_path) if n != "init.zarr"]
    assert len(kept) == 1 and str(tmp_path / kept[0] / ".replaced") in str(info.value)
    assert (tmp_path / kept[0] / ".replaced" / "2" / "zarr.json").read_bytes() == old_c
    with pytest.raises(ValueError, match="incomplete"):
        open_zarr_checked(store)


def test_zarr_full_tmpfs_keeps_the_old_store(small_filesystem):
    store = small_filesystem / "init.zarr"
    save_zarr(store, _small(), 0)
    before = _tree(small_filesystem)
    with pytest.raises(OSError) as info:
        save_zarr(store, {"enc/w": TensorSpec((512, 1024))}, 1, chunks=(64, 1024))   # 2 MiB
    assert info.value.errno == errno.ENOSPC
    assert _tree(small_filesystem) == before
    _assert_holds(store, _small(), 0)


def test_zarr_killed_mid_write_keeps_the_old_store(tmp_path):
    store = tmp_path / "init.zarr"
    old = {f"w{i}": TensorSpec((256, 256)) for i in range(4)}
    save_zarr(store, old, 0, chunks=(64, 256))
    before = _tree(store)
    _kill_mid_write("zarr", store)
    assert _tree(store) == before
    _assert_holds(store, old, 0)
    others = [n for n in os.listdir(tmp_path) if n != "init.zarr"]
    assert len(others) == 1 and others[0].startswith(".init.zarr.") and others[0].endswith(".partial")


def test_open_zarr_checked_detects_an_unfinished_store():
    zarr = pytest.importorskip("zarr")
    store = zarr.storage.MemoryStore()   # no rename: written in place, behind the record
    save_zarr(store, _three(), 0, chunks={"c.weight": (8, 16)})
    _assert_holds(store, _three(), 0)
    with pytest.raises(RuntimeError, match="on fire"):
        save_zarr(store, _three(_region_normal(2)), 1, chunks={"c.weight": (8, 16)})
    with pytest.raises(ValueError, match="incomplete: a save_zarr into it did not finish"):
        open_zarr_checked(store)
    # what a reader that does not check would see: the unwritten chunks are NaN, not zeros
    c = zarr.open_group(store, mode="r")["c.weight"][...]
    assert np.isnan(c[8:]).all() and not np.isnan(c[:8]).any()
    save_zarr(store, _three(), 2, chunks={"c.weight": (8, 16)})   # finishing a write makes it complete again
    _assert_holds(store, _three(), 2)


def test_open_zarr_checked_refuses_stores_it_cannot_vouch_for(tmp_path):
    zarr = pytest.importorskip("zarr")
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("w", shape=(3,), dtype="float32")
    with pytest.raises(ValueError, match="no record of a finished save_zarr"):
        open_zarr_checked(str(tmp_path / "plain.zarr"))
    store = tmp_path / "init.zarr"
    save_zarr(store, _small(), 0)
    group = zarr.open_group(str(store), mode="r+")
    del group["b"]
    with pytest.raises(ValueError, match="'b' written by save_zarr is missing"):
        open_zarr_checked(store)
    group.create_array("b", shape=(5,), dtype="float16")
    with pytest.raises(ValueError, match="'b' is float16\\[5\\]"):
        open_zarr_checked(store)
