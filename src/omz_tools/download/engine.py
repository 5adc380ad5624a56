"""Fetch the planned files (see omz_tools.download.plan) on N worker threads, postprocess each
model once its files are in, and collect a result that keeps successes and failures apart."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from omz_tools.download import records
from omz_tools.download.errors import Interrupted
from omz_tools.download.plan import ModelJob, model_lock_path, settle_postprocessing
from omz_tools.download.progress import Reporter


@dataclass
class DownloadResult:
    """What a run did. ``successes``: model -> paths of its files; ``failures``: model -> why."""

    successes: dict = field(default_factory=dict)
    failures: dict = field(default_factory=dict)
    # model -> why in one short line (file names and causes, no advice), for the FAILED: list.
    briefs: dict = field(default_factory=dict)
    files: list = field(default_factory=list)  # FileOutcome per file handled
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted

    @property
    def bytes_downloaded(self) -> int:
        return sum(outcome.transferred for outcome in self.files)

    def count(self, action: str) -> int:
        return sum(1 for outcome in self.files if outcome.action == action)

    def __repr__(self) -> str:
        return (f"<DownloadResult {len(self.successes)} ok, {len(self.failures)} failed: "
                f"{sorted(self.failures)}>")


def _without_name(message: str, task) -> str:
    """A file's message without its own name in front (the reporter and the summary put it there)."""
    for name in (task.name, task.target.name):
        if message.startswith(f"{name}: "):
            return message[len(name) + 2:]
    return message


def _brief_line(briefs: list) -> str:
    """'a.bin, b.bin: not available offline; c.bin: HTTP 404 Not Found': files grouped by cause."""
    grouped: dict = {}
    for name, brief in briefs:
        grouped.setdefault(brief, []).append(name)
    return "; ".join((", ".join(n for n in names if n) + ": " if any(names) else "") + brief
                     for brief, names in grouped.items())


class Engine:
    """Runs the plan: file tasks on ``options.jobs`` worker threads sharing one session, models
    postprocessed by whichever worker finishes their last file."""

    def __init__(self, *, reporter: Reporter, options=None, store=None):
        from omz_tools.download.options import DownloadOptions

        self.reporter = reporter
        self.options = options or DownloadOptions()
        self.workers = max(1, self.options.jobs)
        self.store = store
        self.cancel = threading.Event()
        self._result = DownloadResult()
        self._result_lock = threading.Lock()
        self._begin_lock = threading.Lock()
        self._fetcher = None

    # -- per-model bookkeeping ------------------------------------------------------------------

    def _begin_model(self, job: ModelJob) -> None:
        with job.begin_lock:  # the other files of this model wait here; other models go on
            if job.started:
                return
            if job.postprocess:
                self._hold_model(job)
            elif job.model.postprocessing:
                self._sweep_model_lock(job)
            with self._begin_lock:
                job.started = True
                self.reporter.model_begin(job.model.name, len(job.tasks))

    def _hold_model(self, job: ModelJob) -> None:
        """Takes the model's lock before its first file, so that of the processes sharing the
        output folder one fetches and postprocesses the model while the others wait, then find
        it done (regex_replace applied twice would corrupt a file, and a file another process
        rewrote would look damaged). Deadlock-free: a thread waits for a model's lock only
        before that model's first file, holding no other lock, and the queue hands out a
        model's files together, so every held model lock belongs to files being worked on."""
        from omz_tools.locks import LockTimeout, PathLock

        job.folder.mkdir(parents=True, exist_ok=True)
        path = model_lock_path(job)
        try:
            try:
                lock = PathLock(path, timeout=0).acquire()
            except LockTimeout:
                self.reporter.note(job.model.name, None, "another download of this model into the same "
                                   "folder is in progress (another process, or this run's other selection "
                                   "of it); waiting for it to finish")
                lock = PathLock(path, cancel=self.cancel, cancelled=Interrupted).acquire()
        except LockTimeout as exc:
            with job.lock:
                job.failures.append(str(exc))
                job.briefs.append((None, "timed out waiting for another download of it"))
            return
        with job.lock:
            job.model_lock = lock
        for note in lock.notes:  # a link planted at the lock's name: removed, never followed
            self.reporter.note(job.model.name, None, note)
        settle_postprocessing(job)  # the other process may have done it all meanwhile
        if not job.postprocess:
            self._release_model(job)

    def _sweep_model_lock(self, job: ModelJob) -> None:
        """Removes the model's lock file that a process killed while holding it left behind (the
        kernel freed its lock, the file stays), when this run finds the postprocessing done and so
        never takes the lock. Taking it and letting go deletes the file; a live holder keeps it."""
        from omz_tools.locks import LockTimeout, PathLock

        path = model_lock_path(job)
        if not os.path.lexists(path):
            return
        try:
            lock = PathLock(path, timeout=0).acquire()
        except LockTimeout:
            return
        lock.release()
        for note in lock.notes:  # a link planted at the lock's name: removed, never followed
            self.reporter.note(job.model.name, None, note)

    def _release_model(self, job: ModelJob) -> None:
        with job.lock:
            lock, job.model_lock = job.model_lock, None
        if lock is not None:
            lock.release()

    def _finish_model(self, job: ModelJob) -> None:
        try:
            self._finish_model_locked(job)
        finally:
            self._release_model(job)

    def _finish_model_locked(self, job: ModelJob) -> None:
        ok = not job.failures
        self.reporter.model_end(job.model.name, ok)
        if ok and job.postprocess:
            from omz_tools.download import postprocess
            self.reporter.postprocessing_begin(job.model.name)
            try:
                outputs = postprocess.run(job.model, job.folder)
            except Exception as exc:  # noqa: BLE001 - a failed step fails this model, not the run
                ok = False
                message = str(exc) if isinstance(exc, postprocess.PostprocessError) else (
                    f"postprocessing failed: {type(exc).__name__}: {exc}")
                job.failures.append(message)
                job.briefs.append((None, message if len(message) <= 200 else "postprocessing failed"))
                records.FolderRecord(job.folder).set_model(job.model.name, None)
                self.reporter.error(job.model.name, None, message)
            else:
                records.FolderRecord(job.folder).set_model(
                    job.model.name, {"postprocessing": postprocess.fingerprint(job.model), "outputs": outputs})
                job.paths += [job.folder / name for name in outputs]
            self.reporter.postprocessing_end(job.model.name, ok)
        with self._result_lock:
            result = self._result
            if ok and job.top not in result.failures:
                result.successes.setdefault(job.top, []).extend(
                    p for p in job.paths if p.exists())
            elif not ok:
                result.successes.pop(job.top, None)
                message = "; ".join(job.failures)
                brief = _brief_line(job.briefs) or message
                if job.model.name != job.top:
                    message = f"stage {job.model.name}: {message}"
                    brief = f"stage {job.model.name}: {brief}"
                previous = result.failures.get(job.top)
                result.failures[job.top] = f"{previous}; {message}" if previous else message
                previous = result.briefs.get(job.top)
                result.briefs[job.top] = f"{previous}; {brief}" if previous else brief

    def _run_task(self, job: ModelJob, task) -> None:
        from omz_tools.download.tasks import FileOutcome

        self._begin_model(job)
        self.reporter.file_begin(task.model_name, task.name, task.model_file.size)
        with job.lock:
            failed_already = [name for name, _ in job.briefs if name]
        if task.consumed:
            outcome = FileOutcome(task, True, "present")
            self.reporter.skip(task.model_name, task.name, "unpacked by postprocessing earlier")
        elif (failed_already or job.failures) and task.sources:
            # Do not fetch the rest of a model that already failed. Offline (no sources) costs
            # nothing, so every missing file of the selection is named.
            outcome = FileOutcome(task, False, "cancelled", message=(
                f"another file of the model failed ({', '.join(failed_already)})" if failed_already
                else "the model failed"))
            self.reporter.skip(task.model_name, task.name, outcome.message)
        else:
            try:
                outcome = self._fetcher.fetch(task)
            except Interrupted:
                raise
            except OSError as exc:  # local: network errors arrive as DownloadErrors
                where = exc.filename or task.target
                outcome = FileOutcome(task, False, "failed", message=(
                    f"cannot write {where}: {exc.strerror or exc}. Nothing was put at {task.target}; "
                    f"check the permissions, mount and free space of {task.target.parent}, or choose "
                    "another --output_dir."), brief=f"cannot write {where}: {exc.strerror or exc}")
            except Exception as exc:  # a bug must fail this file, not the run
                outcome = FileOutcome(task, False, "failed", message=f"{type(exc).__name__}: {exc}")
            outcome.message = _without_name(outcome.message, task)
            outcome.brief = _without_name(outcome.brief or outcome.message, task)
            if outcome.action == "present":
                self.reporter.skip(task.model_name, task.name, "already verified" if outcome.source is None
                                   else f"from the {outcome.source}")
            elif not outcome.ok:
                self.reporter.error(task.model_name, task.name, outcome.message)
        self.reporter.file_end(task.model_name, task.name, outcome.ok, outcome.action, served_by=outcome.served_by)
        with self._result_lock:
            self._result.files.append(outcome)
        with job.lock:
            if outcome.ok:
                if not task.consumed:
                    job.paths.append(task.target)
            elif outcome.action != "cancelled":
                job.failures.append(f"{task.name}: {outcome.message}")
                job.briefs.append((task.name, outcome.brief or outcome.message))
            job.remaining -= 1
            last = job.remaining == 0
        if last:
            self._finish_model(job)

    # -- the run --------------------------------------------------------------------------------

    def _queue(self, model_jobs: list) -> "queue.Queue":
        """The file tasks, a model's files together; models with nothing to fetch are settled now."""
        work: "queue.Queue" = queue.Queue()
        for job in model_jobs:
            if job.skipped_reason or not job.tasks:
                self._begin_model(job)
                if job.skipped_reason:
                    self.reporter.skip(job.model.name, None, job.skipped_reason)
                self._finish_model(job)
                continue
            for task in job.tasks:
                work.put((job, task))
        return work

    def _worker(self, work: "queue.Queue", errors: list) -> None:
        while not self.cancel.is_set():
            try:
                job, task = work.get_nowait()
            except queue.Empty:
                return
            try:
                self._run_task(job, task)
            except Interrupted:
                return
            except BaseException as exc:  # noqa: BLE001 - reported by the main thread
                errors.append(exc)
                self.cancel.set()
                return

    def run(self, model_jobs: list, session_factory: Optional[Callable] = None) -> DownloadResult:
        """Fetch everything; raises KeyboardInterrupt/Interrupted after stopping the workers
        (their .part files are kept) if the run is interrupted."""
        from omz_tools.download.fetch import Fetcher

        start = time.monotonic()
        if session_factory is None:
            def session_factory():
                from omz_tools.download.transport import make_session
                return make_session(self.workers)
        self._fetcher = Fetcher(session_factory=session_factory, reporter=self.reporter,
                                options=self.options, cancel=self.cancel, store=self.store)
        work = self._queue(model_jobs)
        errors: list = []
        threads = [threading.Thread(target=self._worker, args=(work, errors), name=f"download-{i}", daemon=True)
                   for i in range(min(self.workers, max(1, work.qsize())))]
        for thread in threads:
            thread.start()
        try:
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)  # short joins keep the main thread responsive to Ctrl-C
        except BaseException:
            self.cancel.set()
            self._fetcher.abort_transfers()
            deadline = time.monotonic() + 3.0  # let workers close their .part files cleanly
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            raise
        finally:
            for job in model_jobs:  # an interrupted run: let other processes have the models it held
                self._release_model(job)
            session = self._fetcher._session
            if session is not None:
                session.close()
        if errors:
            raise errors[0]
        if self.cancel.is_set():
            raise Interrupted()
        self._result.seconds = time.monotonic() - start
        return self._result
