"""A content-addressed cache of model files that many processes can share.

Layout (``DIR`` is ``--cache_dir``)::

    DIR/1/<aa>/<rest>            sha384 entries, exactly as openvino-dev's omz_downloader
                                 writes and reads them, so existing OMZ caches keep working
    DIR/1/staging/               temporary files being written (omz_downloader uses it too)
    DIR/sha256/<aa>/<rest>       sha256 entries, in their own area (omz_downloader ignores it)
    DIR/records/<algo>/<aa>/<rest>.json   what each entry looked like when last verified
    DIR/locks/<algo>-<hex>.lock  one lock file per content hash (removed when let go)

Why it is safe with many processes (CI runners, ``-j`` threads) on one cache:

- An entry only ever appears by ``os.replace`` of a fully written, verified temporary file with
  a unique name, so a reader sees no entry or a whole one, whatever the locks do.
- :meth:`ContentCache.locked` takes a per-hash ``locks.PathLock`` (``flock(2)``), so that processes
  wanting the same file wait for the one fetching it instead of all downloading it. The kernel
  drops a ``flock`` when its holder dies, even on SIGKILL, so a killed run never leaves a lock
  that blocks the next one; a timeout with a clear message is only a backstop for a *live*
  process that hangs.

Why entries are trusted without re-hashing: each entry has a record (size, mtime_ns, inode,
device, hash) written after it was verified. While the entry's stat still matches, a hit costs
one ``stat``; when it does not (or on ``full_check``) the entry is hashed again, and a damaged
entry is removed and reported so the caller fetches the file again.

Hits are materialised by reflink (a copy-on-write clone), else a hardlink, else a copy. A
hardlinked output file *is* the cache entry, so writing into it in place would damage the cache
too. We accept that because nothing of ours writes in place: downloads go to a ``.part`` file and
postprocessing (``regex_replace``) writes a new file and renames it over the old name, which
replaces the link rather than changing the shared inode. If something else does write in place,
the changed mtime breaks the entry's record and the next hit re-hashes, removes and re-fetches.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from omz_tools.errors import OmzError
from omz_tools.localstate import (  # noqa: F401 - reflink: the cache's linking, for tests
    describe_entry, fingerprint_holds, hash_file, link_or_copy, place, read_json, reflink,
    stat_fingerprint, temp_name, unlink_quietly, write_json,
)

OMZ_FORMAT_DIR = "1"  # omz_downloader's DirCache._FORMAT
AREAS = {"sha384": OMZ_FORMAT_DIR, "sha256": "sha256"}
DEFAULT_LOCK_TIMEOUT = 3600.0  # long enough for a slow 200 MB transfer by another process


class CacheError(OmzError):
    """A cache problem; the message is one paragraph meant for the user."""


class CacheLockTimeout(CacheError):
    """Another live process held an entry's lock for longer than the timeout."""


@dataclass(frozen=True)
class Lookup:
    """The outcome of a lookup: ``entry`` is a verified entry or None; ``damaged`` explains an
    entry that was found bad and removed (the caller should fetch the file again and say so)."""

    entry: Optional[Path]
    damaged: Optional[str] = None
    rehashed: bool = False  # True when the entry was hashed (no record, stale record, full check)


@dataclass(frozen=True)
class Materialised:
    path: Path
    method: str  # "reflink", "hardlink", "copy" or "present" (already that very file)


class ContentCache:
    """One cache folder. Thread-safe and process-safe; holds no open files between calls."""

    def __init__(self, root: Path, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT):
        self.root = Path(root).absolute()  # messages and served_by name it unambiguously
        self.lock_timeout = lock_timeout
        try:
            for sub in (self.root / OMZ_FORMAT_DIR / "staging", self.root / "locks"):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"Cannot use {self.root} as the download cache: creating its folders failed "
                f"({exc.strerror or exc}). Choose a writable folder with --cache_dir, or fix its "
                "permissions.") from None

    @property
    def staging(self) -> Path:
        return self.root / OMZ_FORMAT_DIR / "staging"

    @staticmethod
    def _check(algorithm: str, digest: str) -> str:
        if algorithm not in AREAS:
            raise ValueError(f"unsupported hash algorithm {algorithm!r}")
        return digest.lower()

    def entry_path(self, algorithm: str, digest: str) -> Path:
        digest = self._check(algorithm, digest)
        return self.root / AREAS[algorithm] / digest[:2] / digest[2:]

    def record_path(self, algorithm: str, digest: str) -> Path:
        digest = self._check(algorithm, digest)
        return self.root / "records" / algorithm / digest[:2] / f"{digest[2:]}.json"

    def lock_path(self, algorithm: str, digest: str) -> Path:
        return self.root / "locks" / f"{algorithm}-{self._check(algorithm, digest)}.lock"

    # -- locking ----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, algorithm: str, digest: str, *, timeout: Optional[float] = None) -> Iterator[list]:
        """Hold the per-hash lock: check the cache, fetch on a miss and store, all inside it.

        Threads of one process exclude each other too: every acquisition opens its own
        descriptor, and flock(2) locks belong to open file descriptions. The lock file is never
        opened through a link; what was found and removed at its name is yielded (sentences to say).
        """
        from omz_tools.locks import LockTimeout, PathLock

        path = self.lock_path(algorithm, digest)
        wait = self.lock_timeout if timeout is None else timeout
        lock = PathLock(path, timeout=wait)
        try:
            lock.acquire()
        except LockTimeout:
            raise CacheLockTimeout(
                f"Waited {wait:g} s for the cache lock {path} ({algorithm} {digest[:16]}...) and another "
                "process still holds it, so that file was not fetched. A process that was killed does "
                "not hold it (the kernel releases its lock), so a live omz-downloader is still fetching "
                "it or is stuck; wait for it or stop it, then run again.") from None
        try:
            yield lock.notes
        finally:
            lock.release()

    # -- records ----------------------------------------------------------------------------------

    def _read_record(self, algorithm: str, digest: str) -> Optional[dict]:
        return read_json(self.record_path(algorithm, digest)) or None

    def _write_record(self, algorithm: str, digest: str, entry: Path) -> None:
        fields = stat_fingerprint(entry)
        if fields is None:
            return
        path = self.record_path(algorithm, digest)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, {**fields, "algorithm": algorithm, "hash": digest}, sync=False)  # a shortcut
        except OSError:
            pass  # a missing record only costs a re-hash on the next hit

    def _record_holds(self, algorithm: str, digest: str, entry: Path, size: int) -> bool:
        record = self._read_record(algorithm, digest)
        if not record or record.get("size") != size:
            return False
        return (record.get("algorithm") == algorithm and record.get("hash") == digest
                and fingerprint_holds(record, entry))

    # -- lookup / store / materialise ---------------------------------------------------------------

    def lookup(self, algorithm: str, digest: str, size: int, *, full_check: bool = False) -> Lookup:
        """A verified entry for this hash, or why there is none (a damaged entry is removed)."""
        digest = self._check(algorithm, digest)
        entry = self.entry_path(algorithm, digest)
        what = describe_entry(entry)
        if what is not None:  # a link (or FIFO) is never an entry: linking it would plant it
            self.remove(algorithm, digest)
            return Lookup(None, damaged=(
                f"The cache entry {entry} was {what}, not a file the cache wrote; removed it without "
                "following it, and the file is fetched again."))
        try:
            actual_size = os.stat(entry).st_size
        except FileNotFoundError:
            return Lookup(None)
        if not full_check and self._record_holds(algorithm, digest, entry, size):
            return Lookup(entry)
        if actual_size == size:
            actual, actual_size = hash_file(entry, algorithm)
        else:
            actual = None  # no need to hash: the size already says it is not this file
        if actual == digest and actual_size == size:
            self._write_record(algorithm, digest, entry)
            return Lookup(entry, rehashed=True)
        self.remove(algorithm, digest)
        found = f"{actual_size} bytes" + (f" with {algorithm} {actual}" if actual else "")
        return Lookup(None, damaged=(
            f"The cache entry {entry} was damaged: expected {size} bytes with {algorithm} {digest}, "
            f"found {found}. It was removed and the file is fetched again; if this recurs, check the "
            "disk and whether something writes into downloaded model files in place."), rehashed=True)

    def remove(self, algorithm: str, digest: str) -> None:
        unlink_quietly(self.entry_path(algorithm, digest))
        unlink_quietly(self.record_path(algorithm, digest))

    def store(self, src: Path, algorithm: str, digest: str, size: int, *, verified: bool = False) -> Path:
        """Put a copy of src into the cache (linked when possible) and return the entry.

        ``verified=True`` says the caller has just checked src against (digest, size) (the
        downloader verifies while streaming); otherwise src is hashed first. A src that does not
        match raises CacheError and the cache is left unchanged.
        """
        digest = self._check(algorithm, digest)
        if not verified:
            actual, actual_size = hash_file(src, algorithm)
            if actual != digest or actual_size != size:
                raise CacheError(
                    f"Refused to cache {src}: expected {size} bytes with {algorithm} {digest}, found "
                    f"{actual_size} bytes with {algorithm} {actual}. The cache was left unchanged; "
                    "fetch the file again.")
        entry = self.entry_path(algorithm, digest)
        with contextlib.suppress(OSError):
            if os.path.samefile(src, entry):  # src is a link to the entry already
                self._write_record(algorithm, digest, entry)
                return entry
        entry.parent.mkdir(parents=True, exist_ok=True)
        # A unique temporary name in the cache's own staging folder (same filesystem), then one
        # atomic rename: a concurrent reader sees the old entry, the new one, or none.
        tmp = self.staging / temp_name(entry.name)
        try:
            link_or_copy(src, tmp)
            if os.stat(tmp).st_size != size:  # src changed under us: never cache a wrong size
                raise CacheError(f"Refused to cache {src}: it changed while being cached "
                                 f"(expected {size} bytes). The cache was left unchanged.")
            os.replace(tmp, entry)
            tmp = None
        except OSError as exc:
            raise CacheError(
                f"Could not store {src.name} in the cache {self.root}: {exc.strerror or exc}. The "
                "downloaded file itself is fine; check the cache folder's free space and permissions.") from None
        finally:
            if tmp is not None:
                unlink_quietly(tmp)
        self._write_record(algorithm, digest, entry)
        return entry

    def materialise(self, entry: Path, dest: Path) -> Materialised:
        """Put a verified entry at dest: reflink, else hardlink, else copy; atomically."""
        return Materialised(dest, place(entry, dest))

    def fetch_to(self, algorithm: str, digest: str, size: int, dest: Path, *,
                 full_check: bool = False) -> tuple[Optional[Materialised], Optional[str]]:
        """Convenience for callers holding the lock: materialise a hit at dest.

        Returns (Materialised or None on a miss, message about a damaged entry or None).
        """
        found = self.lookup(algorithm, digest, size, full_check=full_check)
        if found.entry is None:
            return None, found.damaged
        try:
            return self.materialise(found.entry, dest), found.damaged
        except FileNotFoundError:
            return None, None  # removed by someone else between lookup and link: a miss
