"""Small records that let reruns skip work: what was verified, and how to resume a .part.

- ``<folder>/.omz_verified.json`` (one per model folder): per file its size, mtime_ns, inode,
  device and hash when it was verified, so a rerun trusts a file whose stat still matches
  instead of re-hashing 200 MB; and per model whether postprocessing ran.
- ``<file>.part.json`` beside ``<file>.part``: the URL, the validator (ETag or Last-Modified)
  and the expected hash, so the next attempt or run can continue with Range + If-Range.

Both are only shortcuts: a missing or stale record means "hash it again", never "trust it".
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional

from omz_tools.localstate import fingerprint_holds, read_json, remove_foreign, stat_fingerprint, write_json

RECORD_NAME = ".omz_verified.json"
PART_SUFFIX = ".part"
PART_INFO_SUFFIX = ".part.json"
FORMAT = 1
RECORD_LOCK_TIMEOUT = 60.0  # a record update takes milliseconds; a holder this slow is stuck

# States a file's record can be in.
VERIFIED = "verified"  # bytes as the registry describes them
POSTPROCESSED = "postprocessed"  # rewritten by regex_replace from a verified original
UNPACKED = "unpacked"  # an archive verified, unpacked and removed

_locks: dict = {}
_locks_guard = threading.Lock()
# Parsed records by path, with the stat fingerprint of the record file they were parsed from: a
# run asks for a file's entry once per file, and re-parsing the folder's whole record each time
# made a many-file folder quadratic. A record another process rewrote has a new fingerprint
# (every write is a rename of a new file) and is read again. Updates never use this copy: they
# re-read the file under the record's lock.
_parsed: dict = {}
_parsed_guard = threading.Lock()

stat_fields = stat_fingerprint  # the fingerprint recorded per file


def _lock(folder: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(folder), threading.Lock())


def _load_cached(path: Path) -> dict:
    key = str(path)
    fingerprint = stat_fingerprint(path)
    with _parsed_guard:
        cached = _parsed.get(key)
    if cached is not None and fingerprint is not None and cached[0] == fingerprint:
        return cached[1]
    data = read_json(path)
    if fingerprint is not None:
        with _parsed_guard:
            _parsed[key] = (fingerprint, data)
    return data


def _normal(data: dict) -> dict:
    if data.get("format") != FORMAT or not isinstance(data.get("files", {}), dict) \
            or not isinstance(data.get("models", {}), dict):
        return {"format": FORMAT, "files": {}, "models": {}}
    return {"format": FORMAT, "files": data.get("files", {}), "models": data.get("models", {})}


class FolderRecord:
    """The record of one model folder. Every change re-reads the file under a lock (a thread
    lock, then a file lock on ``.omz_verified.json.lock``, removed again when released) and
    writes it atomically, so parallel jobs and processes writing to one folder do not lose each
    other's entries."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / RECORD_NAME

    def load(self) -> dict:
        """The record as read from disk now (for a read-modify-write)."""
        return _normal(read_json(self.path))

    def _entry(self, section: str, name: str) -> Optional[dict]:
        """A copy of one entry, from this process's parsed copy while the record is unchanged."""
        entry = _normal(_load_cached(self.path))[section].get(name)
        return dict(entry) if isinstance(entry, dict) else None

    def file(self, name: str) -> Optional[dict]:
        return self._entry("files", name)

    def model(self, name: str) -> dict:
        return self._entry("models", name) or {}

    def _change(self, section: str, key: str, value: Optional[dict]) -> None:
        from omz_tools.locks import LockTimeout, PathLock

        with _lock(self.folder):
            try:
                with PathLock(self.path.with_name(RECORD_NAME + ".lock"), timeout=RECORD_LOCK_TIMEOUT):
                    data = self.load()
                    if value is None:
                        if key not in data[section]:
                            return
                        data[section].pop(key, None)
                    else:
                        data[section][key] = value
                    write_json(self.path, data, sync=False)  # a shortcut: see localstate.write_json
            except (OSError, LockTimeout):
                pass  # a read-only or full disk (or a stuck process) only costs a re-hash next time

    def set_file(self, name: str, value: Optional[dict]) -> None:
        self._change("files", name, value)

    def set_model(self, name: str, value: Optional[dict]) -> None:
        self._change("models", name, value)


def record_file(path: Path, algorithm: str, digest: str, state: str = VERIFIED, **extra) -> None:
    """Remember that ``path``, as it is now on disk, has this hash."""
    fields = stat_fields(path) if state != UNPACKED else {}
    if fields is None:
        return
    FolderRecord(path.parent).set_file(path.name, {**fields, "algorithm": algorithm, "hash": digest,
                                                   "state": state, **extra})


def forget_file(path: Path) -> None:
    FolderRecord(path.parent).set_file(path.name, None)


record_holds = fingerprint_holds  # the file at path is still the one the record entry describes


# -- resumable .part files -------------------------------------------------------------------------

def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def part_info_path(target: Path) -> Path:
    return target.with_name(target.name + PART_INFO_SUFFIX)


def read_part_info(target: Path) -> dict:
    return read_json(part_info_path(target))


def write_part_info(target: Path, *, url: str, validator: Optional[str], algorithm: str, digest: str,
                    size: int) -> None:
    write_json(part_info_path(target), {"url": url, "validator": validator, "algorithm": algorithm,
                                        "hash": digest, "size": size}, sync=False)


def remove_part(target: Path) -> None:
    for path in (part_path(target), part_info_path(target)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def state_paths(target: Path) -> list:
    """The names where the tool keeps its own state for the file at ``target``: its .part and
    .part.json, its lock, and its folder's record and the record's lock."""
    from omz_tools.locks import lock_path_for
    target = Path(target)
    record = target.parent / RECORD_NAME
    return [part_path(target), part_info_path(target), lock_path_for(target), record,
            record.with_name(RECORD_NAME + ".lock")]


def clear_state_links(target: Path) -> list:
    """Remove links and special files (FIFOs, devices) found at :func:`state_paths`, without
    following them; one sentence per removal, for the caller to say. A regular file is kept."""
    return [note for note in map(remove_foreign, state_paths(target)) if note]
