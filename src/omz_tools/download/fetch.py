"""Fetch one file: skip it if verified, else stream it into ``<name>.part`` from its sources in
order, hashing as it arrives, resuming and retrying, and rename it into place only when verified."""

from __future__ import annotations

import os
import threading
from typing import Callable, Optional

from omz_tools.download import records
from omz_tools.locks import LockTimeout, PathLock, lock_path_for
from omz_tools.download.errors import Interrupted, PermanentError, RestartError, TransientError, VerificationError
from omz_tools.download.tasks import FileOutcome, FileTask
from omz_tools.localstate import fsync_dir, hash_file
from omz_tools.wording import plural

NETWORK_ADVICE = ("If this network cannot reach the server, use --mirror URL (a server holding a copy, "
                  "e.g. a previous run's output folder), --cache_dir DIR (a cache filled by an earlier "
                  "run), or --offline (only files already present or cached).")


class Fetcher:
    """Shared by the worker threads of one run."""

    def __init__(self, *, session_factory: Callable, reporter, options=None,
                 cancel: Optional[threading.Event] = None, store=None):
        self._session_factory = session_factory
        self._session = None
        self._session_lock = threading.Lock()
        self.reporter = reporter
        if options is None:
            from omz_tools.download.options import DownloadOptions
            options = DownloadOptions()
        self.num_attempts = max(1, options.num_attempts)
        self.check_all = options.check_all
        self.limits = options.limits
        self.cancel = cancel or threading.Event()
        self.store = store  # cache lookup before a transfer, store after verification
        self._active: set = set()  # responses being read, so an interrupt can unblock their reads

    def abort_transfers(self) -> None:
        """Shut down the sockets of the responses being read (on Ctrl-C), so blocked reads return."""
        import socket
        for response in list(self._active):
            try:
                response.raw.connection.sock.shutdown(socket.SHUT_RDWR)
            except Exception:  # noqa: BLE001 - best effort: the worker also checks the cancel flag
                pass

    @property
    def session(self):
        with self._session_lock:
            if self._session is None:
                self._session = self._session_factory()
            return self._session

    # -- files already present ------------------------------------------------------------------

    def _present(self, task: FileTask) -> bool:
        """True if target already holds the verified file; a wrong file there is deleted.

        Called with the file's destination lock held (see :meth:`fetch`), so another process
        sharing the output folder cannot be renaming its verified copy into place meanwhile."""
        from omz_tools.download.verify import verified
        target = task.target
        try:
            size = os.stat(target).st_size
        except FileNotFoundError:
            return False
        if verified(target, task.model_file, self.check_all, allow_postprocessed=task.postprocessed_ok):
            return True
        checksum = task.model_file.checksum
        self.reporter.note(task.model_name, task.name,
                           f"{target} was present but is not the expected file ({size} bytes, expected "
                           f"{task.model_file.size} bytes with {checksum.algorithm} {checksum.value}); "
                           "deleted it and fetching it again")
        target.unlink(missing_ok=True)
        records.forget_file(target)
        return False

    # -- the whole file, over all sources -------------------------------------------------------

    def fetch(self, task: FileTask) -> FileOutcome:
        if self.cancel.is_set():
            raise Interrupted()
        task.target.parent.mkdir(parents=True, exist_ok=True)
        # Processes (and threads) sharing an output folder, with or without a cache, take
        # the destination's lock around check-present / resume / transfer / rename / record, so
        # one of them fetches the file and the others then find it verified. Lock order: the
        # model's postprocessing lock (engine._hold_model), if any, then this destination lock, then the cache's per-hash lock (store.hold), then the folder
        # record's lock (records.py, held only for one read-modify-write); never the reverse.
        existed = os.path.lexists(task.target)  # before waiting for any lock
        for note in records.clear_state_links(task.target):  # links there: removed, never followed
            self.reporter.note(task.model_name, task.name, note)
        try:
            with PathLock(lock_path_for(task.target), cancel=self.cancel, cancelled=Interrupted):
                return self._fetch_locked(task, existed)
        except LockTimeout as exc:
            return FileOutcome(task, False, "failed", message=str(exc))

    def _fetch_locked(self, task: FileTask, existed: bool) -> FileOutcome:
        if self.store is not None and not existed:
            # Absent when we started: if it is there now, a process sharing this output folder and
            # the cache put it there while we waited, and the cache holds it too (a link to it):
            # take it from the cache, as if we had waited for the per-hash lock only.
            with self.store.hold(task):
                if self.store.lookup(task):
                    return self._from_cache(task)
                if self._present(task):  # put there by a process without the cache
                    return FileOutcome(task, True, "present")
                return self._fetch_sources(task)
        if self._present(task):
            return FileOutcome(task, True, "present")
        if self.store is None:
            return self._fetch_sources(task)
        # One process/thread per content hash fetches; the others wait, then hit the cache.
        with self.store.hold(task):
            if self.store.lookup(task):
                return self._from_cache(task)
            return self._fetch_sources(task)

    def _from_cache(self, task: FileTask) -> FileOutcome:
        return FileOutcome(task, True, "present", source=self.store.label, served_by=self.store.label)

    def _fetch_sources(self, task: FileTask) -> FileOutcome:
        if not task.sources:  # offline: no candidate at all, and no connection is made
            from omz_tools.download.options import missing_offline
            return FileOutcome(task, False, "failed", message=missing_offline(task, self.store),
                               brief="not available offline")
        failures: list = []  # (paragraph, brief, network) per source given up on
        for source in task.sources:
            if source.kind == "s3" and not self.store.s3_holds(task, source):
                continue  # not in that bucket (or the bucket is unusable: said once): no message
            outcome = self._fetch_from(task, source, failures)
            if outcome is not None:
                if self.store is not None:
                    self.store.put(task, served_by=outcome.served_by)
                return outcome
            if source.kind == "s3":
                self.store.s3_failed(source)
            if source is not task.sources[-1] and failures:  # say why a mirror was passed over
                self.reporter.note(task.model_name, task.name,
                                   f"{source.label} failed, trying the next source: {failures[-1][0]}")
        if not failures:  # offline, and no S3 cache tier holds it
            from omz_tools.download.options import missing_offline
            return FileOutcome(task, False, "failed", message=missing_offline(task, self.store),
                               brief="not available offline")
        if len(failures) == 1:
            message, brief = failures[0][0], failures[0][1]
        else:
            message = "every source failed: " + " ".join(f"[{i}] {text}" for i, (text, _, _) in
                                                        enumerate(failures, 1))
            brief = "every source failed: " + "; ".join(b for _, b, _ in failures)
        if any(network for _, _, network in failures) and not task.received:
            message = f"{message} {NETWORK_ADVICE}"
        return FileOutcome(task, False, "failed", message=message, brief=brief, transferred=task.received)

    def _fetch_from(self, task: FileTask, source, failures: list) -> Optional[FileOutcome]:
        from omz_tools.download import transport  # imports requests: only when something is fetched

        attempts = self.num_attempts
        tried = f"after {plural(attempts, 'attempt')}"
        made = [0]  # attempts made so far

        def give_up(exc, text: str) -> None:
            count = f", {plural(made[0], 'attempt')}" if made[0] > 1 else ""
            failures.append((text, f"{exc.brief} ({source.describe()}{count})", exc.network))

        for attempt in range(attempts):
            last = attempt == attempts - 1
            made[0] = attempt + 1
            try:
                return self._attempt(task, source)
            except RestartError as exc:
                records.remove_part(task.target)
                if last:
                    give_up(exc, f"{exc}; gave up {tried}.")
                    return None
                self.reporter.retry(task.model_name, task.name, attempt + 2, 0.0, exc.brief, attempts)
            except VerificationError as exc:
                records.remove_part(task.target)
                if not exc.resumed or last:
                    give_up(exc, str(exc))
                    return None
                # A continued download may have mixed two versions of the file: one clean retry.
                self.reporter.retry(task.model_name, task.name, attempt + 2, 0.0,
                                    "the resumed file did not verify; starting over", attempts)
            except TransientError as exc:
                if last:
                    part = records.part_path(task.target)
                    kept = part.stat().st_size if part.exists() else 0
                    if kept:
                        advice = (f"Kept {part.name} ({kept} of {task.model_file.size} bytes): run the "
                                  "command again to continue from there, or raise --num_attempts.")
                    elif exc.network:
                        advice = ("Check the network and any HTTP(S)_PROXY settings, then run the command "
                                  "again (or raise --num_attempts).")
                    else:
                        advice = "Run the command again later, or raise --num_attempts."
                    give_up(exc, f"{exc}; gave up {tried}. {advice}")
                    return None
                delay = transport.backoff_delay(attempt, exc.retry_after)
                self.reporter.retry(task.model_name, task.name, attempt + 2, delay, exc.brief, attempts)
                if self.cancel.wait(delay):
                    raise Interrupted()
            except PermanentError as exc:
                give_up(exc, str(exc))
                return None
        return None

    # -- one request ---------------------------------------------------------------------------

    def _kept_prefix(self, task: FileTask, source):
        """(offset, validator) of a .part worth continuing, else (0, None) after removing it."""
        target, part = task.target, records.part_path(task.target)
        expected = task.model_file
        if not part.exists():
            return 0, None
        info = records.read_part_info(target)
        same = (info.get("url") == source.url and info.get("hash") == expected.checksum.value
                and info.get("size") == expected.size)
        offset = part.stat().st_size
        if not same or offset > expected.size or offset == 0:
            records.remove_part(target)
            return 0, None
        return offset, info.get("validator")

    def _attempt(self, task: FileTask, source) -> FileOutcome:
        from omz_tools.download import transport

        target, part = task.target, records.part_path(task.target)
        model_file = task.model_file
        checksum, size = model_file.checksum, model_file.size
        offset, validator = self._kept_prefix(task, source)

        if offset and offset == size:  # killed after the last byte but before the rename: just verify it
            digest, _ = hash_file(part, checksum.algorithm)
            if digest == checksum.value:
                return self._commit(task, source, "resumed", 0, digest)
            records.remove_part(target)
            offset, validator = 0, None

        if source.kind == "s3":  # a bucket of the S3 cache tier (download/s3cache.py)
            opened = self.store.open_s3(source, offset, validator)
        else:
            opened = transport.open_source(self.session, source, offset, validator, self.limits.timeouts)
        response = opened.response
        self._active.add(response)
        try:
            return self._receive(task, source, opened, offset)
        finally:
            self._active.discard(response)
            response.close()

    def _receive(self, task: FileTask, source, opened, offset: int) -> FileOutcome:
        from omz_tools.download.receive import BodyReceiver

        body = BodyReceiver(task, source, opened, reporter=self.reporter, cancel=self.cancel, limits=self.limits)
        body.check_announced(offset)
        digest = body.receive()
        return self._commit(task, source, "resumed" if body.start else "downloaded", body.received, digest)

    def _commit(self, task: FileTask, source, action: str, received: int, digest: str) -> FileOutcome:
        target, part = task.target, records.part_path(task.target)
        os.replace(part, target)  # atomic: the final path holds the old state or the verified file
        fsync_dir(target.parent)
        records.remove_part(target)
        records.record_file(target, task.model_file.checksum.algorithm, digest)
        return FileOutcome(task, True, action, source=source.url, served_by=source.label,
                           transferred=task.received)
