"""Size and hash, computed while the bytes stream in, and the messages that explain a mismatch."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path
from typing import Optional

from omz_tools.wording import human_size
from omz_tools.localstate import CHUNK_SIZE, hash_file, open_regular

QUEUE_CHUNKS = 4  # buffers per file: at most 4 MiB in flight between the socket and the disk
_flush = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync


def looks_like_html(head: bytes, content_type: str = "") -> bool:
    """True when a body that should be a model file is a web page (login, error, quota page...).

    Decided by the first bytes; a text/html Content-Type only tips the balance for a body that
    starts with a tag (servers label unknown files oddly, so the header alone proves nothing).
    """
    start = head[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
            start.startswith(b"<") and b"<html" in start):
        return True
    return ("text/html" in (content_type or "").lower() and start.startswith(b"<")
            and not start.startswith(b"<?xml"))


class StreamWriter:
    """Hashes and writes chunks on two threads of its own while the caller keeps receiving.

    The caller (the socket reader) takes a 1 MiB buffer from a small pool (``buffer``), fills it
    and hands it over (``put_buffer``). One thread updates the hash (hashlib releases the GIL on
    big buffers), another writes the same buffer to the file; the buffer returns to the pool when
    both are done with it. So receiving, hashing and writing all overlap, and the pool means no
    fresh 1 MiB allocation (page faults, zeroing) per chunk. ``finish`` fsyncs.

    A big file is also flushed to the disk as it grows: every ``SYNC_EVERY`` bytes the write
    thread asks a third thread for an fdatasync, so the disk works during the transfer and the
    final fsync has only the last stretch left. (Asking the kernel for writeback with
    posix_fadvise did not help here: on a virtual disk with a write cache the final fsync of
    200 MiB still took 0.2 s; with flushes during a 0.35 s transfer it takes 0.02-0.03 s.)
    """

    SYNC_EVERY = 16 * CHUNK_SIZE

    def __init__(self, path: Path, offset: int, hasher):
        self.path = path
        self.hasher = hasher
        self.size = offset
        self.error: Optional[BaseException] = None
        self._free: "queue.Queue" = queue.Queue()
        for _ in range(QUEUE_CHUNKS):
            self._free.put(bytearray(CHUNK_SIZE))
        self._fd = open_regular(path, os.O_WRONLY | os.O_CREAT, 0o644)  # never through a link
        self._closed = False
        os.ftruncate(self._fd, offset)
        os.lseek(self._fd, offset, os.SEEK_SET)
        self._written = offset
        self._sync_mark = offset
        self._sync_requests: Optional["queue.Queue"] = None  # and its thread, once the file is big
        self._sync_thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._queues = (queue.Queue(), queue.Queue())
        self._threads = (
            threading.Thread(target=self._run, args=(self._queues[0], self._hash), daemon=True,
                             name=f"hash {path.name}"),
            threading.Thread(target=self._run, args=(self._queues[1], self._write), daemon=True,
                             name=f"write {path.name}"))
        for thread in self._threads:
            thread.start()

    def _hash(self, view) -> None:
        self.hasher.update(view)

    def _write(self, view) -> None:
        while len(view):
            done = os.write(self._fd, view)
            view = view[done:]
            self._written += done
        if self._written - self._sync_mark >= self.SYNC_EVERY:
            self._sync_mark = self._written
            if self._sync_thread is None:
                self._sync_requests = queue.Queue()
                self._sync_thread = threading.Thread(target=self._flush_to_disk, daemon=True,
                                                     name=f"sync {self.path.name}")
                self._sync_thread.start()
            if self._sync_requests.empty():  # else a flush is pending: it covers these bytes too
                self._sync_requests.put(True)

    def _flush_to_disk(self) -> None:
        while self._sync_requests.get():
            try:
                _flush(self._fd)
            except OSError as exc:  # e.g. EIO: the final fsync would fail too; report it there
                self.error = self.error or exc
                return

    def _release(self, item: list) -> None:
        with self._lock:
            item[2] -= 1
            last = item[2] == 0
        if last and isinstance(item[0], bytearray):
            self._free.put(item[0])

    def _run(self, items: "queue.Queue", work) -> None:
        failed = False
        while True:
            item = items.get()
            if item is None:
                return
            if not failed:
                try:
                    work(memoryview(item[0])[:item[1]])
                except BaseException as exc:  # e.g. ENOSPC: reported on the caller's thread
                    self.error = self.error or exc
                    failed = True
            self._release(item)  # keep the pool flowing even after a failure

    def _raise(self) -> None:
        from omz_tools.download.errors import LocalWriteError
        exc = self.error
        if isinstance(exc, OSError):
            free = ""
            try:
                stat = os.statvfs(self.path.parent)
                free = f" ({human_size(stat.f_bavail * stat.f_frsize)} free there)"
            except OSError:
                pass
            raise LocalWriteError(
                f"cannot write {self.path} after {self._written} bytes: {exc.strerror or exc}{free}. "
                f"Kept what was written, to resume from there; free some space (or fix the folder's "
                f"permissions) and run the command again, or choose another --output_dir.") from None
        raise exc

    def buffer(self) -> bytearray:
        """A free 1 MiB buffer to receive into (waits while hashing or writing is behind)."""
        if self.error is not None:
            self._raise()
        return self._free.get()

    def give_back(self, data: bytearray) -> None:
        self._free.put(data)

    def put_buffer(self, data, length: int) -> None:
        """Hand over ``data[:length]`` (a buffer from ``buffer()``, or bytes)."""
        if self.error is not None:
            self._raise()
        self.size += length
        item = [data, length, 2]
        for items in self._queues:
            items.put(item)

    def _stop(self) -> None:
        for items, thread in zip(self._queues, self._threads):
            if thread.is_alive():
                items.put(None)
        for thread in self._threads:
            thread.join()
        if self._sync_thread is not None:  # started by the write thread, which has ended
            self._sync_requests.put(False)
            self._sync_thread.join()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self._fd)

    def finish(self, sync: bool = True) -> str:
        """Wait for the last chunk and fsync; the hex digest of everything in the file."""
        self._stop()
        try:
            if self.error is not None:
                self._raise()
            if sync:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    self.error = exc
                    self._raise()
        finally:
            self._close()
        return self.hasher.hexdigest()

    def abort(self) -> None:
        """Stop writing; the bytes written so far stay in the file (a resumable prefix)."""
        if self._closed:
            return
        self._stop()
        self._close()


def mismatch_message(*, target: Path, url: str, expected_size: int, actual_size: int, algorithm: str,
                     expected_hash: str, actual_hash: Optional[str], action: str,
                     html: bool = False, resumed: bool = False, cause: str = "") -> str:
    """One paragraph: what, where, expected vs actual, what was done, the likely cause, what to try."""
    got = f"{actual_size} bytes" + (f" with {algorithm} {actual_hash}" if actual_hash else "")
    text = (f"{target.name}: the data from {url} does not match the registry: expected "
            f"{expected_size} bytes with {algorithm} {expected_hash}, got {got}. {action}")
    if html:
        why = ("The server sent an HTML page instead of the file (a login, error, quota or "
               "consent page); open the URL in a browser to see it, and fix the URL or access to it.")
    elif cause:
        why = cause
    elif actual_size != expected_size:
        why = ("The size differs, so the server sent something else: the file changed upstream, or a "
               "proxy or captive portal answered instead; check the URL, or update the registry entry "
               "if the file was intentionally replaced.")
    elif resumed:
        why = ("The download continued a kept partial file and the file may have changed on the server "
               "in between; the next run starts from scratch.")
    else:
        why = ("The size is right but the content differs: the file was changed upstream or corrupted "
               "in transit; retry, and if it persists, compare the file with the registry entry.")
    return f"{text} {why}"


def verified(path, model_file, full_check: bool = False, *, allow_postprocessed: bool = True) -> bool:
    """True iff the file at ``path`` is present and is ``model_file`` as the registry describes it.

    Trusts the folder's record when the file's size, mtime, inode and device still match it;
    otherwise (or with ``full_check``) hashes the file and, if it matches, records it for next time.
    A file that regex_replace postprocessing rewrote from a verified original counts as verified
    as long as it is unchanged since (its own hash is recorded for full checks).
    """
    from omz_tools.download import records

    path = Path(path)
    checksum = model_file.checksum
    fields = records.stat_fields(path)
    if fields is None or not os.path.isfile(path):
        return False
    entry = records.FolderRecord(path.parent).file(path.name)
    if (allow_postprocessed and entry and entry.get("state") == records.POSTPROCESSED
            and entry.get("source_hash") == checksum.value):
        # Rewritten on purpose: compare with the hash of what we wrote, not the registry's.
        if not full_check and records.record_holds(entry, path):
            return True
        digest, _ = hash_file(path, entry.get("algorithm", "sha256"))
        if digest == entry.get("hash"):
            records.record_file(path, entry.get("algorithm", "sha256"), entry["hash"],
                                state=records.POSTPROCESSED, source_hash=checksum.value)
            return True
        return False
    if fields["size"] != model_file.size:
        return False
    if (not full_check and entry and entry.get("state") == records.VERIFIED
            and entry.get("algorithm") == checksum.algorithm and entry.get("hash") == checksum.value
            and records.record_holds(entry, path)):
        return True
    digest, _ = hash_file(path, checksum.algorithm)
    if digest != checksum.value:
        return False
    records.record_file(path, checksum.algorithm, checksum.value)
    return True
