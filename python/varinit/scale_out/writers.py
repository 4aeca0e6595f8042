"""Writing a whole model's initialized parameters to files, one block in memory at a time.

`save_safetensors` writes a safetensors file, `save_zarr` a Zarr v3 group.
Tensor `name` gets the values of
``initializer(np.empty(shape, dtype), generator=Generator(seed).stream(name), **kwargs)``,
so a parameter's values depend on (seed, name) only.

Nothing is lost when a write fails. Every tensor is checked first (its
name, shape, dtype, and a one-element probe fill with its initializer and
keywords), so a bad spec raises, naming the tensor, before any file is
created. The data then goes to a new file or directory beside the
destination, which replaces the destination only once it is complete and
fsynced: an exception, a full disk or a kill leaves the previous file or
store as it was (see `save_safetensors` and `save_zarr` for what each
guarantees, and `open_zarr_checked` for reading a store safely).
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import math
import os
import shutil
import struct
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Union

import numpy as np
import numpy.typing as npt

from .. import _validate, init
from .._arrays import dtype_named
from ..generator import Generator, NamedStream, check_seed
from .blocks import DEFAULT_BLOCK_BYTES, fill_block, probe, slabs, takes_region
from .._typing import Array
from ..progress import Progress, Step, reporter
from .durable_files import StrPath, fsync_directory, fsync_file, fsync_tree, replacing, reserve, sibling

if TYPE_CHECKING:
    import zarr
    from zarr.storage import StoreLike

# a chunk shape per tensor: "auto" or a tuple of ints
ChunkShape = Union[Literal["auto"], tuple[int, ...]]

SAFETENSORS_DTYPES = {"float16": "F16", "bfloat16": "BF16", "float32": "F32", "float64": "F64"}
ZARR_DTYPES = ("float16", "float32", "float64")  # Zarr v3 has no bfloat16
# The safetensors reader refuses larger headers (MAX_HEADER_SIZE in safetensors' lib.rs).
SAFETENSORS_MAX_HEADER = 100_000_000
# save_zarr's completion record, an attribute of the root group: written
# {"complete": False, ...} before the first array of a store changes and
# {"complete": True, "arrays": {name: {"shape", "dtype"}}} after the last.
ZARR_RECORD = "varinit_save_zarr"


class StoreNotRestoredError(OSError):
    """A save_zarr into an existing local store failed while moving arrays into it, and putting the store back failed too.

    The message says where the store's previous arrays are kept. A subclass
    of OSError.

    Examples
    --------
    >>> from varinit.scale_out.writers import StoreNotRestoredError
    >>> issubclass(StoreNotRestoredError, OSError)
    True
    """


class TensorSpec(NamedTuple):
    """One parameter to create: its shape, dtype, initializer and the initializer's keywords.

    Parameters
    ----------
    shape : tuple of int
        The tensor's shape.
    dtype : str, default "float32"
        float16, bfloat16 (safetensors only), float32 or float64.
    initializer : callable, default ``varinit.normal_``
        A varinit fill: random ones are filled slab by slab from the tensor's
        named stream, ``orthogonal_`` whole, ``zeros_`` and ``ones_`` as they are.
    kwargs : dict, optional
        The initializer's keywords.

    Examples
    --------
    >>> import varinit
    >>> from varinit.scale_out.writers import TensorSpec
    >>> TensorSpec((4096, 1024), "bfloat16", varinit.kaiming_normal_, {"nonlinearity": "relu"}).shape
    (4096, 1024)
    """

    shape: tuple[int, ...]
    dtype: npt.DTypeLike = "float32"
    initializer: Callable[..., Any] = init.normal_
    kwargs: Mapping[str, Any] = {}


class _Tensor(NamedTuple):
    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    initializer: Callable[..., Any]
    kwargs: dict[str, Any]
    stream: NamedStream


@contextlib.contextmanager
def _naming(name: str) -> Iterator[None]:
    """Make any error raised in the block name tensor `name`: TypeError and ValueError
    get it in their message, other exceptions as a note (PEP 678)."""
    try:
        yield
    except Exception as exc:
        if type(exc) in (TypeError, ValueError):
            raise type(exc)(f"tensor {name!r}: {exc}") from exc
        if sys.version_info >= (3, 11):   # PEP 678 notes; Python 3.10 has none
            exc.add_note(f"while writing tensor {name!r}")
        raise


def _utf8(text: str, what: str) -> None:
    """Refuse strings that UTF-8 cannot encode (lone surrogates): safetensors' JSON
    reader and Zarr's metadata would reject them."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} {text!r} is not valid Unicode (it holds a lone surrogate)") from None


def _tensors(params: object, generator: object, dtypes: Collection[str], file_kind: str,
             check_name: Callable[[str], None]) -> list[_Tensor]:
    """The validated tensors of `params`, in order; raises (naming the tensor) for any
    spec that cannot be written, before anything is."""
    if isinstance(generator, Generator):
        seed = generator.initial_seed()
    else:
        seed = check_seed(generator, "generator")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping from parameter name to TensorSpec, "
                        f"got {type(params).__name__}")
    tensors = []
    for name, spec in params.items():
        if not isinstance(name, str):
            raise TypeError(f"parameter names must be str, got {type(name).__name__}")
        check_name(name)
        if not isinstance(spec, TensorSpec):
            if not isinstance(spec, (tuple, list)) or not 1 <= len(spec) <= 4:
                raise TypeError(f"params[{name!r}] must be a TensorSpec or a (shape, dtype, "
                                f"initializer, kwargs) tuple, got {type(spec).__name__}")
            spec = TensorSpec(*spec)
        shape = _validate.index_tuple(spec.shape, f"shape of {name!r}")
        try:
            dtype = dtype_named(spec.dtype)
        except TypeError:
            raise TypeError(f"dtype of {name!r} must be a NumPy dtype or its name, got {spec.dtype!r}") from None
        if dtype.name not in dtypes:
            raise TypeError(f"dtype of {name!r} must be one of {list(dtypes)} for {file_kind}, got {dtype}")
        if not callable(spec.initializer):
            raise TypeError(f"initializer of {name!r} must be callable, got {type(spec.initializer).__name__}")
        if not isinstance(spec.kwargs, Mapping) or not all(isinstance(k, str) for k in spec.kwargs):
            raise TypeError(f"kwargs of {name!r} must be a mapping from keyword (str) to value")
        if math.prod(shape) * dtype.itemsize > _validate.INT64_MAX:
            raise ValueError(f"tensor {name!r} of shape {shape} needs more than 2**63 bytes")
        kwargs = dict(spec.kwargs)
        with _naming(name):
            probe(spec.initializer, shape, dtype, kwargs)
        tensors.append(_Tensor(name, shape, dtype, spec.initializer, kwargs, Generator(seed).stream(name)))
    return tensors


def _fill_to_sink(tensor: _Tensor, block_bytes: int, write: Callable[[tuple[int, ...], Array], None]) -> None:
    """Fill one tensor slab by slab (or whole, if its initializer has no region form),
    passing each C-ordered block to write(start, block)."""
    _, shape, dtype, initializer, kwargs, stream = tensor
    if not takes_region(initializer):
        whole = np.empty(shape, dtype)
        fill_block(whole, initializer, stream, shape, (0,) * len(shape), kwargs)
        write((0,) * len(shape), whole)
        return
    for start, block_shape in slabs(shape, dtype.itemsize, block_bytes):
        block = np.empty(block_shape, dtype)
        fill_block(block, initializer, stream, shape, start, kwargs)
        write(start, block)


def _little_endian_bytes(block: Array) -> memoryview:
    bits = block.view(f"u{block.dtype.itemsize}")
    return np.ascontiguousarray(bits.astype(bits.dtype.newbyteorder("<"), copy=False)).data


def _safetensors_name(name: str) -> None:
    if name == "__metadata__":
        raise ValueError("a tensor cannot be named '__metadata__': safetensors keeps that key "
                         "for the file's metadata (pass metadata= instead)")
    _utf8(name, "tensor name")


def save_safetensors(path: StrPath, params: Mapping[str, TensorSpec | Sequence[Any]], generator: int | Generator, *,
                     metadata: Mapping[str, str] | None = None, block_bytes: int = DEFAULT_BLOCK_BYTES,
                     progress: Progress = None) -> StrPath:
    """Write initialized parameters to a safetensors file, one slab in memory at a time.

    Tensor `name` gets the values of ``initializer(np.empty(shape, dtype),
    generator=Generator(seed).stream(name), **kwargs)``, with seed `generator`:
    its values depend on (seed, name) only. The file follows the safetensors
    format: an 8-byte little-endian header length, a JSON header {name: {dtype,
    shape, data_offsets}} padded with spaces to 8 bytes, then the tensors'
    little-endian bytes back to back.

    Nothing is lost when a write fails: every spec is checked first (a bad one
    raises naming the tensor, and the file system is not touched); the file is
    then written beside `path` (hidden, ``.<name>.<random>.partial``), its
    space reserved up front (a full disk raises OSError before any data is
    computed), flushed, fsynced and renamed over `path`. Any failure (an
    exception, a full disk, KeyboardInterrupt) removes the new file and leaves
    `path` as it was; a kill leaves `path` as it was and at most the hidden
    file beside it.

    Parameters
    ----------
    path : str or path-like
        The file to write (replaced if it exists).
    params : mapping
        Name to `TensorSpec` (or a (shape, dtype, initializer, kwargs) tuple).
    generator : int or Generator
        The seed (a varinit.Generator stands for its seed).
    metadata : mapping of str to str, optional
        The header's ``__metadata__``.
    block_bytes : int, default 64 MiB
        The size of one slab in memory.
    progress : bool or callable, optional
        True: a tqdm progress bar, when tqdm is installed (`varinit.progress`);
        a callable is called as ``progress(done, total)``, in elements over
        all tensors.

    Returns
    -------
    str or path-like
        `path`.

    Examples
    --------
    >>> import os, tempfile, numpy as np, varinit
    >>> from varinit.scale_out.writers import TensorSpec, save_safetensors
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = save_safetensors(os.path.join(folder.name, "init.safetensors"),
    ...                         {"fc.weight": TensorSpec((256, 128), "float32", varinit.kaiming_uniform_, {"a": 5 ** 0.5}),
    ...                          "fc.bias": TensorSpec((256,), "float32", varinit.zeros_)}, generator=0)
    >>> from safetensors.numpy import load_file
    >>> tensors = load_file(path)
    >>> same = varinit.kaiming_uniform_(np.empty((256, 128), np.float32), a=5 ** 0.5,
    ...                                 generator=varinit.Generator(0).stream("fc.weight"))
    >>> sorted(tensors), bool((tensors["fc.weight"] == same).all())
    (['fc.bias', 'fc.weight'], True)
    >>> folder.cleanup()
    """
    os.fspath(path)  # a TypeError for a bad path before any work
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        for key, value in metadata.items():
            _utf8(key, "metadata key")
            _utf8(value, f"metadata[{key!r}]")
    block_bytes = _validate.integer(block_bytes, "block_bytes", minimum=1)
    step = reporter(progress, "varinit: writing", unit="values")
    tensors = _tensors(params, generator, SAFETENSORS_DTYPES, "safetensors", _safetensors_name)
    header: dict[str, Any] = {}
    offset = 0
    for t in tensors:
        size = math.prod(t.shape) * t.dtype.itemsize
        header[t.name] = {"dtype": SAFETENSORS_DTYPES[t.dtype.name], "shape": list(t.shape),
                          "data_offsets": [offset, offset + size]}
        offset += size
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    if len(text) > SAFETENSORS_MAX_HEADER:
        raise ValueError(f"the safetensors header would take {len(text)} bytes; readers refuse "
                         f"more than {SAFETENSORS_MAX_HEADER} (too many or too long names)")
    total = sum(math.prod(t.shape) for t in tensors)
    done = 0
    with replacing(path) as f:
        reserve(f.fileno(), 0, 8 + len(text) + offset, path)
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for t in tensors:
            def write(start: tuple[int, ...], block: Array) -> None:
                nonlocal done
                f.write(_little_endian_bytes(block))
                done += block.size
                if step is not None:
                    step(done, total)
            with _naming(t.name):
                _fill_to_sink(t, block_bytes, write)
    return path


# ---- Zarr ----------------------------------------------------------------------------------
def _zarr_name(name: str) -> None:
    """Refuse names that are not a Zarr v3 node path (segments joined by "/"; no empty,
    all-dot or "__"-prefixed segment: the spec reserves those), since zarr would
    normalize them, and two names could then land on one array."""
    _utf8(name, "tensor name")
    for segment in name.split("/"):
        if not segment or set(segment) == {"."} or segment.startswith("__") or "\x00" in segment:
            raise ValueError(
                f"tensor name {name!r} is not a Zarr node path: its '/'-separated parts must be "
                "non-empty, not only dots, not start with '__' and hold no NUL"
            )


def _chunk_shapes(chunks: object, tensors: Sequence[_Tensor]) -> list[ChunkShape]:
    """One chunk shape ("auto" or a tuple of positive ints, one per axis) per tensor."""
    names = {t.name for t in tensors}
    if isinstance(chunks, Mapping):
        unknown = sorted(set(chunks) - names, key=str)
        if unknown:
            raise ValueError(f"chunks names {unknown!r}, which are not in params")
        picked = [chunks.get(t.name, "auto") for t in tensors]
    else:
        picked = [chunks] * len(tensors)
    shapes: list[ChunkShape] = []
    for t, c in zip(tensors, picked):
        if isinstance(c, str):
            if c != "auto":
                raise ValueError(f"chunks of {t.name!r} must be 'auto' or a tuple of positive ints, got {c!r}")
            shapes.append("auto")
            continue
        given = _validate.index_tuple(c, f"chunks of {t.name!r}", minimum=1)
        if len(given) != len(t.shape):
            raise ValueError(f"chunks of {t.name!r} must have {len(t.shape)} entries (one per axis), got {given}")
        shapes.append(given)
    return shapes


def _check_tree(names: Collection[str]) -> None:
    """Refuse a name that is another's parent: an array cannot hold other nodes."""
    for name in names:
        parts = name.split("/")
        for k in range(1, len(parts)):
            if "/".join(parts[:k]) in names:
                raise ValueError(f"tensor {name!r} would be inside the array {'/'.join(parts[:k])!r}")


def _record(tensors: Sequence[_Tensor]) -> dict[str, dict[str, Any]]:
    return {t.name: {"shape": list(t.shape), "dtype": t.dtype.name} for t in tensors}


def _write_arrays(group: zarr.Group, tensors: Sequence[_Tensor], chunk_shapes: Sequence[ChunkShape],
                  progress: Step) -> None:
    """Create and fill one array per tensor, chunk by chunk (one chunk in memory).

    The fill value is NaN, so a chunk that was never written reads NaN, not a
    plausible 0."""
    total = sum(math.prod(t.shape) for t in tensors)
    done = 0
    for t, chunk_shape in zip(tensors, chunk_shapes):
        name, shape, dtype, initializer, kwargs, stream = t
        with _naming(name):
            z = group.create_array(name, shape=shape, dtype=dtype, chunks=chunk_shape,
                                   fill_value=np.nan, overwrite=True)
            chunk = z.chunks
            whole = None if takes_region(initializer) else np.empty(shape, dtype)
            if whole is not None:
                fill_block(whole, initializer, stream, shape, (0,) * len(shape), kwargs)
            for corner in itertools.product(*(range(0, n, c) for n, c in zip(shape, chunk))):
                region = tuple(slice(s, min(s + c, n)) for s, c, n in zip(corner, chunk, shape))
                if whole is not None:
                    block = whole[region]
                else:
                    block = np.empty(tuple(r.stop - r.start for r in region), dtype)
                    fill_block(block, initializer, stream, shape, corner, kwargs)
                z[region] = block
                done += block.size
                if progress is not None:
                    progress(done, total)


def _local_directory(store: StoreLike) -> Path | None:
    """The directory of a local store (a path or a zarr.storage.LocalStore), else None."""
    import zarr

    if isinstance(store, zarr.storage.LocalStore):
        if store.read_only:
            raise ValueError("store is read-only: save_zarr needs a writable store")
        return Path(store.root)
    if isinstance(store, (str, os.PathLike)):
        text = os.fspath(store)
        if isinstance(text, str) and text.startswith("file://"):
            return Path(text[len("file://"):])
        if isinstance(text, str) and "://" not in text:
            return Path(text)
    return None


def _node_type(path: StrPath) -> str | None:
    """"group" or "array" for a Zarr v3 node directory, None for anything else."""
    try:
        with open(os.path.join(path, "zarr.json"), "rb") as f:
            node_type: str | None = json.load(f).get("node_type")
            return node_type
    except (OSError, ValueError, AttributeError):
        return None


def _check_local_destination(dest: Path, tensors: Sequence[_Tensor]) -> bool:
    """True if `dest` is a Zarr v3 group to write into, False if absent or an empty directory;
    raises for anything save_zarr could not write into without losing what is there."""
    if not os.path.lexists(dest):
        return False
    if not os.path.isdir(dest):
        raise ValueError(f"store {str(dest)!r} exists and is not a directory")
    if not os.listdir(dest):
        return False
    if _node_type(dest) != "group":
        kind = "a Zarr v2 store" if os.path.exists(dest / ".zgroup") else "not a Zarr v3 group"
        raise ValueError(f"store {str(dest)!r} exists and is {kind}: save_zarr writes Zarr v3 groups "
                         "and does not write into anything else")
    for t in tensors:
        parts = t.name.split("/")
        for k in range(1, len(parts)):
            parent = dest.joinpath(*parts[:k])
            if os.path.lexists(parent) and _node_type(parent) != "group":
                raise ValueError(f"tensor {t.name!r}: {str(parent)!r} exists and is not a Zarr group")
        node = dest.joinpath(*parts)
        if os.path.lexists(node) and _node_type(node) != "array":
            raise ValueError(f"tensor {t.name!r}: {str(node)!r} exists and is not a Zarr array; "
                             "save_zarr replaces arrays only")
    return True


def _set_record(group: zarr.Group, record: Any, directory: Path | None = None) -> None:
    # record: the JSON value of the attribute, None to remove it
    if record is None:
        group.attrs.pop(ZARR_RECORD, None)
    else:
        group.attrs[ZARR_RECORD] = record
    if directory is not None:
        fsync_file(directory / "zarr.json")
        fsync_directory(directory)


def _make_group_dir(source: Path, target: Path) -> None:
    target.mkdir()
    shutil.copyfile(source / "zarr.json", target / "zarr.json")
    fsync_file(target / "zarr.json")


def _remove_group_dir(target: Path) -> None:
    os.remove(target / "zarr.json")
    target.rmdir()


def _swap_in(dest: Path, staging: Path, tensors: Sequence[_Tensor]) -> None:
    """Move the complete arrays of `staging` into the existing group `dest`, replacing
    arrays of the same names; a failure puts everything back."""
    import zarr

    group = zarr.open_group(zarr.storage.LocalStore(dest), mode="r+")
    previous = group.attrs.get(ZARR_RECORD)
    arrays = dict(previous.get("arrays", {})) if isinstance(previous, dict) else {}
    # From here until the last rename, readers that check are told the store is changing.
    _set_record(group, {"complete": False, "arrays": arrays}, dest)
    replaced = staging / ".replaced"
    replaced.mkdir()
    undo: list[Callable[[], object]] = []
    try:
        for i, t in enumerate(tensors):
            parts = t.name.split("/")
            for k in range(1, len(parts)):
                parent = dest.joinpath(*parts[:k])
                if not os.path.lexists(parent):
                    _make_group_dir(staging.joinpath(*parts[:k]), parent)
                    undo.append(functools.partial(_remove_group_dir, parent))
            node = dest.joinpath(*parts)
            if os.path.lexists(node):
                os.rename(node, replaced / str(i))
                undo.append(functools.partial(os.rename, replaced / str(i), node))
            os.rename(staging.joinpath(*parts), node)
            undo.append(functools.partial(os.rename, node, staging.joinpath(*parts)))
            fsync_directory(node.parent)
    except BaseException as exc:
        try:
            for step in reversed(undo):
                step()
            _set_record(group, previous, dest)
        except BaseException as second:
            raise StoreNotRestoredError(
                f"moving the new arrays into {str(dest)!r} failed ({exc!r}), and so did putting the "
                f"store back ({second!r}): its record says incomplete, and the arrays it held are "
                f"kept in {str(replaced)!r}"
            ) from exc
        raise
    _set_record(group, {"complete": True, "arrays": {**arrays, **_record(tensors)}}, dest)


def _save_local(dest: Path, tensors: Sequence[_Tensor], chunk_shapes: Sequence[ChunkShape],
                progress: Step) -> None:
    """Write a new store beside `dest`; swap it (or its arrays) in once complete and fsynced."""
    import zarr

    dest = Path(os.path.realpath(dest))
    exists = _check_local_destination(dest, tensors)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(sibling(dest, "partial"))
    keep = False
    try:
        group = zarr.open_group(zarr.storage.LocalStore(staging), mode="w-")
        _write_arrays(group, tensors, chunk_shapes, progress)
        if exists:
            fsync_tree(staging)
            try:
                _swap_in(dest, staging, tensors)
            except StoreNotRestoredError:
                keep = True  # the staging directory now holds the store's previous arrays
                raise
        else:
            _set_record(group, {"complete": True, "arrays": _record(tensors)})
            fsync_tree(staging)
            os.rename(staging, dest)  # atomic; replaces an empty directory too
            fsync_directory(dest.parent)
    finally:
        if not keep:
            shutil.rmtree(staging, ignore_errors=True)


def _save_in_place(store: StoreLike, tensors: Sequence[_Tensor], chunk_shapes: Sequence[ChunkShape],
                   progress: Step) -> None:
    """Write the arrays into a store that has no rename (memory, object stores, zip),
    behind the completion record."""
    import zarr

    group = zarr.open_group(store, mode="a")
    if group.metadata.zarr_format != 3:
        raise ValueError("store is a Zarr v2 group: save_zarr writes Zarr v3 groups")
    for t in tensors:
        parts = t.name.split("/")
        for k in range(1, len(parts) + 1):
            path = "/".join(parts[:k])
            wanted = zarr.Array if k == len(parts) else zarr.Group
            if path in group and not isinstance(group[path], wanted):
                raise ValueError(f"tensor {t.name!r}: the store holds a {type(group[path]).__name__} "
                                 f"at {path!r}, which save_zarr will not replace")
    previous = group.attrs.get(ZARR_RECORD)
    arrays = dict(previous.get("arrays", {})) if isinstance(previous, dict) else {}
    _set_record(group, {"complete": False, "arrays": arrays})
    _write_arrays(group, tensors, chunk_shapes, progress)
    _set_record(group, {"complete": True, "arrays": {**arrays, **_record(tensors)}})


def save_zarr(store: StoreLike, params: Mapping[str, TensorSpec | Sequence[Any]], generator: int | Generator, *,
              chunks: ChunkShape | Mapping[str, ChunkShape] = "auto",
              progress: Progress = None) -> zarr.Group:
    """Write initialized parameters to a Zarr v3 group: one array per parameter, filled chunk by chunk.

    Values as in `save_safetensors`. Only one chunk is in memory at a time.
    Arrays of the group not in `params` are kept; those in it are replaced.

    Crash safety: every spec, name and chunk shape is checked first, and
    nothing that is not a Zarr array is ever replaced. Arrays are created
    with fill value NaN, so a chunk never written reads NaN, not 0. The root
    group's attribute "varinit_save_zarr" records completion:
    `open_zarr_checked` opens a store only if the last save_zarr into it
    finished and every array it wrote is there.

    - A local directory: the arrays are written into a new store beside it
      (hidden, ``.<name>.<random>.partial``) and fsynced; then the new store
      is renamed into place (a new destination) or its arrays are renamed
      into the existing group, replacing those of the same names. An
      exception, a full disk or a kill during the write leaves the previous
      store exactly as it was (a kill: with the hidden directory beside it,
      safe to delete); only during the final renames (milliseconds) does the
      record say "incomplete", and an exception there puts everything back
      (should that fail too, `StoreNotRestoredError` says where the previous
      arrays are kept).
    - Other stores have no rename: arrays are written in place, the record
      set to incomplete first and to complete last. A failure leaves the
      record incomplete (open_zarr_checked raises), and the arrays that
      were being replaced are lost.

    Parameters
    ----------
    store : str, path-like or zarr store
        A local directory (a path or a ``zarr.storage.LocalStore``) or any
        other store ``zarr.open_group`` accepts.
    params : mapping
        Name to `TensorSpec` (float16, float32 or float64: Zarr v3 has no
        bfloat16).
    generator : int or Generator
        The seed.
    chunks : "auto", tuple of int or mapping, default "auto"
        One chunk shape for all, or a mapping from parameter name to its chunk
        shape ("auto" for names not in it).
    progress : bool or callable, optional
        True: a tqdm progress bar, when tqdm is installed (`varinit.progress`);
        a callable is called as ``progress(done, total)``, in elements over
        all tensors.

    Returns
    -------
    zarr.Group
        The group, opened for reading and writing.

    Examples
    --------
    >>> import os, tempfile, numpy as np, varinit
    >>> from varinit.scale_out.writers import TensorSpec, save_zarr, open_zarr_checked
    >>> folder = tempfile.TemporaryDirectory()
    >>> store = os.path.join(folder.name, "init.zarr")
    >>> group = save_zarr(store, {"fc.weight": TensorSpec((256, 128))}, generator=0, chunks=(64, 128))
    >>> w = open_zarr_checked(store)["fc.weight"][...]       # raises if a write into it did not finish
    >>> bool((w == varinit.normal_(np.empty((256, 128), np.float32),
    ...                            generator=varinit.Generator(0).stream("fc.weight"))).all())
    True
    >>> folder.cleanup()
    """
    import zarr

    step = reporter(progress, "varinit: writing", unit="values")
    tensors = _tensors(params, generator, ZARR_DTYPES, "Zarr", _zarr_name)
    _check_tree({t.name for t in tensors})
    chunk_shapes = _chunk_shapes(chunks, tensors)
    local = _local_directory(store)
    if local is None:
        _save_in_place(store, tensors, chunk_shapes, step)
    else:
        _save_local(local, tensors, chunk_shapes, step)
    return zarr.open_group(store, mode="r+")


def open_zarr_checked(store: StoreLike) -> zarr.Group:
    """Open a group written by `save_zarr` for reading, if every save_zarr into it finished.

    Parameters
    ----------
    store : str, path-like or zarr store
        The store save_zarr wrote.

    Returns
    -------
    zarr.Group
        Opened read-only.

    Raises
    ------
    ValueError
        When the store has no completion record (not written by save_zarr, or
        its first write never finished), when a write into it did not finish
        (its arrays may hold unwritten, NaN chunks), or when an array the
        record lists is missing or has another shape or dtype.

    Examples
    --------
    >>> import os, tempfile, varinit
    >>> from varinit.scale_out.writers import TensorSpec, save_zarr, open_zarr_checked
    >>> folder = tempfile.TemporaryDirectory()
    >>> _ = save_zarr(os.path.join(folder.name, "init.zarr"), {"b": TensorSpec((4,), initializer=varinit.zeros_)}, 0)
    >>> open_zarr_checked(os.path.join(folder.name, "init.zarr"))["b"][...]
    array([0., 0., 0., 0.], dtype=float32)
    >>> folder.cleanup()
    """
    import zarr

    group = zarr.open_group(store, mode="r")
    record = group.attrs.get(ZARR_RECORD)
    if not isinstance(record, dict) or not isinstance(record.get("arrays"), dict):
        raise ValueError(f"store {store!r} has no record of a finished save_zarr (attribute "
                         f"{ZARR_RECORD!r}): it was not written by save_zarr, or its first write never finished")
    if record.get("complete") is not True:
        raise ValueError(f"store {store!r} is incomplete: a save_zarr into it did not finish, so its "
                         "arrays may hold unwritten chunks (they read as NaN)")
    for name, meta in record["arrays"].items():
        node = group.get(name)
        if not isinstance(node, zarr.Array):
            raise ValueError(f"store {store!r} is incomplete: array {name!r} written by save_zarr is missing")
        if list(node.shape) != meta.get("shape") or np.dtype(node.dtype).name != meta.get("dtype"):
            raise ValueError(f"store {store!r}: array {name!r} is {node.dtype}{list(node.shape)}, but "
                             f"save_zarr wrote {meta.get('dtype')}{meta.get('shape')}")
    return group
