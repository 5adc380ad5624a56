"""Cross-process locks on paths of the output folder, with no lock file left behind.

:class:`PathLock` is an exclusive ``flock(2)`` lock on a hidden lock file (e.g.
``.<name>.lock`` beside a model file, ``.omz_verified.json.lock`` beside the record). Processes
sharing an output folder take it around everything they do to one file (is it present and
verified? resume, transfer, rename, record), so each file is fetched once and no two processes
write one ``.part`` or one record at the same time. Threads of one process exclude each other
too: every acquisition opens its own descriptor, and flock locks belong to open file
descriptions.

The lock file is opened without following a symbolic link; a link (or FIFO) planted at its
name is removed and listed in ``PathLock.notes``, never followed.

The holder deletes the lock file when it lets go, so no lock file stays at a path in the model's
folder. That is safe because a process that obtains the lock checks that the path still names
the file it locked; if the holder removed it meanwhile, it starts over on the new file. The
kernel drops the lock of a process that dies, even on SIGKILL; its (hidden) lock file is then
taken over and removed by the next run.

Only ``fcntl`` (built in) is imported: fetching a file without a cache pays no extra imports.
Where ``fcntl`` is missing (Windows), ``filelock`` is used and the lock file is kept.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Optional

from omz_tools.errors import OmzError

DEFAULT_TIMEOUT = 3600.0  # long enough for another process's slow 200 MB transfer

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class LockTimeout(OmzError):
    """Another live process held the lock for longer than the timeout."""


def lock_path_for(target: Path) -> Path:
    """The hidden lock file that guards the file at ``target`` (and its ``.part``)."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


class PathLock:
    """``with PathLock(path, cancel=event):`` holds the lock; raises LockTimeout after ``timeout``
    seconds, or the ``cancelled()`` exception as soon as ``cancel`` is set while waiting."""

    def __init__(self, path: Path, *, timeout: float = DEFAULT_TIMEOUT, cancel=None,
                 cancelled: Optional[type] = None):
        self.path = str(path)
        self.timeout = timeout
        self.cancel = cancel
        self.cancelled = cancelled
        self._fd: Optional[int] = None
        self._fallback = None
        # What was found and removed at the lock's name (a link, a FIFO), for the caller to say.
        self.notes: list = []

    def acquire(self) -> "PathLock":
        if fcntl is None:  # pragma: no cover - Windows
            import filelock
            self._fallback = filelock.FileLock(self.path, timeout=self.timeout)
            try:
                self._fallback.acquire()
            except filelock.Timeout:
                raise LockTimeout(self._timeout_message()) from None
            return self
        from omz_tools.localstate import is_link_error, open_regular, remove_foreign

        deadline = time.monotonic() + self.timeout
        pause = 0.005
        removed = 0
        while True:
            try:
                fd = open_regular(Path(self.path), os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                if is_link_error(exc) and removed < 3:
                    # A link or FIFO planted at the lock's name: removed, never followed.
                    note = remove_foreign(Path(self.path))
                    if note:
                        self.notes.append(note)
                    removed += 1
                    continue
                if is_link_error(exc):
                    raise
                return self  # a read-only folder: nobody writes there, so go on unlocked
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return self  # this filesystem cannot lock: go on unlocked, as before locks
                if time.monotonic() >= deadline:
                    raise LockTimeout(self._timeout_message()) from None
                if self.cancel is not None:
                    if self.cancel.wait(pause):
                        raise (self.cancelled or InterruptedError)()
                else:
                    time.sleep(pause)
                pause = min(pause * 2, 0.1)
                continue
            # Locked. Is it still the file at the path? Its holder may have removed it just
            # before letting go; then someone may be holding a newer one: start over.
            try:
                current = os.lstat(self.path)
            except FileNotFoundError:
                current = None
            held = os.fstat(fd)
            if current is not None and (current.st_ino, current.st_dev) == (held.st_ino, held.st_dev):
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        if self._fallback is not None:  # pragma: no cover - Windows
            self._fallback.release()
            self._fallback = None
            return
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.unlink(self.path)  # while still holding it: see the module's docstring
        except OSError:
            pass
        os.close(fd)

    def _timeout_message(self) -> str:
        return (f"Waited {self.timeout:g} s for the lock {self.path} and another process still holds "
                "it. A process that was killed does not hold it (the kernel releases its lock), so a "
                "live omz-downloader is still working on that file or is stuck; wait for it or stop "
                "it, then run again.")

    def __enter__(self) -> "PathLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
