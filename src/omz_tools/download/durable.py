"""fsync helpers (a file's bytes, and a folder's entries, so that a rename into it survives a crash),
and opening the tool's own working files without following links."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Optional


def fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk; errors propagate (the caller must not rename an unsynced file)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (renames into it); best effort, as some filesystems refuse it."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- the tool's own working files: never through a link ------------------------------------------
#
# The downloader keeps state at fixed names in folders it does not own exclusively (``<file>.part``,
# ``<file>.part.json``, ``.omz_verified.json``, lock files, the cache's locks). Whoever can create
# entries there could plant a symbolic link (or a FIFO) at such a name; following it would create
# or overwrite a file outside the output folder, or block forever. So these names are opened only
# with O_NOFOLLOW (and O_NONBLOCK, so a FIFO cannot block the open), only a regular file is
# accepted, and anything else found at such a name is removed and said, never followed.

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class NotRegularFile(OSError):
    """A working file's name holds something else than a regular file (a link, FIFO, device...)."""


def describe_entry(path: Path) -> Optional[str]:
    """What is at ``path`` if it is neither absent, a regular file nor a folder ("a symbolic link
    to X", "a FIFO"...), else None. Never follows a link."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        try:
            return f"a symbolic link to {os.readlink(path)}"
        except OSError:
            return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device file"


def remove_foreign(path: Path) -> Optional[str]:
    """Remove a link or special file found where the tool keeps a working file of its own; return
    one sentence saying so (None when ``path`` is absent, a regular file or a folder)."""
    what = describe_entry(path)
    if what is None:
        return None
    try:
        os.unlink(path)  # unlink removes the link itself, never its target
    except FileNotFoundError:
        pass
    return (f"{path} was {what}, where omz-downloader keeps a working file of its own; removed it "
            "without following it (nothing was read or written through it)")


def open_regular(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` for a working file: never through a symbolic link, never blocking on a FIFO,
    and only a regular file (else NotRegularFile). The descriptor is blocking again on return."""
    fd = os.open(path, flags | _NOFOLLOW | _CLOEXEC | _NONBLOCK, mode)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file", str(path))
        if _NONBLOCK:
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def is_link_error(exc: OSError) -> bool:
    """True for the error of opening a working file through a link (O_NOFOLLOW) or at a special file."""
    return isinstance(exc, NotRegularFile) or exc.errno in (errno.ELOOP, errno.ENXIO)
