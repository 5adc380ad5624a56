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


def install(staged: Path, target: Path, scratch: Path) -> None:
    """Move the ``staged`` IR folder to ``target``: the old folder goes aside first, so ``target``
    is at every moment either the old complete IR, absent, or the new complete IR. The staged
    files are fsynced first, so that after a crash the record never vouches for a cut-short IR.
    ``scratch``: where the old folder waits (hidden, unique to this process) until it is removed."""
    for entry in staged.iterdir():
        if entry.is_file():
            fsync_file(entry)
    fsync_dir(staged)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = scratch / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staged, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
