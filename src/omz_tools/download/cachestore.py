"""The Fetcher's ``store`` hook backed by a :class:`ContentCache` (``--cache_dir``).

The Fetcher calls, for each file not already verified at its final path::

    with store.hold(task):          # per-hash lock: one process/thread fetches, the others wait
        if store.lookup(task):      # a verified entry, linked or copied to task.target
            ...done, served by the cache
        ...fetch from the sources into task.target (verified)...
        store.put(task)             # the verified file enters the cache (linked when possible)

so N processes sharing a cache (and even an output folder) transfer each file once. Cache
problems never fail a model: a damaged entry is reported and fetched again, and a file that
cannot be stored is reported and kept.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from omz_tools.download import records
from omz_tools.download.cache import CacheError, ContentCache


class CacheStore:
    def __init__(self, cache: ContentCache, reporter, check_all: bool = False):
        self.cache = cache
        self.reporter = reporter
        self.check_all = check_all  # --check_all also re-hashes cache entries

    @property
    def label(self) -> str:
        return f"cache {self.cache.root}"

    @contextlib.contextmanager
    def hold(self, task) -> Iterator[None]:
        checksum = task.model_file.checksum
        with self.cache.locked(checksum.algorithm, checksum.value) as notes:
            for note in notes or ():  # a link planted at the lock's name, removed
                self.reporter.note(task.model_name, task.name, note)
            yield

    def lookup(self, task) -> bool:
        """Put the cached file at task.target if the cache holds a verified copy."""
        checksum, size = task.model_file.checksum, task.model_file.size
        placed, damaged = self.cache.fetch_to(checksum.algorithm, checksum.value, size, task.target,
                                              full_check=self.check_all)
        if damaged:
            self.reporter.note(task.model_name, task.name, damaged)
        if placed is None:
            return False
        records.remove_part(task.target)  # a .part left by an interrupted run is not needed now
        records.record_file(task.target, checksum.algorithm, checksum.value)
        return True

    def put(self, task, served_by: str = "") -> None:
        checksum, size = task.model_file.checksum, task.model_file.size
        try:
            self.cache.store(task.target, checksum.algorithm, checksum.value, size, verified=True)
        except CacheError as exc:
            self.reporter.note(task.model_name, task.name, str(exc))
