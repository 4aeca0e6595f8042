"""varinit.scale_out.dask_arrays on a real dask.distributed cluster: worker processes agree with one process."""
import numpy as np
import pytest

import varinit

pytestmark = pytest.mark.slow  # runs subprocesses for seconds; `-m 'not slow'` skips it

distributed = pytest.importorskip("distributed")
vd = pytest.importorskip("varinit.scale_out.dask_arrays")


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None)
    with cluster, distributed.Client(cluster) as c:
        yield c


@pytest.mark.parametrize("chunks", [(64, 300), (100, 17), ((1, 99, 200), (150, 150)), "auto"], ids=str)
def test_cluster_equals_one_piece(client, chunks):
    shape = (300, 300)
    g = varinit.Generator(2718).stream("decoder.out_proj.weight")
    x = vd.kaiming_normal(shape, chunks=chunks, generator=g, nonlinearity="relu")
    got = client.compute(x).result()
    whole = varinit.kaiming_normal_(np.empty(shape, np.float32), generator=g, nonlinearity="relu")
    np.testing.assert_array_equal(got.view(np.uint32), whole.view(np.uint32))


def test_chunks_computed_in_different_worker_processes_agree(client):
    """Chunks pinned alternately to the two worker processes reassemble into the one-piece fill."""
    x = vd.trunc_normal((400, 64), chunks=(25, 64), dtype="float64", generator=11, std=0.02, a=-0.04, b=0.04)
    workers = sorted(client.scheduler_info()["workers"])
    pids = client.run(__import__("os").getpid)
    assert len(workers) == 2 and len(set(pids.values())) == 2
    pieces = x.to_delayed().ravel().tolist()
    futures = [client.compute(p, workers=[workers[i % 2]], allow_other_workers=False)
               for i, p in enumerate(pieces)]
    got = np.concatenate(client.gather(futures), axis=0)
    holders = client.who_has(futures)
    assert {w for f in futures for w in holders[f.key]} == set(workers)
    whole = varinit.trunc_normal_(np.empty((400, 64)), generator=11, std=0.02, a=-0.04, b=0.04)
    np.testing.assert_array_equal(got, whole)
