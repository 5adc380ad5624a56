"""Reading a file named by an untrusted source (a registry, a dataset, an annotation) without blocking
and without reading without end.

``read(path, max_bytes)`` returns the bytes of ``path`` only if it is a regular file (a link to one
is followed) of at most ``max_bytes`` bytes; ``open_regular`` opens such a file for a caller that
reads it in parts, ``check`` only stats it. A FIFO would block the open or the read forever, a
device (``/dev/zero``) would stream without end: both are refused by a ``stat`` before the open, and
the open uses O_NONBLOCK and is checked again with ``fstat``, so a path swapped for a FIFO between the
two still cannot block. At most ``max_bytes + 1`` bytes are ever read, so a file that grows while it
is read is bounded too. Imports only the standard library.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO, Optional

from omz_tools.errors import OmzError

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


class FileReadError(OmzError):
    """A file that cannot be read: ``problem`` says why in the "expected ..., found ..." form, for the
    caller to prefix with the file's name; ``errno`` and ``reason`` (the system's words) are set for an
    operating-system error, ``kind`` for a file that is not a regular one ("a folder", "a named pipe
    (FIFO)"...), ``too_large`` when it exceeds the bound, with ``size`` its size when it was seen
    before reading (None when it grew while it was read)."""

    def __init__(self, problem: str, *, errno_: Optional[int] = None, reason: Optional[str] = None,
                 kind: Optional[str] = None, too_large: bool = False, size: Optional[int] = None):
        super().__init__(problem)
        self.problem, self.errno, self.reason, self.kind = problem, errno_, reason, kind
        self.too_large, self.size = too_large, size


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _checked(info: os.stat_result, max_bytes: Optional[int], limit: str) -> os.stat_result:
    if not stat.S_ISREG(info.st_mode):
        kind = file_kind(info.st_mode)
        raise FileReadError(f"expected a regular file, found {kind}", kind=kind)
    if max_bytes is not None and info.st_size > max_bytes:
        raise FileReadError(f"expected a file of at most {limit}, found a larger one", too_large=True,
                            size=info.st_size)
    return info


def _os_error(exc: OSError) -> FileReadError:
    reason = exc.strerror or str(exc)
    return FileReadError(f"expected a readable file, found an error: {reason}", errno_=exc.errno, reason=reason)


_NUL = "expected a file name without NUL bytes, found one"


def check(path: os.PathLike, max_bytes: Optional[int] = None,
          describe_limit: Optional[str] = None) -> os.stat_result:
    """``os.stat(path)`` (links followed) if it is a regular file of at most ``max_bytes`` (None: any
    size), else :class:`FileReadError`. Never opens it."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise _os_error(exc) from None
    except ValueError:  # a NUL byte in the name
        raise FileReadError(_NUL) from None
    return _checked(info, max_bytes, describe_limit or f"{max_bytes:,} bytes")


def open_regular(path: os.PathLike, max_bytes: int, describe_limit: Optional[str] = None) -> BinaryIO:
    """``path`` open for reading if it is a regular file of at most ``max_bytes``, else
    :class:`FileReadError`: checked before the open (a FIFO would block it) and on the open file."""
    limit = describe_limit or f"{max_bytes:,} bytes"
    check(path, max_bytes, limit)
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise _os_error(exc) from None
    try:
        _checked(os.fstat(fd), max_bytes, limit)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read(path: os.PathLike, max_bytes: int, describe_limit: Optional[str] = None) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``; else :class:`FileReadError`.
    ``describe_limit`` words the bound in the message (default: the number of bytes)."""
    limit = describe_limit or f"{max_bytes:,} bytes"
    chunks, size = [], 0
    with open_regular(path, max_bytes, limit) as stream:
        try:
            while size <= max_bytes:
                chunk = stream.read(min(_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise _os_error(exc) from None
    if size > max_bytes:  # it grew since the check
        raise FileReadError(f"expected a file of at most {limit}, found a larger one", too_large=True)
    return b"".join(chunks)


def is_missing(exc: FileReadError) -> bool:
    return exc.errno in (errno.ENOENT, errno.ENOTDIR)
