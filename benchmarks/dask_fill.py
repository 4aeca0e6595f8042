"""Throughput of varinit.scale_out.dask_arrays against one in-process varinit fill.

    PYTHONPATH=python python benchmarks/dask_fill.py --elements 16000000 --chunk 2000000

Times (best of --repeat) a float32 normal fill of --elements values:
one varinit.normal_ call; varinit.scale_out.dask_arrays.normal computed with dask's threaded
scheduler; and on a LocalCluster of worker processes (result gathered to the
client, which includes moving the bytes between processes).
"""
import argparse
import time

import numpy as np

import varinit
import varinit.scale_out.dask_arrays


def best_of(repeat, fn):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=16_000_000)
    parser.add_argument("--chunk", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n = args.elements

    out = np.empty(n, np.float32)
    one = best_of(args.repeat, lambda: varinit.normal_(out, generator=0))
    x = varinit.scale_out.dask_arrays.normal((n,), chunks=args.chunk, generator=0)
    threaded = best_of(args.repeat, lambda: x.compute(scheduler="threads"))
    assert np.array_equal(x.compute(scheduler="threads"), out)

    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, processes=True, threads_per_worker=1,
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        client.compute(x).result()  # warm the workers (imports)
        cluster_time = best_of(args.repeat, lambda: client.compute(x).result())
        assert np.array_equal(client.compute(x).result(), out)
        # the same work without shipping the values back: per-chunk sums
        sums = x.map_blocks(lambda b: np.array([b.sum(dtype=np.float64)]), chunks=(1,), dtype=np.float64)
        cluster_kept = best_of(args.repeat, lambda: client.compute(sums).result())

    print(f"{n} float32 normal values, chunks of {args.chunk}, best of {args.repeat}, isa {varinit.isa()}")
    for label, t in (("one varinit.normal_ call", one),
                     ("varinit.scale_out.dask_arrays, threaded scheduler", threaded),
                     (f"varinit.scale_out.dask_arrays, LocalCluster {args.workers} procs, gathered", cluster_time),
                     (f"varinit.scale_out.dask_arrays, LocalCluster {args.workers} procs, kept on workers", cluster_kept)):
        print(f"  {label:<48} {t:7.3f} s  {n / t / 1e6:8.1f} M values/s  ({one / t:.2f}x one call)")


if __name__ == "__main__":
    main()
