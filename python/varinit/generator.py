"""Seeds and streams.

A seed is the 64-bit Philox key. Each fill takes one stream of that key: a
`Generator` hands out stream 0, 1, 2, ... in call order, so consecutive calls
differ and a sequence of calls after `manual_seed(s)` is reproducible. Value i
of a fill depends only on (key, stream, i).

`Generator.stream(name)` gives a stream fixed by (seed, name) alone, so a
parameter's values do not depend on the order parameters are created or on
how many other fills happened: workers that each own some parameters agree
without talking to each other.

Functions that take ``generator=`` accept None, an int seed, a
`varinit.Generator`, `Generator.stream(name)` (or any `Stream`), a
`numpy.random.Generator` or a `torch.Generator`; see `resolve`.
"""
from __future__ import annotations

import hashlib
import os
import sys
import threading
import warnings
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, cast

import numpy as np

from ._arrays import DryRun, dry_run_active

from . import _validate
from ._typing import GeneratorLike

if TYPE_CHECKING:
    import torch

SEED_LIMIT = 1 << 64
# A fill that needs a second independent stream (sparse_'s permutation keys)
# takes stream ^ SECONDARY_BIT; Generator counters never reach this bit.
SECONDARY_BIT = 1 << 62
# Streams derived from a name have the top bit set, so they never meet the
# counter streams 0, 1, 2, ...; bit 62 stays clear for SECONDARY_BIT.
NAMED_BIT = 1 << 63
NAME_HASH_MASK = (1 << 62) - 1
# A Generator's counter streams are 0 .. 2**62 - 1, below both reserved bits.
COUNTER_LIMIT = SECONDARY_BIT


def named_stream_id(name: str) -> int:
    """The stream number of `name`: NAMED_BIT | (first 8 bytes of SHA-256(name), little-endian, low 62 bits)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return NAMED_BIT | (int.from_bytes(digest[:8], "little") & NAME_HASH_MASK)


def check_seed(seed: object, name: str = "seed") -> int:
    """The seed as a Python int in [0, 2**64), or a clear exception."""
    return _validate.integer(seed, name, 0, SEED_LIMIT - 1)


class Generator:
    """A seed (the Philox4x32-10 key) and a counter of the streams it has handed out.

    Each fill drawn from a Generator takes its next stream: stream 0, 1, 2, ...
    of the key, in call order, so consecutive calls differ and a sequence of
    calls after `manual_seed` is reproducible. Value i of a fill depends only
    on (key, stream, i): not on threads, SIMD path, memory layout or how the
    tensor is split. `stream` gives streams fixed by a name instead, whatever
    the order of the calls. Generators are thread-safe and pickle with their
    state.

    Parameters
    ----------
    seed : int, optional
        The key, in [0, 2**64). None: 64 bits from the operating system.

    See Also
    --------
    manual_seed : seeds the default generator.

    References
    ----------
    .. [1] J. K. Salmon, M. A. Moraes, R. O. Dror and D. E. Shaw, "Parallel random
       numbers: as easy as 1, 2, 3", SC 2011.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> g = varinit.Generator(1234)
    >>> a = varinit.normal_(np.empty(3, np.float32), generator=g)    # stream 0
    >>> b = varinit.normal_(np.empty(3, np.float32), generator=g)    # stream 1
    >>> g
    varinit.Generator(seed=1234, next_stream=2)
    >>> c = varinit.normal_(np.empty(3, np.float32), generator=varinit.Generator(1234))
    >>> bool((a == c).all()), bool((a == b).all())
    (True, False)
    """

    __slots__ = ("_seed", "_next_stream", "_lock")

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self.manual_seed(int.from_bytes(os.urandom(8), "little") if seed is None else seed)

    def manual_seed(self, seed: int) -> Generator:
        """Reseed and restart the stream counter at 0.

        Parameters
        ----------
        seed : int
            The new key, in [0, 2**64).

        Returns
        -------
        Generator
            self, as torch's ``Generator.manual_seed`` returns.
        """
        seed = check_seed(seed)
        with self._lock:
            self._seed = seed
            self._next_stream = 0
        return self

    def initial_seed(self) -> int:
        """The seed (the Philox key).

        Returns
        -------
        int
        """
        return self._seed

    def get_state(self) -> tuple[int, int]:
        """(seed, next stream): enough to resume the exact sequence later with `set_state`.

        Returns
        -------
        tuple of int
        """
        with self._lock:
            return (self._seed, self._next_stream)

    def set_state(self, state: tuple[int, int]) -> Generator:
        """Resume from a (seed, next stream) pair that `get_state` returned.

        The stream counter is at most 2**62 (a spent generator): streams from
        2**62 up are reserved (a fill's second stream and the named streams),
        so a counter there would replay them.

        Parameters
        ----------
        state : tuple of int
            (seed, next_stream).

        Returns
        -------
        Generator
            self.
        """
        if not isinstance(state, tuple) or len(state) != 2:
            raise TypeError(f"state must be a (seed, next_stream) tuple as get_state() returns, got {state!r}")
        seed = check_seed(state[0], "state seed")
        next_stream = check_seed(state[1], "state next_stream")
        if next_stream > COUNTER_LIMIT:
            raise ValueError(
                f"state next_stream must be at most 2**62 (higher streams are reserved), got {next_stream}"
            )
        with self._lock:
            self._seed, self._next_stream = seed, next_stream
        return self

    def take_stream(self) -> tuple[int, int]:
        """(key, stream) for one fill; advances the counter.

        Returns
        -------
        tuple of int

        Raises
        ------
        RuntimeError
            When all 2**62 counter streams have been handed out.
        """
        with self._lock:
            stream = self._next_stream
            if stream >= COUNTER_LIMIT:
                raise RuntimeError(
                    f"{self!r} has handed out all 2**62 of its streams; reseed it with manual_seed"
                )
            self._next_stream = stream + 1
        return self._seed, stream

    def __reduce__(self) -> tuple[Callable[[tuple[int, int]], Generator], tuple[tuple[int, int]]]:
        # The lock is not state: a copy or an unpickled generator gets its own,
        # and continues the sequence from the same (seed, next stream).
        return (_generator_from_state, (self.get_state(),))

    def stream(self, name: str) -> NamedStream:
        """The stream named `name`: fixed by (seed, name), the same at every use.

        Pass it as ``generator=`` to any random function. It does not advance
        this generator's counter, and using it twice gives the same values, so
        a parameter's values do not depend on the order parameters are created
        in or on the process that fills them. The stream number is
        2**63 | (the first 8 bytes of SHA-256(name) as a little-endian integer,
        low 62 bits).

        Parameters
        ----------
        name : str
            Any name, typically a parameter's (``"encoder.0.weight"``).

        Returns
        -------
        NamedStream

        Examples
        --------
        >>> import numpy as np, varinit
        >>> g = varinit.Generator(1234)
        >>> w = varinit.kaiming_normal_(np.empty((256, 128), np.float32),
        ...                             generator=g.stream("encoder.0.weight"))
        >>> again = varinit.kaiming_normal_(np.empty((256, 128), np.float32),
        ...                                 generator=varinit.Generator(1234).stream("encoder.0.weight"))
        >>> bool((w == again).all())
        True
        """
        return NamedStream(self._seed, name)

    def __repr__(self) -> str:
        return f"varinit.Generator(seed={self._seed}, next_stream={self._next_stream})"


def _generator_from_state(state: tuple[int, int]) -> Generator:
    return Generator(state[0]).set_state(state)


class Stream:
    """One fixed (key, stream_id) pair: every fill drawn from it uses exactly that stream.

    Immutable, hashable and picklable, so it can be sent to other processes:
    this is how `varinit.scale_out.dask_arrays` resolves a generator once and
    gives every chunk the same stream. ``Generator.stream(name)`` returns the
    named kind, `NamedStream`.

    Parameters
    ----------
    key : int
        The Philox key (the seed), in [0, 2**64).
    stream_id : int
        The stream, in [0, 2**64).

    Examples
    --------
    >>> import numpy as np, varinit
    >>> s = varinit.Stream(key=7, stream_id=3)
    >>> a = varinit.uniform_(np.empty(4, np.float32), generator=s)
    >>> b = varinit.uniform_(np.empty(4, np.float32), generator=s)
    >>> bool((a == b).all())
    True
    >>> g = varinit.Generator(7).set_state((7, 3))          # stream 3 is that generator's next
    >>> bool((varinit.uniform_(np.empty(4, np.float32), generator=g) == a).all())
    True
    """

    __slots__ = ("_key", "_stream_id")

    def __init__(self, key: int, stream_id: int) -> None:
        self._key = check_seed(key, "key")
        self._stream_id = check_seed(stream_id, "stream_id")

    @property
    def key(self) -> int:
        """The Philox key (the seed)."""
        return self._key

    @property
    def stream_id(self) -> int:
        """The stream number."""
        return self._stream_id

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__reduce__()[1] == other.__reduce__()[1]

    def __hash__(self) -> int:
        return hash(self.__reduce__())

    def __reduce__(self) -> tuple[Callable[..., Stream], tuple[object, ...]]:
        return (Stream, (self._key, self._stream_id))

    def __repr__(self) -> str:
        return f"varinit.generator.Stream(key={self._key}, stream_id={self._stream_id})"


class NamedStream(Stream):
    """The stream a seed gives a name: what ``Generator(seed).stream(name)`` returns.

    `key` is the seed; `stream_id` is 2**63 | (the first 8 bytes of
    SHA-256(name), little-endian, low 62 bits). Every fill drawn from it uses
    (key, stream_id), whatever came before.

    Parameters
    ----------
    seed : int
        The key, in [0, 2**64).
    name : str
        The name.

    Examples
    --------
    >>> import varinit
    >>> s = varinit.NamedStream(1234, "encoder.0.weight")
    >>> s == varinit.Generator(1234).stream("encoder.0.weight")
    True
    >>> s.name, s.key, s.stream_id >= 2 ** 63
    ('encoder.0.weight', 1234, True)
    """

    __slots__ = ("_name",)

    def __init__(self, seed: int, name: str) -> None:
        super().__init__(check_seed(seed), named_stream_id(name))
        self._name = name

    @property
    def name(self) -> str:
        """The name the stream was derived from."""
        return self._name

    def __reduce__(self) -> tuple[Callable[..., Stream], tuple[object, ...]]:
        return (NamedStream, (self._key, self._name))

    def __repr__(self) -> str:
        return f"varinit.Generator(seed={self._key}).stream({self._name!r})"


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed the default generator, as torch.manual_seed does; returns it.

    The default generator serves ``generator=None`` for NumPy arrays; torch
    tensors draw their key from torch's default generator instead, so
    ``torch.manual_seed`` governs them.

    Parameters
    ----------
    seed : int
        The key, in [0, 2**64).

    Returns
    -------
    Generator
        `varinit.default_generator`, with its stream counter at 0.

    Examples
    --------
    >>> import numpy as np, varinit
    >>> _ = varinit.manual_seed(0)
    >>> a = varinit.normal_(np.empty(4, np.float32))
    >>> _ = varinit.manual_seed(0)
    >>> b = varinit.normal_(np.empty(4, np.float32))
    >>> bool((a == b).all())
    True
    """
    return default_generator.manual_seed(seed)


def initial_seed() -> int:
    """The seed of the default generator: random at import, unless `manual_seed` set it.

    Returns
    -------
    int

    Examples
    --------
    >>> import varinit
    >>> _ = varinit.manual_seed(2026)
    >>> varinit.initial_seed()
    2026
    """
    return default_generator.initial_seed()


# One two-word int64 tensor per thread receives the words drawn from torch's
# generator: reusing it saves the allocation per call (a third of a small
# tensor's init), and one per thread keeps concurrent draws apart.
_torch_words = threading.local()


def _torch_key(torch_generator: torch.Generator | None) -> int:
    """A 64-bit key from two 32-bit draws of torch's generator (state advances).

    Tensor.random_(0, 2**32) is the kernel torch.randint(0, 2**32, (2,)) runs,
    so the key for a given torch seed is that of torch.randint.
    """
    buffer = getattr(_torch_words, "buffer", None)
    if buffer is None:
        import torch

        # never an inference tensor, which could not be written outside inference mode
        with torch.inference_mode(False):
            words = torch.empty(2, dtype=torch.int64, device="cpu")
        # with a NumPy view of the same memory: ndarray.tolist() reads it in a third of Tensor.tolist()'s time
        buffer = _torch_words.buffer = (words, words.numpy())
    words, values = buffer
    # random_(to) is random_(0, to): the same kernel and words, one argument fewer to parse
    if torch_generator is None:  # no keyword: torch parses keywords slowly
        words.random_(1 << 32)
    else:
        words.random_(1 << 32, generator=torch_generator)
    low, high = values.tolist()
    key: int = low | high << 32
    return key


def resolve(generator: GeneratorLike, target_is_torch: bool) -> tuple[int, int]:
    """(key, stream) for one fill drawn from `generator`.

    None: the default generator, except for a torch target, whose key is drawn
    from torch's default generator so that torch.manual_seed governs it.
    int: a fresh Generator(seed), stream 0. Generator.stream(name) (or any
    Stream): its fixed (key, stream_id), the same at every use. numpy.random.Generator and
    torch.Generator: a 64-bit key drawn from them (their state advances).
    While a meta tensor's fill is checked (varinit._arrays), nothing is drawn:
    DryRun ends the check here.
    """
    if dry_run_active():
        raise DryRun
    if generator is None:
        if target_is_torch:
            return _torch_key(None), 0
        return default_generator.take_stream()
    if isinstance(generator, Generator):
        return generator.take_stream()
    if isinstance(generator, Stream):
        return generator.key, generator.stream_id
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, (bool, np.bool_)):
        return check_seed(generator, "generator"), 0
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(0, SEED_LIMIT, dtype=np.uint64)), 0
    cls = type(generator)
    if cls.__module__ in ("torch", "torch._C") and cls.__name__ == "Generator":
        return _torch_key(cast("torch.Generator", generator)), 0
    raise TypeError(
        "generator must be None, an int seed, a varinit.Generator, a varinit.Generator.stream(name), "
        f"a numpy.random.Generator or a torch.Generator; got {cls.__module__}.{cls.__qualname__}"
    )


# (file, line, seed) of the user code that filled a whole tensor from an int
# seed -> the address it filled last; bounded so that a long session does not grow it.
_seeded_fills: dict[tuple[str, int, int], object] = {}
SEEDED_FILLS_LIMIT = 4096


def user_frame() -> tuple[FrameType | None, int]:
    """(frame, stacklevel) of the first caller outside varinit, as seen from the
    function that calls user_frame: warnings then point at the user's line."""
    frame: FrameType | None = sys._getframe(2)
    depth = 2   # stacklevel 2 is the caller of our caller
    while frame is not None and frame.f_globals.get("__name__", "").startswith("varinit."):
        frame, depth = frame.f_back, depth + 1
    return frame, depth


def warn_if_seed_reused(seed: int, address: object) -> None:
    """Warn when one line of user code fills different tensors from the same int seed.

    An int seed is a fixed stream: `for layer in layers: kaiming_normal_(layer.weight,
    generator=42)` gives every layer the same values (Keras warns about the same
    trap for seeded initializers). Filling the same tensor again, or filling blocks
    of one tensor with global_shape/start, is what an int seed is for, so only a
    new address from the same line counts.
    """
    frame, depth = user_frame()
    if frame is None:
        return
    site = (frame.f_code.co_filename, frame.f_lineno, seed)
    last = _seeded_fills.get(site)
    if last is None and len(_seeded_fills) >= SEEDED_FILLS_LIMIT:
        _seeded_fills.clear()
    _seeded_fills[site] = address
    if last is not None and last != address:
        warnings.warn(
            f"generator={seed} fills another tensor from the same line: an int seed is one fixed "
            "stream, so these tensors get identical values. Pass a varinit.Generator(seed) (a new "
            "stream per call) or generator.stream(name) (a stream per name) instead.",
            UserWarning, stacklevel=depth,
        )
