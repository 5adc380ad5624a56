"""Step 6 of a conversion, install: each staged ``<PRECISION>`` folder, with its record, renamed
into place (complete or absent, never half of one); and tidying up after a failure."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from omz_tools.localstate import fsync_dir, fsync_file


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
    A ``target`` that is a symbolic link is kept, and the IR installed where it points."""
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
        os.replace(staged, target)
        fsync_dir(target.parent)
        _discard(old)
    finally:
        if linked:  # the staged copy beside the link's folder, when a step above failed
            shutil.rmtree(staged, ignore_errors=True)
