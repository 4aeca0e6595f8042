"""The thread pool: same bits for every thread count, the thread-count API and
VARINIT_NUM_THREADS, fills from several Python threads at once, the GIL
released during a large fill, and a usable pool in a child after os.fork().

Arrays are larger than two grains of the C walker (2 * 65536 elements), so
the pool's workers really take part.
"""
import hashlib
import os
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest

import varinit

LARGE = 3 * 65536 + 4099  # above two grains, not a multiple of a group


@pytest.fixture
def restore_threads():
    saved = varinit.get_num_threads()
    yield
    varinit.set_num_threads(saved)


def digest(arr):
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _whole(dtype):
    arr = np.empty(LARGE, dtype)
    return arr, arr


def _transposed(dtype):
    base = np.empty((523, 611), dtype)
    return base, base.T


def _strided(dtype):
    base = np.empty((1001, 3 * 607), dtype)
    return base, base[::-2, ::3]


def _region(dtype):
    arr = np.empty((450, 700), dtype)
    return arr, arr


# (name, make (array, view to fill), fill): every fill is large enough to be split
CASES = [
    ("normal f32 contiguous", lambda: _whole(np.float32),
     lambda t: varinit.normal_(t, 0.5, 2.0, generator=11)),
    ("uniform f64 contiguous", lambda: _whole(np.float64),
     lambda t: varinit.uniform_(t, -1.0, 3.0, generator=12)),
    ("trunc_normal f32 transposed", lambda: _transposed(np.float32),
     lambda t: varinit.trunc_normal_(t, std=0.02, a=-0.04, b=0.03, generator=13)),
    ("kaiming f16 strided, negative stride", lambda: _strided(np.float16),
     lambda t: varinit.kaiming_normal_(t, generator=14)),
    ("normal f32 region of a larger tensor", lambda: _region(np.float32),
     lambda t: varinit.normal_(t, generator=15, global_shape=(1000, 900), start=(301, 97))),
]


@pytest.mark.parametrize("name,make,fill", CASES, ids=[c[0] for c in CASES])
def test_every_thread_count_gives_the_same_bits(restore_threads, name, make, fill):
    hashes = {}
    for threads in (1, 2, 7):
        varinit.set_num_threads(threads)
        base, view = make()
        base[...] = np.nan  # an element never written would show
        fill(view)
        hashes[threads] = digest(base)
    assert hashes[1] == hashes[2] == hashes[7], name


def test_thread_count_does_not_change_a_torch_tensor(restore_threads):
    torch = pytest.importorskip("torch")
    results = []
    for threads in (1, 2, 7):
        varinit.set_num_threads(threads)
        t = torch.empty(700, 500)
        varinit.xavier_uniform_(t, generator=3)
        results.append(digest(t.numpy()))
    assert results[0] == results[1] == results[2]


def test_set_and_get_round_trip(restore_threads):
    for n in (1, 3, 7, 2):
        varinit.set_num_threads(n)
        assert varinit.get_num_threads() == n


@pytest.mark.parametrize("bad", [0, -1, 10**6, 2**70])
def test_bad_thread_count_values_are_rejected(restore_threads, bad):
    varinit.set_num_threads(2)
    with pytest.raises(ValueError, match="set_num_threads"):
        varinit.set_num_threads(bad)
    assert varinit.get_num_threads() == 2


@pytest.mark.parametrize("bad", ["x", 2.0, None, True])
def test_bad_thread_count_types_are_rejected(restore_threads, bad):
    varinit.set_num_threads(2)
    with pytest.raises(TypeError, match="set_num_threads"):
        varinit.set_num_threads(bad)
    assert varinit.get_num_threads() == 2


def _threads_in_subprocess(env_value):
    env = dict(os.environ)
    env.pop("VARINIT_NUM_THREADS", None)
    if env_value is not None:
        env["VARINIT_NUM_THREADS"] = env_value
    code = (
        "import warnings; warnings.simplefilter('always')\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    import varinit\n"
        "print(varinit.get_num_threads(), len(os.sched_getaffinity(0)), len(w))\n"
        "print(*(str(x.message) for x in w))\n"
    )
    out = subprocess.run([sys.executable, "-c", "import os\n" + code], env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    threads, cores, warned = map(int, out[0].split())
    return threads, cores, warned, out[1] if len(out) > 1 else ""


def test_environment_variable_sets_the_count():
    threads, _, warned, _ = _threads_in_subprocess("3")
    assert (threads, warned) == (3, 0)


def test_default_is_the_usable_core_count():
    threads, cores, warned, _ = _threads_in_subprocess(None)
    assert threads == cores and warned == 0


@pytest.mark.parametrize("bad", ["abc", "0", "-2", "2.5", "99999"])
def test_invalid_environment_variable_warns_and_uses_the_default(bad):
    threads, cores, warned, message = _threads_in_subprocess(bad)
    assert threads == cores and warned == 1
    assert f"VARINIT_NUM_THREADS={bad} ignored" in message


def test_fills_from_four_python_threads_at_once(restore_threads):
    varinit.set_num_threads(2)
    seeds = [[100 * k + r for r in range(4)] for k in range(4)]
    expected = {}
    for row in seeds:
        for seed in row:
            expected[seed] = digest(varinit.normal_(np.empty(LARGE, np.float32), generator=seed))

    got = {}
    barrier = threading.Barrier(4)

    def work(row):
        barrier.wait()
        for seed in row:
            arr = np.empty(LARGE, np.float32)
            varinit.normal_(arr, generator=seed)
            got[seed] = digest(arr)

    workers = [threading.Thread(target=work, args=(row,)) for row in seeds]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert got == expected


def test_gil_is_released_during_a_large_fill(restore_threads):
    # With a 100 s switch interval the interpreter never takes the GIL away
    # from the main thread on its own, so the counter thread can only advance
    # while the fill itself has released the GIL. It yields back with
    # time.sleep(0) so the main thread gets the GIL when the fill ends.
    varinit.set_num_threads(1)
    arr = np.empty(4_000_000, np.float64)
    state = {"count": 0, "stop": False}
    started = threading.Event()

    def count():
        started.set()
        while not state["stop"]:
            state["count"] += 1
            if state["count"] % 256 == 0:
                time.sleep(0)

    saved = sys.getswitchinterval()
    sys.setswitchinterval(100.0)
    counter = threading.Thread(target=count)
    try:
        counter.start()
        started.wait()
        busy_before = state["count"]
        sum(range(200_000))  # pure Python holds the GIL: the counter stands still
        busy_after = state["count"]
        for _ in range(20):  # more fills only if a loaded machine kept the counter off a core
            varinit.normal_(arr, generator=1)
            if state["count"] - busy_after > 100:
                break
        fill_after = state["count"]
    finally:
        state["stop"] = True
        sys.setswitchinterval(saved)
        counter.join()
    assert busy_after == busy_before, "control: pure Python should not let the counter run"
    assert fill_after - busy_after > 100, "the counter did not run while the fills were running"


def _fill_in_child(seed, fill=None):
    """Fork; the child fills on 2 threads (or calls `fill`) and sends the digest through a pipe."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read_end)
            if fill is None:
                varinit.set_num_threads(2)
                arr = varinit.normal_(np.empty(LARGE, np.float32), generator=seed)
            else:
                arr = fill()
            os.write(write_end, digest(arr).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reported = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    return reported, status


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_child_after_fork_fills_with_threads(restore_threads):
    varinit.set_num_threads(2)
    own = digest(varinit.normal_(np.empty(LARGE, np.float32), generator=21))  # workers exist now
    reported, status = _fill_in_child(21)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert reported == own


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_while_another_thread_fills(restore_threads):
    # The fork handlers wait for the running job, so no child inherits a pool
    # in the middle of one.
    varinit.set_num_threads(2)
    own = digest(varinit.normal_(np.empty(LARGE, np.float32), generator=22))
    stop = threading.Event()
    background_ok = []

    def keep_filling():  # NumPy and varinit only: no lock of another library held at a fork
        arr = np.empty(LARGE, np.float32)
        expected = varinit.uniform_(arr, generator=5).copy()
        while not stop.is_set():
            background_ok.append(np.array_equal(varinit.uniform_(arr, generator=5), expected))

    filler = threading.Thread(target=keep_filling)
    filler.start()
    try:
        children = [_fill_in_child(22) for _ in range(3)]
    finally:
        stop.set()
        filler.join()
    for reported, status in children:
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        assert reported == own
    assert background_ok and all(background_ok)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_continues_the_default_generator_as_numpy_and_torch_do():
    # Documented choice: the child inherits the default generator's state, so
    # parent and child draw the same next stream (NumPy's and torch's default
    # generators behave the same way).
    varinit.manual_seed(99)
    child, status = _fill_in_child(None, lambda: varinit.normal_(np.empty(64, np.float32)))
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert child == digest(varinit.normal_(np.empty(64, np.float32)))
