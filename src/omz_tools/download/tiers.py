"""The Fetcher's ``store`` when S3 cache tiers are given: the folder cache (if any) in front, then
the buckets (``s3cache.S3Tier``), nearest first.

The folder cache keeps its role (per-hash lock, lookup, store). A bucket is a *source*: its
object is tried before the mirrors and the origin (``fetch.Fetcher._fetch_sources`` asks
:meth:`TieredStore.s3_holds` first, so a miss costs one HEAD and no message), read and verified as
any body is, and a failure falls through to the next source. After a file is verified at its
final path, :meth:`put` stores it in the folder cache and uploads it to every bucket that did not
serve it and does not hold it yet; an object that failed to verify in this run is replaced only
with ``--cache_repair``.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional


class TieredStore:
    def __init__(self, folder, tiers: list, reporter, repair: bool = False):
        self.folder = folder  # a cachestore.CacheStore or None
        self.tiers = {tier.where.url: tier for tier in tiers}
        self.reporter = reporter
        self.repair = repair
        self._failed: set = set()  # (tier URL, key) whose object did not verify or could not be read
        self._opened: set = set()  # (tier URL, key) whose object answered a GET with a body
        self._lock = threading.Lock()

    @property
    def cache(self):
        return None if self.folder is None else self.folder.cache

    @property
    def label(self) -> str:
        return self.folder.label if self.folder is not None else "cache"

    def where(self) -> str:
        """The caches, for messages."""
        places = ([str(self.folder.cache.root)] if self.folder is not None else []) + list(self.tiers)
        return ", ".join(places)

    @contextlib.contextmanager
    def hold(self, task) -> Iterator[None]:
        if self.folder is None:
            yield
            return
        with self.folder.hold(task):
            yield

    def lookup(self, task) -> bool:
        return self.folder is not None and self.folder.lookup(task)

    # -- the buckets as sources -------------------------------------------------------------------

    def _say_down(self, tier, task) -> None:
        with self._lock:
            if tier.down in tier.said:
                return
            tier.said.add(tier.down)
        self.reporter.note(task.model_name, task.name, tier.down)

    def s3_holds(self, task, source) -> bool:
        """Whether to try this bucket's object: False (silently) on a miss; on an unusable bucket,
        False after saying why once for the run."""
        tier = self.tiers[source.tier]
        checksum = task.model_file.checksum
        found = tier.holds(checksum.algorithm, checksum.value, task.model_file.size)
        if found is None:
            self._say_down(tier, task)
        return bool(found)

    def open_s3(self, source, offset: int, validator: Optional[str]):
        opened = self.tiers[source.tier].open(source, offset, validator)
        with self._lock:
            self._opened.add((source.tier, source.key))
        return opened

    def s3_failed(self, source) -> None:
        self._failed.add((source.tier, source.key))

    # -- after a file was verified ------------------------------------------------------------------

    def put(self, task, served_by: str = "") -> None:
        if self.folder is not None:
            self.folder.put(task)
        checksum = task.model_file.checksum
        for url, tier in self.tiers.items():
            if tier.label == served_by or tier.down is not None:
                continue
            key = tier.where.object_key(checksum.algorithm, checksum.value)
            # Only an object whose body was read can have failed to verify; one that was never
            # opened (throttled, 5xx, gone) is not damaged: publish() HEADs it and refills a gone one.
            damaged = (url, key) in self._failed and (url, key) in self._opened
            if damaged and not self.repair:
                self.reporter.note(task.model_name, task.name,
                                   f"left the object s3://{tier.where.bucket}/{key} as it is, though it "
                                   "did not verify; run with --cache_repair to replace it with the verified file")
                continue
            problem = tier.publish(task.target, checksum.algorithm, checksum.value, replace=damaged)
            if problem:
                self.reporter.note(task.model_name, task.name, problem)
            elif tier.down is not None:
                self._say_down(tier, task)
