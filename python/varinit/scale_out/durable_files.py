"""Files that a crash, a kill or a full disk cannot leave half-written.

- `reserve` allocates a file's blocks before it is filled, so a full
  filesystem is an OSError (ENOSPC) before the first byte, not a truncated
  file or, for a memory-mapped file, a SIGBUS that kills the process when a
  page finds no block behind it.
- `replacing` writes a new file beside the destination and renames it over
  the destination only once its bytes are flushed and fsynced: the
  destination holds its old bytes or the new ones, never a mixture.
- `fsync_file`, `fsync_directory`, `fsync_tree` make renames and new files durable, as
  rename(2) alone is not (a power cut can forget the new directory entry).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from typing import BinaryIO, Union, cast

# Errors that say the filesystem cannot reserve space (no fallocate, and
# glibc's emulation does not apply), not that space is missing: filling
# proceeds without a reservation, as it did before one existed.
# a file or directory name
StrPath = Union[str, "os.PathLike[str]"]
UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL, errno.ENODEV, errno.ESPIPE}


def reserve(fd: int, offset: int, length: int, filename: StrPath) -> None:
    """Allocate bytes [offset, offset + length) of the file open as `fd`, for `filename`.

    Existing bytes are unchanged (posix_fallocate(3) only allocates holes).
    A full filesystem or quota raises OSError (ENOSPC, EDQUOT, EFBIG) naming
    `filename`; where the filesystem has no way to reserve, nothing happens.
    """
    if length <= 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, offset, length)
    except OSError as exc:
        if exc.errno in UNSUPPORTED:
            return
        raise OSError(exc.errno, f"{os.strerror(cast(int, exc.errno))}: cannot reserve {length} bytes to write",
                      os.fspath(filename)) from None


def fsync_directory(path: StrPath) -> None:
    """fsync a directory, so that the entries created or renamed in it survive a power cut."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows cannot open a directory; its renames are journaled
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: StrPath) -> None:
    """fsync a file's data and size, e.g. one written by another library."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: StrPath) -> None:
    """fsync every file and directory under `root` (deepest first), then `root` itself."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_file(os.path.join(directory, name))
        fsync_directory(directory)


def sibling(path: StrPath, tag: str) -> str:
    """A new hidden name beside `path`: .<name>.<random>.<tag>, on the same filesystem, so a
    rename from it is atomic, and never the destination itself, so no partial file is ever at
    the destination path."""
    directory, base = os.path.split(path)
    return os.path.join(directory, f".{base}.{secrets.token_hex(6)}.{tag}")


@contextlib.contextmanager
def replacing(path: StrPath) -> Iterator[BinaryIO]:
    """Open a new file beside `path` for binary writing; on success, make it `path`.

    When the block ends normally the file is flushed, fsynced and renamed over
    `path` (os.replace, atomic on POSIX), then the directory is fsynced. When
    it raises (KeyboardInterrupt and a full disk included) the new file is
    removed and `path` keeps its old bytes. A kill leaves at most a hidden
    ``.<name>.<random>.partial`` file beside `path`, safe to delete.
    A symbolic link at `path` is followed: its target is replaced, the link
    stays. The new file keeps the permissions of the file it replaces.
    """
    dest = os.path.realpath(os.fspath(path))
    if os.path.isdir(dest):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), dest)
    if not os.path.isdir(os.path.dirname(dest)):
        raise FileNotFoundError(errno.ENOENT, "no such directory to write into", dest)
    try:
        mode = stat.S_IMODE(os.stat(dest).st_mode)
    except FileNotFoundError:
        mode = None
    while True:
        temp = sibling(dest, "partial")
        try:
            # 0o666 and the umask, as open(path, "wb") would create it
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
            break
        except FileExistsError:
            continue
    try:
        with open(fd, "wb") as f:
            if mode is not None:
                os.chmod(temp, mode)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
    fsync_directory(os.path.dirname(dest))
