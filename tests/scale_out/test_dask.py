"""varinit.scale_out.dask_arrays: computed values equal the one-process fill for every chunking."""
import sys

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import varinit

da = pytest.importorskip("dask.array")
zarr = pytest.importorskip("zarr")
vd = pytest.importorskip("varinit.scale_out.dask_arrays")

SHAPE = (97, 61)
CHUNKINGS = [
    "auto",
    (97, 61),                      # one chunk
    (10, 7),                       # many, ragged last chunks
    ((1, 30, 66), (60, 1)),        # irregular, with one-element chunks
    (1, 61),                       # row slabs of one row
    (97, 1),                       # column slabs
    ((33, 64), (5, 5, 51)),
]
# name -> (dask constructor, in-place initializer, keywords)
CASES = {
    "uniform": (vd.uniform, varinit.uniform_, {"a": -2.0, "b": 3.0}),
    "normal": (vd.normal, varinit.normal_, {"mean": 1.0, "std": 0.5}),
    "trunc_normal": (vd.trunc_normal, varinit.trunc_normal_, {"std": 0.02, "a": -0.04, "b": 0.01}),
    "xavier_uniform": (vd.xavier_uniform, varinit.xavier_uniform_, {"gain": 2.0}),
    "xavier_normal": (vd.xavier_normal, varinit.xavier_normal_, {}),
    "kaiming_uniform": (vd.kaiming_uniform, varinit.kaiming_uniform_, {"a": 0.1}),
    "kaiming_normal": (vd.kaiming_normal, varinit.kaiming_normal_,
                       {"mode": "fan_out", "nonlinearity": "relu"}),
    "variance_scaling": (vd.variance_scaling, varinit.variance_scaling_,
                         {"scale": 0.1, "mode": "fan_geo_avg", "distribution": "uniform",
                          "in_axis": 0, "out_axis": 1}),
    "lecun_normal": (vd.lecun_normal, varinit.lecun_normal_, {}),
    "lecun_uniform": (vd.lecun_uniform, varinit.lecun_uniform_, {}),
}


def _bits(a):
    return np.ascontiguousarray(a).view({2: np.uint16, 4: np.uint32, 8: np.uint64}[a.dtype.itemsize])


@pytest.mark.parametrize("chunks", CHUNKINGS, ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_every_chunking_equals_one_piece(name, chunks):
    build, initializer, kwargs = CASES[name]
    x = build(SHAPE, chunks=chunks, dtype="float32", generator=12345, **kwargs)
    assert isinstance(x, da.Array) and x.shape == SHAPE and x.dtype == np.float32
    whole = initializer(np.empty(SHAPE, np.float32), generator=12345, **kwargs)
    np.testing.assert_array_equal(_bits(x.compute(scheduler="sync")), _bits(whole))


@pytest.mark.parametrize("dtype", [np.float16, "bfloat16", np.float64])
def test_other_dtypes_and_ranks(dtype):
    np_dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
    shape = (5, 9, 4, 33)
    x = vd.kaiming_normal(shape, chunks=(2, 4, 3, 10), dtype=dtype, generator=3)
    whole = varinit.kaiming_normal_(np.empty(shape, np_dtype), generator=3)
    assert x.dtype == np.dtype(np_dtype)
    np.testing.assert_array_equal(_bits(x.compute(scheduler="threads")), _bits(whole))
    y = vd.normal((1000,), chunks=77, dtype=dtype, generator=3)
    np.testing.assert_array_equal(_bits(y.compute()), _bits(varinit.normal_(np.empty(1000, np_dtype), generator=3)))


def test_generator_is_resolved_once_at_build_time():
    g = varinit.Generator(77)
    x = vd.normal((50, 40), chunks=(7, 9), generator=g)
    y = vd.normal((50, 40), chunks=(50, 40), generator=g)
    assert g.get_state() == (77, 2)  # one stream per array, none per chunk
    ref = varinit.Generator(77)
    first = varinit.normal_(np.empty((50, 40), np.float32), generator=ref)
    second = varinit.normal_(np.empty((50, 40), np.float32), generator=ref)
    np.testing.assert_array_equal(x.compute(), first)
    np.testing.assert_array_equal(x.compute(), first)  # computing twice changes nothing
    np.testing.assert_array_equal(y.compute(), second)
    assert not np.array_equal(first, second)


def test_named_stream_and_default_generator():
    s = varinit.Generator(5).stream("blocks.0.w")
    x = vd.xavier_uniform((30, 20), chunks=(4, 6), generator=s)
    np.testing.assert_array_equal(x.compute(), varinit.xavier_uniform_(np.empty((30, 20), np.float32), generator=s))
    varinit.manual_seed(2024)
    y = vd.uniform((30, 20), chunks=(8, 8))
    varinit.manual_seed(2024)
    np.testing.assert_array_equal(y.compute(), varinit.uniform_(np.empty((30, 20), np.float32)))


def test_same_arguments_give_same_graph_name_different_streams_do_not():
    a = vd.normal((10, 10), chunks=5, generator=1)
    assert a.name == vd.normal((10, 10), chunks=5, generator=1).name
    assert a.name != vd.normal((10, 10), chunks=5, generator=2).name
    assert a.name != vd.normal((10, 10), chunks=5, generator=1, std=2.0).name


def test_bad_arguments_fail_at_build_time():
    with pytest.raises(ValueError, match="std"):
        vd.normal((10, 10), std=-1.0, generator=0)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        vd.kaiming_normal((10,), generator=0)
    with pytest.raises(TypeError, match="global_shape"):
        vd.normal((10, 10), global_shape=(20, 10), generator=0)
    with pytest.raises(ValueError, match="shape"):
        vd.normal((10, -1), generator=0)
    with pytest.raises(TypeError, match="shape"):
        vd.normal((10, 2.5), generator=0)
    with pytest.raises(TypeError, match="generator"):
        vd.normal((10, 10), generator="seed")
    with pytest.raises(TypeError, match="dtype"):
        vd.normal((10, 10), dtype=object(), generator=0)


def test_missing_dask_gives_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(ImportError, match="pip install 'dask\\[array\\]'"):
        vd.normal((4, 4), generator=0)


@st.composite
def chunkings(draw):
    """A shape of 1-3 axes (zero extents allowed) and an explicit, possibly irregular chunking."""
    shape = tuple(draw(st.lists(st.integers(0, 40), min_size=1, max_size=3)))
    chunks = []
    for n in shape:
        cuts = sorted(set(draw(st.lists(st.integers(1, max(n - 1, 1)), max_size=5))) - {n}) if n > 1 else []
        edges = [0] + cuts + [n]
        chunks.append(tuple(b - a for a, b in zip(edges, edges[1:])) if n else (0,))
    return shape, tuple(chunks)


@settings(max_examples=40, deadline=None)
@given(case=chunkings(), seed=st.integers(0, 2**64 - 1), dtype=st.sampled_from(["float32", "float64", "float16"]))
def test_random_chunkings_equal_one_piece(case, seed, dtype):
    shape, chunks = case
    x = vd.trunc_normal(shape, chunks=chunks, dtype=dtype, generator=seed, mean=1.0, std=3.0, a=-1.0, b=8.0)
    assert x.chunks == chunks
    whole = varinit.trunc_normal_(np.empty(shape, dtype), mean=1.0, std=3.0, a=-1.0, b=8.0, generator=seed)
    np.testing.assert_array_equal(_bits(x.compute(scheduler="sync")), _bits(whole))


def test_zarr_round_trip_aligned_chunks(tmp_path, monkeypatch):
    shape, chunks = (130, 75), (40, 25)
    x = vd.kaiming_uniform(shape, chunks=chunks, generator=varinit.Generator(9).stream("enc.w"))
    store = zarr.storage.LocalStore(str(tmp_path / "w.zarr"))
    locks = []
    original_store = da.Array.store

    def recording_store(self, target, **kwargs):
        locks.append(kwargs.get("lock"))
        return original_store(self, target, **kwargs)

    monkeypatch.setattr(da.Array, "store", recording_store)
    x.to_zarr(store, component="enc.w")
    assert locks == [False]  # aligned chunks: every task owns its Zarr chunks
    z = zarr.open_array(store, path="enc.w", mode="r")
    assert z.chunks == chunks and z.shape == shape and z.dtype == np.float32
    whole = varinit.kaiming_uniform_(np.empty(shape, np.float32), generator=varinit.Generator(9).stream("enc.w"))
    np.testing.assert_array_equal(z[...], whole)
    # 4 x 3 chunks, each written whole by one task: one file per chunk
    chunk_files = [p for p in (tmp_path / "w.zarr" / "enc.w").rglob("*") if p.is_file() and p.name != "zarr.json"]
    assert len(chunk_files) == 12
