"""Reading a file named by an untrusted source (a registry, a dataset, an annotation) without blocking
and without reading without end.

``read(path, max_bytes)`` returns the bytes of ``path`` only if it is a regular file (a link to one
is followed) of at most ``max_bytes`` bytes. A FIFO would block the open or the read forever, a
device (``/dev/zero``) would stream without end: both are refused by a ``stat`` before the open, and
the open uses O_NONBLOCK and is checked again with ``fstat``, so a path swapped for a FIFO between the
two still cannot block. At most ``max_bytes + 1`` bytes are ever read, so a file that grows while it
is read is bounded too. Imports only the standard library.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional

from omz_tools.errors import OmzError

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


class FileReadError(OmzError):
    """A file that cannot be read: ``problem`` says why in the "expected ..., found ..." form, for the
    caller to prefix with the file's name; ``errno`` is set for an operating-system error, ``kind``
    for a file that is not a regular one ("a folder", "a named pipe (FIFO)"...), ``too_large`` when
    it exceeds the bound."""

    def __init__(self, problem: str, *, errno_: Optional[int] = None, kind: Optional[str] = None,
                 too_large: bool = False):
        super().__init__(problem)
        self.problem, self.errno, self.kind, self.too_large = problem, errno_, kind, too_large


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a regular file"


def _refuse(mode: int) -> FileReadError:
    kind = file_kind(mode)
    return FileReadError(f"expected a regular file, found {kind}", kind=kind)


def read(path: Path, max_bytes: int, describe_limit: Optional[str] = None) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes``; else :class:`FileReadError`.
    ``describe_limit`` words the bound in the message (default: the number of bytes)."""
    limit = describe_limit or f"{max_bytes:,} bytes"
    try:
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise _refuse(mode)
        fd = os.open(path, _FLAGS)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise _refuse(info.st_mode)
            if info.st_size > max_bytes:
                raise FileReadError(f"expected a file of at most {limit}, found a larger one", too_large=True)
            chunks, size = [], 0
            while size <= max_bytes:
                chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise FileReadError(f"expected a readable file, found an error: {exc.strerror or exc}",
                            errno_=exc.errno) from None
    except ValueError:  # a NUL byte in the name
        raise FileReadError("expected a file name without NUL bytes, found one") from None
    if size > max_bytes:
        raise FileReadError(f"expected a file of at most {limit}, found a larger one", too_large=True)
    return b"".join(chunks)


def is_missing(exc: FileReadError) -> bool:
    return exc.errno in (errno.ENOENT, errno.ENOTDIR)
