"""Step 6 of a conversion, install: each staged ``<PRECISION>`` folder, with its record, renamed
into place (complete or absent, never half of one); and tidying up after a failure."""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Optional

from omz_tools.errors import OmzError
from omz_tools.localstate import fsync_dir, fsync_file


class LinkedTargetError(OmzError):
    """A precision folder is a symbolic link to something that is not a folder (a file, a FIFO, a
    device...): installing through it would delete what the link names, outside the output folder."""


_KINDS = ((stat.S_ISREG, "a regular file"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a folder")


def _refuse(link: Path, what: str) -> LinkedTargetError:
    try:
        points = os.readlink(link)
    except OSError:
        points = "?"
    real = os.path.realpath(link)
    through = f" (through links: {real})" if real != points else ""
    return LinkedTargetError(
        f"{link} is a symbolic link to {points}{through}, {what}, not a folder: an IR is installed where a "
        f"precision folder's link points only when that is a folder (or nothing yet), and what a link names is "
        f"never deleted or replaced. Nothing was changed there and this precision was not installed; remove "
        f"the link or point it to a folder.")


def check_target(target: Path) -> None:
    """Raise :class:`LinkedTargetError` when ``target`` is a symbolic link to an existing thing that is
    not a folder (a link to a folder, or a dangling one, is the user's and is honoured)."""
    if not os.path.islink(target):
        return
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(target, "a loop of links") from None
        return  # dangling (or unreadable): install() makes the folder where it points, or says why not
    if not stat.S_ISDIR(mode):
        raise _refuse(target, _kind(mode))


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` (excluded) while they are empty."""
    folder, root = Path(folder).absolute(), Path(root).absolute()
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _figures_dict(figures) -> Optional[dict]:
    if figures is None:
        return None
    return {"inputs": figures.inputs, "outputs": figures.outputs, "params": figures.params,
            "gflops": round(figures.gflops, 6)}


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (the log is empty)"


def _discard(path: Path) -> None:
    """Remove what is at ``path``: a folder with its files, or a file or link (not what it names)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def _through_link(staged: Path, link: Path) -> tuple:
    """(staged, target, scratch) for a precision folder that is a symbolic link (the user's: say,
    FP32/ kept on another disk, as omz_converter and Model Optimizer wrote through it): the IR goes
    to the folder the link names, and the link stays. The staged folder first moves beside that
    folder (a copy when it is on another file system), so the final rename stays atomic."""
    real = Path(os.path.realpath(link))
    real.parent.mkdir(parents=True, exist_ok=True)
    beside = real.parent / f".{real.name}.new-{os.getpid()}"
    _discard(beside)
    shutil.move(str(staged), str(beside))
    return beside, real, real.parent


def install(staged: Path, target: Path, scratch: Path) -> None:
    """Move the ``staged`` IR folder to ``target``: the old folder goes aside first, so ``target``
    is at every moment either the old complete IR, absent, or the new complete IR. The staged
    files are fsynced first, so that after a crash the record never vouches for a cut-short IR.
    ``scratch``: where the old folder waits (hidden, unique to this process) until it is removed.
    A ``target`` that is a symbolic link is kept, and the IR installed where it points; one that
    points to something other than a folder is refused (:class:`LinkedTargetError`), untouched."""
    check_target(target)
    link = target
    linked = target.is_symlink()
    if linked:
        staged, target, scratch = _through_link(staged, target)
    try:
        for entry in staged.iterdir():
            if entry.is_file():
                fsync_file(entry)
        fsync_dir(staged)
        target.parent.mkdir(parents=True, exist_ok=True)
        old = scratch / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            _discard(old)
            os.replace(target, old)
            if linked and not stat.S_ISDIR(os.lstat(old).st_mode):  # replaced since check_target: put it back
                os.replace(old, target)
                raise _refuse(link, _kind(os.lstat(target).st_mode))
        os.replace(staged, target)
        fsync_dir(target.parent)
        _discard(old)
    finally:
        if linked:  # the staged copy beside the link's folder, when a step above failed
            shutil.rmtree(staged, ignore_errors=True)
