"""Fill a multi-GB numpy.memmap on disk with varinit, slab by slab, and report
throughput and the process's peak resident memory against the file size.

    PYTHONPATH=python python benchmarks/memmap_fill.py --gib 4 --dist normal

The file is created in --dir (default /tmp) and deleted afterwards.
"""
import argparse
import os
import resource
import tempfile
import time

import numpy as np

import varinit
from varinit.scale_out.blocks import fill_in_blocks

INITIALIZERS = {"normal": varinit.normal_, "uniform": varinit.uniform_, "kaiming_normal": varinit.kaiming_normal_}


def peak_rss():
    """This process's peak RSS in bytes: VmHWM on Linux, else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=4.0, help="file size in GiB (float32)")
    parser.add_argument("--dist", choices=sorted(INITIALIZERS), default="normal")
    parser.add_argument("--block-mib", type=int, default=64, help="slab size in MiB")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()

    cols = 4096
    rows = int(args.gib * (1 << 30)) // (4 * cols)
    nbytes = rows * cols * 4
    path = os.path.join(args.dir, f"varinit-memmap-bench-{os.getpid()}.bin")
    varinit.normal_(np.empty(1 << 16, np.float32), generator=0)  # load code paths first
    before = peak_rss()
    last_report = [time.perf_counter()]

    def progress(done, total):
        now = time.perf_counter()
        if now - last_report[0] > 5 or done == total:
            print(f"  {done / total:6.1%}  peak RSS {peak_rss() / 2**20:8.1f} MiB", flush=True)
            last_report[0] = now

    try:
        mm = np.memmap(path, np.float32, "w+", shape=(rows, cols))
        start = time.perf_counter()
        fill_in_blocks(mm, INITIALIZERS[args.dist], 0, block_bytes=args.block_mib << 20, progress=progress)
        elapsed = time.perf_counter() - start
        del mm
        peak = peak_rss()
        print(f"file         {nbytes / 2**30:.2f} GiB ({rows} x {cols} float32, {args.dist})")
        print(f"time         {elapsed:.2f} s (fill + write-back; --block-mib {args.block_mib})")
        print(f"throughput   {nbytes / elapsed / 1e9:.3f} GB/s  ({rows * cols / elapsed / 1e6:.1f} M elements/s)")
        print(f"peak RSS     {peak / 2**20:.1f} MiB (before fill {before / 2**20:.1f} MiB; "
              f"{peak / nbytes:.2%} of the file)")
        print(f"isa          {varinit.isa()}")
    finally:
        if os.path.exists(path):
            os.remove(path)


if __name__ == "__main__":
    main()
