"""Issue 4's run options resolved once for the CLI and the Python API: the cache, the mirrors,
offline mode, and the disk-space pre-check of a plan."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional

from omz_tools.download.sources import candidates, mirrors_from, offline_from
from omz_tools.download.space import PlannedFile, check_space, check_writable


@dataclass
class RunOptions:
    cache: Optional["ContentCache"] = None  # noqa: F821 - cache.py is imported only with a cache
    mirrors: list = field(default_factory=list)
    offline: bool = False

    @classmethod
    def resolve(cls, cache_dir=None, mirrors: Iterable[str] = (), offline: bool = False,
                env: Optional[Mapping[str, str]] = None) -> "RunOptions":
        """Raises SourceConfigError (a usage error) or CacheError (an unusable cache folder)."""
        env = os.environ if env is None else env
        cache = None
        if cache_dir is not None:  # cache.py (hashlib, json, shutil, uuid...) only when used
            from omz_tools.download.cache import ContentCache
            cache = ContentCache(Path(cache_dir))
        return cls(cache=cache,
                   mirrors=mirrors_from(list(mirrors or ()), env), offline=offline_from(offline, env))

    def sources_for(self) -> Callable:
        """plan()'s hook: mirrors in order, then the registry's source; none at all offline."""
        def build(model, model_file) -> list:
            return candidates(model.subdirectory, model_file, self.mirrors, offline=self.offline)
        return build

    def store(self, reporter, check_all: bool = False):
        if self.cache is None:
            return None
        from omz_tools.download.cachestore import CacheStore
        return CacheStore(self.cache, reporter, check_all)

    def session_factory(self) -> Optional[Callable]:
        """Offline: a factory that refuses, so no code path can open a connection."""
        if not self.offline:
            return None

        def refuse():
            raise RuntimeError("offline mode: no network connection may be opened")
        return refuse

    def check_space(self, jobs_plan: list, output_dir: Path, free=None) -> int:
        """NotEnoughSpace if the files not yet present or cached do not fit (see space.py)."""
        from omz_tools.download import records

        planned = []
        for job in jobs_plan:
            for task in job.tasks:
                size = task.model_file.size
                present = False
                if os.path.isfile(task.target):  # cheap: the fetcher verifies it anyway
                    entry = records.FolderRecord(task.target.parent).file(task.target.name)
                    present = records.record_holds(entry, task.target) or \
                        os.path.getsize(task.target) == size
                cached = False
                if self.cache is not None:
                    checksum = task.model_file.checksum
                    try:
                        entry_path = self.cache.entry_path(checksum.algorithm, checksum.value)
                        cached = entry_path.stat().st_size == size
                    except OSError:
                        pass
                if self.offline and not (present or cached):
                    continue  # offline, it will not be fetched: it fails, it takes no space
                planned.append(PlannedFile(size, present=present, cached=cached))
        if any(not item.present for item in planned):  # something will be written there
            check_writable(Path(output_dir))
        return check_space(planned, Path(output_dir), self.cache.root if self.cache else None, free=free)


def missing_offline(task, store) -> str:
    """Why a file cannot be had offline; one paragraph."""
    checksum = task.model_file.checksum
    where = (f"nor in the cache {store.cache.root}" if store is not None
             else "and no cache was given (--cache_dir)")
    return (f"{task.name}: not available offline (--offline or OMZ_OFFLINE=1): it is not at {task.target} "
            f"{where}; expected {task.model_file.size} bytes with {checksum.algorithm} {checksum.value}. "
            "Nothing was downloaded. Run once online (with --cache_dir to fill a cache), or put the "
            "file at that path.")
