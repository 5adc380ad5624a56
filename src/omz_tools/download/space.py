"""Disk-space pre-check: fail before downloading rather than dying half-way with ENOSPC.

The plan's needs come from the registry's sizes, minus what is already present (verified at its
final path) or cached. Where bytes land depends on the folders' filesystems:

- a file to download lands once in the output folder (``.part``, then renamed: no second copy);
- storing it in the cache links it when the cache is on the same filesystem (no bytes), else
  copies it (its size again, on the cache's filesystem);
- a cache hit is linked into the output folder on the same filesystem (no bytes), else copied.

Output and cache on one filesystem therefore share one free-space figure and their needs add up.
Archives unpacked by postprocessing need more than their size; that extra is not known before
the archive is in, so ``postprocess.unpack_archive`` checks it (the members' declared total
against the free space) before extracting anything.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from omz_tools.errors import OmzError
from omz_tools.wording import human_size

FreeBytes = Callable[[Path], int]


@dataclass(frozen=True)
class PlannedFile:
    """One file of the plan: its size, and whether it is already at its final path / in the cache."""

    size: int
    present: bool = False
    cached: bool = False


class NotEnoughSpace(OmzError):
    """The plan needs more space than is free; the message is one paragraph for the user."""


class FolderNotWritable(OmzError):
    """Files must be written to a folder where nothing can be created; one paragraph for the user."""


def check_writable(folder: Path) -> None:
    """Raise FolderNotWritable unless files can be created in ``folder`` (or, while it does not
    exist yet, in its nearest existing parent, where it will be created): a read-only mount or
    missing permissions, found before any download rather than after the first one."""
    target = existing_ancestor(folder)
    if os.access(target, os.W_OK | os.X_OK):
        return
    why = "it is on a read-only filesystem" if _read_only_mount(target) else "this user may not write there"
    detail = "" if target == Path(folder).absolute() else f" (it does not exist yet, and it would be created in {target})"
    raise FolderNotWritable(
        f"Cannot write the downloads to {folder}{detail}: {why}. Nothing was downloaded. Choose a "
        "writable folder with --output_dir, or fix its permissions or mount.")


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & getattr(os, "ST_RDONLY", 1))
    except OSError:
        return False


def existing_ancestor(path: Path) -> Path:
    """The folder itself or its nearest existing parent (folders are created only later)."""
    path = Path(path).absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user can still write on path's filesystem (statvfs f_bavail)."""
    return shutil.disk_usage(existing_ancestor(path)).free


def needs(files: Iterable[PlannedFile], output_dir: Path, cache_dir: Optional[Path]) -> dict:
    """{device: [bytes needed, [folders on it]]} for the plan."""
    out_dev = os.stat(existing_ancestor(output_dir)).st_dev
    per_device: dict = {out_dev: [0, [Path(output_dir)]]}
    cache_dev = None
    if cache_dir is not None:
        cache_dev = os.stat(existing_ancestor(cache_dir)).st_dev
        per_device.setdefault(cache_dev, [0, []])[1].append(Path(cache_dir))
    same = cache_dev == out_dev
    for item in files:
        if not item.present:
            if not (item.cached and same):  # a hit on another filesystem is copied, not linked
                per_device[out_dev][0] += item.size
        if cache_dev is not None and not item.cached and not same:
            per_device[cache_dev][0] += item.size  # stored by copy across filesystems
    return per_device


def check_space(files: Iterable[PlannedFile], output_dir: Path, cache_dir: Optional[Path] = None,
                *, free: Optional[FreeBytes] = None) -> int:
    """Raise NotEnoughSpace when the plan does not fit; return the total bytes it needs.

    ``free`` replaces the free-space probe (tests give a fake figure).
    """
    probe = free or free_bytes
    total = 0
    for needed, folders in needs(list(files), output_dir, cache_dir).values():
        total += needed
        if needed == 0:
            continue
        available = probe(folders[0])
        if needed > available:
            where = " and ".join(str(folder) for folder in folders)
            shared = " (one filesystem, so their needs add up)" if len(folders) > 1 else ""
            raise NotEnoughSpace(
                f"Not enough disk space to download: {where}{shared} needs {human_size(needed)} "
                f"({needed} bytes) for the files not yet present or cached, but only {human_size(available)} "
                f"({available} bytes) is free there. Nothing was downloaded. Free some space, choose "
                "another --output_dir or --cache_dir, or download fewer models (--name).")
    return total
