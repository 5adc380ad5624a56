"""The conversion of one model, and of many in parallel.

Per model (each stage of a composite model), one step after the other:

- plan (``plan.Planner``): the backend (``auto``: Model Optimizer when the chosen interpreter has it, as the model
  card describes, else the native Caffe front end or ``ovc`` (openvino.convert_model); or as asked), the precisions,
  the folders, and the record key each IR folder must hold;
- inputs (``inputs``, ``Converter._check_inputs``): present and verified (the downloader's records; hashing only when they are stale),
  fetched first with ``--download``; then skip when every requested IR folder's record matches;
- backend run (``backends``; FP32, once): Model Optimizer in a process of its own, writing into
  ``<conv_dir>/.omz_convert.<name>.tmp/mo`` (Caffe parsed with the upb-backed ``caffe_pb2``,
  caffe_parser), output in a log file; or the native front end (``convert.caffe``) in this
  process, giving an ``openvino.Model``; or openvino.convert_model in a child process
  (``ovc_child``), which also derives the precisions;
- derive precisions (``derive``): ``openvino.save_model(..., compress_to_fp16=...)`` of that one model (MO's
  FP16 output byte for byte, without a second MO run), model_info written into rt_info as
  omz_converter does;
- verify (``derive``): ircheck against the registry and model_card;
- install (``install``): each ``<PRECISION>`` folder renamed into place with its record (complete or absent).

Every OpenVINO call of this process holds ``runtime.LOCK`` (one model at a time inside OpenVINO; see
runtime.py); Model Optimizer and the ovc children run side by side under ``-j``.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Optional

from omz_tools.convert import backends, derive, ircache
from omz_tools.convert import mo as mo_mod
from omz_tools.convert import records
from omz_tools.convert.budget import MemoryBudget, estimate_peak
from omz_tools.convert.inputs import fetch_command, missing_inputs
from omz_tools.convert.install import _figures_dict, _remove_empty, check_target, install
from omz_tools.convert.outcome import (  # noqa: F401 - the engine's API, imported from here
    BACKENDS, DEFAULT_PRECISIONS, Cancelled, ConvertResult, ModelFailed, Options, Outcome,
)
from omz_tools.convert.plan import Planner
from omz_tools.convert.progress import Reporter
from omz_tools.errors import OmzError
from omz_tools.registry import Model

# -- one model ------------------------------------------------------------------------------------

class Converter(Planner):
    """Converts models with shared settings; thread-safe (one thread per model with -j). The steps
    of one model: plan (Planner) -> inputs -> backend run -> derive precisions -> verify -> install."""

    def __init__(self, options: Options, reporter: Optional[Reporter] = None):
        import dataclasses
        # Absolute folders: MO's command (and so the record's key) must not depend on the cwd.
        options = dataclasses.replace(options, download_dir=Path(options.download_dir).absolute(),
                                      output_dir=Path(options.output_dir).absolute())
        super().__init__(options, reporter)
        self.budget = MemoryBudget()
        self.cancelled = threading.Event()

    def _nothing_to_do(self, model: Model, precisions: list) -> Optional[Outcome]:
        if self.cancelled.is_set():
            return Outcome(model.name, ok=False, message="interrupted")
        if model.mo_args is None:
            self.reporter.skip(model.name, "no conversions defined (the model is already IR)")
        elif not precisions:
            self.reporter.skip(model.name, f"none of the requested precisions; it converts to "
                                           f"{', '.join(sorted(model.precisions))}")
        else:
            return None
        return Outcome(model.name, ok=True, skipped=True)

    def convert(self, model: Model) -> Outcome:
        """Convert one (leaf) model; never raises for a model problem (the outcome says it)."""
        start = time.monotonic()
        precisions = self.precisions_for(model)
        done = self._nothing_to_do(model, precisions)
        if done is not None:
            return done
        outcome = Outcome(model.name, ok=True)
        outcome.card = {k: model.model_card[k] for k in ("mparams", "gflops") if k in (model.model_card or {})}
        conv_dir = self.paths(model)["conv_dir"]
        existed = conv_dir.exists()
        self.reporter.model_begin(model.name, precisions)
        try:
            outcome.backend, why = self.backend_for(model)
            unsupported = self.unsupported(model, outcome.backend)
            if unsupported:
                raise ModelFailed(unsupported)
            if self.options.dry_run:
                self.dry_run(model, precisions, outcome.backend, why)
            else:
                self._convert(model, precisions, outcome, why)
        except Cancelled:
            outcome.ok, outcome.message = False, "interrupted"
            return outcome
        except Exception as exc:  # noqa: BLE001 - every failure is that model's FAILED line, never a traceback
            outcome.ok = False
            outcome.message, detail = self._failure(model, exc)
            self.reporter.error(model.name, outcome.message, detail)
        finally:
            if not existed and not outcome.ok:
                _remove_empty(conv_dir, self.options.output_dir)  # a failed run leaves no empty model folder
        outcome.seconds = time.monotonic() - start
        self.reporter.model_end(model.name, outcome.ok, outcome.seconds, outcome.phases)
        return outcome

    def _failure(self, model: Model, exc: Exception) -> tuple:
        """(message, detail) for a model's failure: its own words, a local write or read that
        failed, or (a bug) the exception's name and the log that holds its traceback."""
        if isinstance(exc, ModelFailed):
            return str(exc), exc.detail
        if isinstance(exc, OSError):  # mostly the output folder: read-only, no permission, full
            out = self.options.output_dir
            folder = out / model.subdirectory
            where = Path(exc.filename or folder)
            writing = where.absolute().is_relative_to(out.absolute()) or out.absolute().is_relative_to(where.absolute())
            return (f"cannot {'write' if writing else 'read'} {where}: {exc.strerror or exc}. No IR was "
                    f"installed for {model.name}; check the permissions, mount and free space of "
                    f"{folder if writing else where.parent}, or choose another "
                    f"{'--output_dir' if writing else '--download_dir'}."), ""
        if isinstance(exc, OmzError):
            return str(exc), ""
        log = self._log_unexpected(model, exc)
        return (f"unexpected error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}). "
                f"No IR was installed for {model.name}; this is a bug in omz_tools: please "
                f"report it with the traceback in {log}."), ""

    def _log_unexpected(self, model: Model, exc: BaseException) -> Path:
        """Append the traceback to the model's log (else a temporary file); return where it went."""
        import tempfile
        import traceback
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        log = self.paths(model)["log"]
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with open(log, "a", encoding="utf-8") as stream:
                stream.write(f"\nunexpected error while converting {model.name}:\n{text}")
            return log
        except OSError:
            fd, name = tempfile.mkstemp(prefix=f"omz_convert.{model.name}.", suffix=".log")
            with os.fdopen(fd, "w", encoding="utf-8") as stream:
                stream.write(text)
            return Path(name)

    def phase(self, model: Model, outcome: Outcome, name: str, detail: str = "") -> None:
        now = time.monotonic()
        if outcome.phases.get("_current"):
            prev, began = outcome.phases.pop("_current")
            outcome.phases[prev] = outcome.phases.get(prev, 0.0) + now - began
        if name:
            outcome.phases["_current"] = (name, now)
            self.reporter.phase(model.name, name, detail)

    def _convert(self, model: Model, precisions: list, outcome: Outcome, why: str) -> None:
        options = self.options
        backend = outcome.backend
        self.phase(model, outcome, "check", f"backend {backend} ({why})")
        try:
            self._check_inputs(model)
            keys = self.keys(model, precisions, backend)
            paths = self.paths(model)
            targets = {p: paths["conv_dir"] / p for p in precisions}
            for target in targets.values():  # refused before any work, so no precision gets installed
                check_target(target)

            def up_to_date(note: str) -> bool:
                if options.force or not all(records.up_to_date(targets[p], keys[p], model.name) for p in precisions):
                    return False
                outcome.skipped = True
                outcome.irs = {p: targets[p] / f"{model.name}.xml" for p in precisions}
                outcome.figures = (records.read(targets[precisions[0]]) or {}).get("figures")
                self.reporter.skip(model.name, note)
                return True

            if up_to_date(f"IR up to date (inputs, {'MO command' if backend == 'mo' else 'arguments'} and "
                          f"versions unchanged; --force converts again)"):
                return
            from omz_tools.locks import LockTimeout, PathLock
            paths["conv_dir"].mkdir(parents=True, exist_ok=True)
            estimate = estimate_peak(model)
            try:
                lock = PathLock(paths["lock"], timeout=24 * 3600.0, cancel=self.cancelled, cancelled=Cancelled)
                lock.acquire()
            except LockTimeout as exc:
                raise ModelFailed(f"another converter still holds {paths['lock']}: {exc}") from None
            try:
                # Another process may have converted it while we waited for the lock.
                if up_to_date("IR up to date (converted by another process)"):
                    return
                if ircache.restore_installed(self, model, precisions, keys, paths, targets, outcome):
                    return  # this very conversion's IR, fetched from a cache tier and verified
                self.budget.acquire(estimate)
                try:
                    self._produce(model, precisions, keys, paths, targets, outcome)
                finally:
                    self.budget.release(estimate)
                ircache.save_installed(self, model, precisions, keys, targets)
            finally:
                lock.release()
        finally:
            self.phase(model, outcome, "")

    def _check_inputs(self, model: Model) -> None:
        options = self.options
        problems = missing_inputs(model, options.download_dir)
        if problems and options.download:
            self.reporter.phase(model.name, "download", ", ".join(name for name, _ in problems))
            import dataclasses

            from omz_tools.download import DownloadOptions
            from omz_tools.download import run as download_run
            wanted = dataclasses.replace(options.download_options or DownloadOptions(),
                                         output_dir=options.download_dir)
            try:
                result = download_run([model], wanted)
            except (OmzError, ValueError) as exc:  # no space, not writable, an unusable cache...
                raise ModelFailed(f"downloading its files failed: {exc}") from None
            if result.failures:
                raise ModelFailed(f"downloading its files failed: {'; '.join(result.failures.values())}")
            problems = missing_inputs(model, options.download_dir)
        if problems:
            folder = options.download_dir / model.subdirectory
            listed = ", ".join(f"{name} ({why})" for name, why in problems)
            raise ModelFailed(
                f"input files are missing or not verified in {folder}: {listed}. Conversion needs every "
                f"file as the registry describes it. Fetch them with: "
                f"{fetch_command(model, options.download_dir, options.registries)} "
                f"(or run the converter with --download).")

    def _derive_and_verify(self, model, precisions, source, tmp, targets, outcome) -> None:
        derive.derive_and_verify(self, model, precisions, source, tmp, targets, outcome)

    def _produce(self, model, precisions, keys, paths, targets, outcome) -> None:
        """backend run -> derive precisions -> verify -> install, in a scratch folder."""
        tmp = paths["tmp"]
        shutil.rmtree(tmp, ignore_errors=True)  # a stale one from an interrupted run
        paths["log"].unlink(missing_ok=True)
        try:
            if outcome.backend == "native":
                source, extra = backends.run_native(self, model, paths, outcome)
            elif outcome.backend == "ovc":
                source, extra = backends.run_ovc(self, model, precisions, paths, outcome)
            else:
                source, extra = backends.run_mo(self, model, precisions, paths, outcome)
            # In a list that saving empties: the native model's weights (the caffemodel's size)
            # are freed before the checks compile the saved IR (the peak memory of a conversion).
            held = [source]
            del source
            self._derive_and_verify(model, precisions, held, tmp, targets, outcome)
            self.phase(model, outcome, "install")
            for precision in precisions:
                records.write(tmp / precision, keys[precision], model.name,
                              extra={"backend": outcome.backend, **extra,
                                     "figures": _figures_dict(outcome.figures)})
                install(tmp / precision, targets[precision], tmp)
                outcome.irs[precision] = targets[precision] / f"{model.name}.xml"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

# -- many models ----------------------------------------------------------------------------------

def run(models: list, options: Options, reporter: Optional[Reporter] = None) -> ConvertResult:
    """Convert ``models`` (top-level models; composites by stage) with ``options.jobs`` in parallel."""
    converter = Converter(options, reporter)
    result = ConvertResult()
    start = time.monotonic()

    def convert_model(model: Model) -> list:
        return [converter.convert(stage) for stage in model.leaves()]

    try:
        if options.jobs <= 1 or options.dry_run or len(models) <= 1:
            for model in models:
                result.outcomes[model.name] = convert_model(model)
        else:
            with ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="omz-convert") as pool:
                futures = {pool.submit(convert_model, m): m for m in models}
                try:
                    pending = set(futures)
                    while pending:
                        done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                        for future in done:
                            result.outcomes[futures[future].name] = future.result()
                except KeyboardInterrupt:
                    converter.cancelled.set()
                    for future in futures:
                        future.cancel()
                    mo_mod.terminate_all()
                    raise
            result.outcomes = {m.name: result.outcomes[m.name] for m in models if m.name in result.outcomes}
    except KeyboardInterrupt:
        mo_mod.terminate_all()
        result.interrupted = True
        raise
    finally:
        result.seconds = time.monotonic() - start
    return result
