"""Small records that let reruns skip work: what was verified, and how to resume a .part.

- ``<folder>/.omz_verified.json`` (one per model folder): per file its size, mtime_ns, inode,
  device and hash when it was verified, so a rerun trusts a file whose stat still matches
  instead of re-hashing 200 MB; and per model whether postprocessing ran.
- ``<file>.part.json`` beside ``<file>.part``: the URL, the validator (ETag or Last-Modified)
  and the expected hash, so the next attempt or run can continue with Range + If-Range.

Both are only shortcuts: a missing or stale record means "hash it again", never "trust it".
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Optional

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


def _lock(folder: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(str(folder), threading.Lock())


def stat_fields(path: Path) -> Optional[dict]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino, "device": st.st_dev}


def _read_json(path: Path) -> dict:
    from omz_tools.download.durable import open_regular
    try:
        # Never through a link: a link at a record's name reads as no record (and is replaced).
        with open(open_regular(path, os.O_RDONLY), encoding="utf-8") as stream:
            data = json.load(stream)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # absent or damaged: every file will simply be hashed again


def _write_json(path: Path, data: dict) -> None:
    # A unique hidden temporary name (pid, thread, random), created exclusively (never through a
    # link), then one atomic rename, which replaces whatever is at the name (a link itself, not
    # its target): readers see the old or the new record, never half of one, and no two writers
    # share a temporary file.
    from omz_tools.download.durable import open_regular
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.{os.urandom(4).hex()}.tmp")
    try:
        with open(open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w", encoding="utf-8") as stream:
            json.dump(data, stream, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FolderRecord:
    """The record of one model folder. Every change re-reads the file under a lock (a thread
    lock, then a file lock on ``.omz_verified.json.lock``, removed again when released) and
    writes it atomically, so parallel jobs and processes writing to one folder do not lose each
    other's entries."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / RECORD_NAME

    def load(self) -> dict:
        data = _read_json(self.path)
        if data.get("format") != FORMAT:
            data = {"format": FORMAT}
        data.setdefault("files", {})
        data.setdefault("models", {})
        return data

    def file(self, name: str) -> Optional[dict]:
        entry = self.load()["files"].get(name)
        return entry if isinstance(entry, dict) else None

    def model(self, name: str) -> dict:
        entry = self.load()["models"].get(name)
        return entry if isinstance(entry, dict) else {}

    def _change(self, section: str, key: str, value: Optional[dict]) -> None:
        from omz_tools.download.locks import LockTimeout, PathLock

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
                    _write_json(self.path, data)
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


def record_holds(entry: Optional[dict], path: Path) -> bool:
    """True when the file at path is still the one the record entry describes (same stat)."""
    if not entry:
        return False
    fields = stat_fields(path)
    return fields is not None and all(entry.get(k) == v for k, v in fields.items())


# -- resumable .part files -------------------------------------------------------------------------

def part_path(target: Path) -> Path:
    return target.with_name(target.name + PART_SUFFIX)


def part_info_path(target: Path) -> Path:
    return target.with_name(target.name + PART_INFO_SUFFIX)


def read_part_info(target: Path) -> dict:
    return _read_json(part_info_path(target))


def write_part_info(target: Path, *, url: str, validator: Optional[str], algorithm: str, digest: str,
                    size: int) -> None:
    _write_json(part_info_path(target), {"url": url, "validator": validator, "algorithm": algorithm,
                                         "hash": digest, "size": size})


def remove_part(target: Path) -> None:
    for path in (part_path(target), part_info_path(target)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def state_paths(target: Path) -> list:
    """The names where the tool keeps its own state for the file at ``target``: its .part and
    .part.json, its lock, and its folder's record and the record's lock."""
    from omz_tools.download.locks import lock_path_for
    target = Path(target)
    record = target.parent / RECORD_NAME
    return [part_path(target), part_info_path(target), lock_path_for(target), record,
            record.with_name(RECORD_NAME + ".lock")]


def clear_state_links(target: Path) -> list:
    """Remove links and special files (FIFOs, devices) found at :func:`state_paths`, without
    following them; one sentence per removal, for the caller to say. A regular file is kept."""
    from omz_tools.download.durable import remove_foreign
    return [note for note in map(remove_foreign, state_paths(target)) if note]
