"""Seeds and streams.

A seed is the 64-bit Philox key. Each fill takes one stream of that key: a
`Generator` hands out stream 0, 1, 2, ... in call order, so consecutive calls
differ and a sequence of calls after `manual_seed(s)` is reproducible. Value i
of a fill depends only on (key, stream, i).

Functions that take ``generator=`` accept None, an int seed, a
`varinit.Generator`, a `numpy.random.Generator` or a `torch.Generator`; see
`resolve`.
"""
import os
import threading

import numpy as np

SEED_LIMIT = 1 << 64
# A fill that needs a second independent stream (sparse_'s permutation keys)
# takes stream ^ SECONDARY_BIT; Generator counters never reach this bit.
SECONDARY_BIT = 1 << 62


def check_seed(seed, name="seed"):
    """The seed as a Python int in [0, 2**64), or a clear exception."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"{name} must be in [0, 2**64), got {seed}")
    return seed


class Generator:
    """A seed (the Philox key) and a counter of the streams already handed out.

    Example::

        g = varinit.Generator(1234)
        varinit.kaiming_normal_(np.empty((256, 128), np.float32), generator=g)
    """

    __slots__ = ("_seed", "_next_stream", "_lock")

    def __init__(self, seed=None):
        self._lock = threading.Lock()
        self.manual_seed(int.from_bytes(os.urandom(8), "little") if seed is None else seed)

    def manual_seed(self, seed):
        """Reseed and restart the stream counter; returns self (as torch does)."""
        seed = check_seed(seed)
        with self._lock:
            self._seed = seed
            self._next_stream = 0
        return self

    def initial_seed(self):
        return self._seed

    def get_state(self):
        """(seed, next stream): enough to resume the exact sequence later."""
        with self._lock:
            return (self._seed, self._next_stream)

    def set_state(self, state):
        seed, next_stream = state
        seed = check_seed(seed)
        next_stream = check_seed(next_stream, "state stream")
        with self._lock:
            self._seed, self._next_stream = seed, next_stream
        return self

    def take_stream(self):
        """(key, stream) for one fill; advances the counter."""
        with self._lock:
            stream = self._next_stream
            self._next_stream = stream + 1
        return self._seed, stream

    def __repr__(self):
        return f"varinit.Generator(seed={self._seed}, next_stream={self._next_stream})"


default_generator = Generator()


def manual_seed(seed):
    """Seed the default generator (as torch.manual_seed does); returns it."""
    return default_generator.manual_seed(seed)


def initial_seed():
    return default_generator.initial_seed()


# One two-word int64 tensor per thread receives the words drawn from torch's
# generator: reusing it saves the allocation per call (a third of a small
# tensor's init), and one per thread keeps concurrent draws apart.
_torch_words = threading.local()


def _torch_key(torch_generator):
    """A 64-bit key from two 32-bit draws of torch's generator (state advances).

    Tensor.random_(0, 2**32) is the kernel torch.randint(0, 2**32, (2,)) runs,
    so the key for a given torch seed is that of torch.randint.
    """
    words = getattr(_torch_words, "buffer", None)
    if words is None:
        import torch

        # never an inference tensor, which could not be written outside inference mode
        with torch.inference_mode(False):
            words = _torch_words.buffer = torch.empty(2, dtype=torch.int64, device="cpu")
    if torch_generator is None:  # no keyword: torch parses keywords slowly
        words.random_(0, 1 << 32)
    else:
        words.random_(0, 1 << 32, generator=torch_generator)
    low, high = words.tolist()
    return low | high << 32


def resolve(generator, target_is_torch):
    """(key, stream) for one fill drawn from `generator`.

    None: the default generator, except for a torch target, whose key is drawn
    from torch's default generator so that torch.manual_seed governs it.
    int: a fresh Generator(seed), stream 0. numpy.random.Generator and
    torch.Generator: a 64-bit key drawn from them (their state advances).
    """
    if generator is None:
        if target_is_torch:
            return _torch_key(None), 0
        return default_generator.take_stream()
    if isinstance(generator, Generator):
        return generator.take_stream()
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, (bool, np.bool_)):
        return check_seed(generator, "generator"), 0
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, SEED_LIMIT, dtype=np.uint64)), 0
    cls = type(generator)
    if cls.__module__ in ("torch", "torch._C") and cls.__name__ == "Generator":
        return _torch_key(generator), 0
    raise TypeError(
        "generator must be None, an int seed, a varinit.Generator, a numpy.random.Generator "
        f"or a torch.Generator; got {cls.__module__}.{cls.__qualname__}"
    )
