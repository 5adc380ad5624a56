"""The conversion of one model, and of many in parallel.

Per model (each stage of a composite model), one step after the other:

- plan: the backend (``auto``: Model Optimizer when the chosen interpreter has it, as the model
  card describes, else the native Caffe front end; or ``mo``/``native`` as asked), the precisions,
  the folders, and the record key each IR folder must hold;
- inputs: present and verified (the downloader's records; hashing only when they are stale),
  fetched first with ``--download``; then skip when every requested IR folder's record matches;
- backend run (FP32, once): Model Optimizer in a process of its own, writing into
  ``<conv_dir>/.omz_convert.<name>.tmp/mo`` (Caffe parsed with the upb-backed ``caffe_pb2``,
  caffe_parser), output in a log file; or the native front end (``convert.caffe``) in this
  process, giving an ``openvino.Model``;
- derive precisions: ``openvino.save_model(..., compress_to_fp16=...)`` of that one model (MO's
  FP16 output byte for byte, without a second MO run), model_info written into rt_info as
  omz_converter does;
- verify: ircheck against the registry and model_card;
- install: each ``<PRECISION>`` folder renamed into place with its record (complete or absent).

Every OpenVINO call holds ``runtime.LOCK`` (one model at a time inside OpenVINO; see runtime.py).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omz_tools.convert import mo as mo_mod
from omz_tools.convert import records
from omz_tools.convert.budget import MemoryBudget, estimate_peak
from omz_tools.convert.inputs import fetch_command, missing_inputs
from omz_tools.convert.progress import Reporter
from omz_tools.registry import Model

PHASES = ("check", "mo", "native", "fp16", "verify", "install")
BACKENDS = ("auto", "mo", "native")
DEFAULT_PRECISIONS = ("FP32", "FP16")


class ModelFailed(Exception):
    """One model cannot be converted; the message (one paragraph) says why and what to try.
    ``detail``: supporting lines shown after it (e.g. the tail of Model Optimizer's log)."""

    def __init__(self, message: str, detail: str = ""):
        super().__init__(message)
        self.detail = detail


class Cancelled(Exception):
    """The run was interrupted (Ctrl+C with -j): stop quietly, the interrupt itself is reported."""


@dataclass
class Options:
    download_dir: Path = Path(".")
    output_dir: Optional[Path] = None  # default: download_dir
    precisions: Optional[set] = None  # default: FP32 and FP16 (what the model supports)
    python: Optional[str] = None
    mo: Optional[Path] = None
    extra_mo_args: list = field(default_factory=list)
    dry_run: bool = False
    jobs: int = 1
    force: bool = False
    download: bool = False
    # --download's settings, as omz-downloader's flags (the library also reads OMZ_MIRROR,
    # OMZ_OFFLINE and OMZ_TIMEOUT): cache_dir, mirrors, offline, num_attempts, timeout.
    download_settings: dict = field(default_factory=dict)
    registries: list = field(default_factory=list)
    cache_root: Optional[Path] = None  # for the caffe_pb2 module (default ~/.cache/omz_tools)
    fast_caffe: bool = True  # False: MO's own parser (slow; for comparisons)
    backend: str = "auto"  # "auto", "mo" (Model Optimizer) or "native" (convert.caffe, Caffe only)

    @property
    def out_dir(self) -> Path:
        return Path(self.output_dir if self.output_dir is not None else self.download_dir)


@dataclass
class Outcome:
    model: str
    ok: bool
    skipped: bool = False
    message: str = ""
    irs: dict = field(default_factory=dict)  # precision -> .xml path
    seconds: float = 0.0
    phases: dict = field(default_factory=dict)
    mo_peak_rss: int = 0
    figures: object = None  # ircheck.Figures, or the record's dict when up to date
    backend: str = ""  # "mo" or "native": which one produced (or would produce) the IR
    card: dict = field(default_factory=dict)  # model_card's mparams/gflops the IR was checked against


@dataclass
class ConvertResult:
    outcomes: dict = field(default_factory=dict)  # top-level model name -> list of Outcome (stages)
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failures(self) -> dict:
        return {name: "; ".join(o.message for o in outs if not o.ok)
                for name, outs in self.outcomes.items() if not all(o.ok for o in outs)}

    @property
    def successes(self) -> dict:
        """model -> {precision: .xml}; for a composite model, model -> {stage: {precision: .xml}}."""
        return {name: (outs[0].irs if len(outs) == 1 and outs[0].model == name else {o.model: o.irs for o in outs})
                for name, outs in self.outcomes.items() if all(o.ok for o in outs)}

    @property
    def skipped(self) -> list:
        return [name for name, outs in self.outcomes.items() if outs and all(o.ok and o.skipped for o in outs)]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.interrupted


# -- one model ------------------------------------------------------------------------------------

class Converter:
    """Converts models with shared settings; thread-safe (one thread per model with -j)."""

    def __init__(self, options: Options, reporter: Optional[Reporter] = None):
        import dataclasses
        # Absolute folders: MO's command (and so the record's key) must not depend on the cwd.
        options = dataclasses.replace(options, download_dir=Path(options.download_dir).absolute(),
                                      output_dir=Path(options.out_dir).absolute())
        self.options = options
        self.reporter = reporter or Reporter()
        self._mo: Optional[mo_mod.MOInfo] = None
        self._mo_error: Optional[str] = None
        self._parser_dir: Optional[Path] = None
        self._lock = threading.Lock()
        self.budget = MemoryBudget()
        self.cancelled = threading.Event()

    # MO is looked up once per run, and only if some model needs it.
    def mo_info(self) -> mo_mod.MOInfo:
        with self._lock:
            if self._mo is None and self._mo_error is None:
                try:
                    self._mo = mo_mod.find_mo(self.options.python, self.options.mo)
                except mo_mod.MOError as exc:
                    self._mo_error = str(exc)
            if self._mo_error:
                raise ModelFailed(self._mo_error)
            return self._mo

    def caffe_parser_dir(self, build: bool) -> Optional[Path]:
        if not self.options.fast_caffe:
            return None
        from omz_tools.convert import caffe_parser
        mo = self.mo_info()
        if not caffe_parser.supports_protobuf(mo.protobuf_version):
            return None  # the module needs protobuf >= 3.20 in MO's Python; MO's own parser then
        with self._lock:
            try:
                if build:
                    if self._parser_dir is None:
                        self._parser_dir = caffe_parser.ensure_parser(mo.mo_dir, mo.mo_version,
                                                                      self.options.cache_root)
                    return self._parser_dir
                return caffe_parser.parser_dir(mo.mo_dir, mo.mo_version, self.options.cache_root)
            except caffe_parser.CaffeParserError as exc:
                raise ModelFailed(f"{exc}. The fast Caffe parser cannot be built for Model Optimizer "
                                  f"{mo.mo_version} in {mo.mo_dir}; check that openvino-dev is intact.") from None

    def precisions_for(self, model: Model) -> list:
        requested = set(self.options.precisions or DEFAULT_PRECISIONS)
        return sorted(requested & set(model.precisions), key=lambda p: (p != "FP32", p))

    def paths(self, model: Model) -> dict:
        conv_dir = self.options.out_dir / model.subdirectory
        return {
            "conv_dir": conv_dir,
            "tmp": conv_dir / f".omz_convert.{model.name}.tmp",
            "log": conv_dir / f".omz_convert.{model.name}.log",
            "lock": conv_dir / f".omz_convert.{model.name}.lock",
        }

    def mo_command(self, model: Model, ir_dir: Path, parser_dir: Optional[Path]) -> list:
        return mo_mod.mo_arguments(model, download_dir=self.options.download_dir,
                                   output_dir=self.options.out_dir, ir_dir=ir_dir, mo=self.mo_info(),
                                   compress_to_fp16=False, extra_args=self.options.extra_mo_args,
                                   caffe_parser_dir=parser_dir)

    def native_arguments(self, model: Model, ir_dir: Path) -> list:
        """The MO arguments the native front end takes (no interpreter, no parser path)."""
        try:
            args = mo_mod.model_arguments(model, download_dir=self.options.download_dir,
                                          output_dir=self.options.out_dir, ir_dir=ir_dir, mo=None,
                                          compress_to_fp16=False)
        except KeyError as exc:
            raise ModelFailed(f"model_optimizer_args use ${exc.args[0]}, which only Model Optimizer has "
                              f"({model.config_dir / 'model.yml'}); convert it with --backend mo.") from None
        return args + list(self.options.extra_mo_args)

    def backend_for(self, model: Model) -> tuple:
        """(backend, why) for ``model``: ``--backend`` as given, or for ``auto`` Model Optimizer when the
        chosen interpreter has it (the model card's path), else the native front end for Caffe."""
        choice = self.options.backend
        if choice not in BACKENDS:
            raise ModelFailed(f"unknown backend {choice!r}; expected one of {', '.join(BACKENDS)}")
        if choice == "native":
            if model.framework != "caffe":
                raise ModelFailed(f"--backend native converts Caffe models only, and {model.name} is a "
                                  f"'{model.framework}' model; use --backend mo (or auto).")
            return "native", "--backend native"
        if choice == "mo" or self.options.mo is not None:  # --mo names Model Optimizer: use it, or say why not
            try:
                mo = self.mo_info()
            except ModelFailed as exc:
                if model.framework != "caffe":
                    raise
                raise ModelFailed(f"{exc} Caffe models also convert without it: --backend native (or auto).") \
                    from None
            return "mo", f"--backend mo: Model Optimizer {mo.mo_version} of {mo.python}"
        try:
            mo = self.mo_info()
        except ModelFailed:
            if model.framework != "caffe":
                raise
            return "native", f"auto: {self.options.python or sys.executable} has no Model Optimizer"
        return "mo", f"auto: Model Optimizer {mo.mo_version} of {mo.python}"

    def keys(self, model: Model, precisions: list, backend: str = "mo") -> dict:
        """The record key each IR folder must hold to be up to date."""
        conv_dir = self.paths(model)["conv_dir"]
        if backend == "native":
            import platform

            from omz_tools.convert import caffe
            cmd = self.native_arguments(model, conv_dir / "FP32")
            versions = {"backend": "native", **caffe.versions(), "python": platform.python_version()}
        else:
            # Keyed on the command as if MO wrote the final FP32 folder, without the parser's cache path,
            # and on the interpreter's identity rather than the spelling of its path (so the CLI, whose
            # shebang says python3, and the API under `python` share one record).
            mo = self.mo_info()
            cmd = [mo.interpreter_id if i == 0 and c == mo.python else c
                   for i, c in enumerate(self.mo_command(model, conv_dir / "FP32", None))]
            versions = {"backend": "mo", **mo.versions(),
                        "caffe_parser": "upb-proxy-1" if self.options.fast_caffe and model.framework == "caffe"
                        else "mo-default"}
        inputs = records.input_fingerprint(model, self.options.download_dir)
        return {p: records.conversion_key(model, precision=p, inputs=inputs, mo_command=cmd, versions=versions)
                for p in precisions}

    def convert(self, model: Model) -> Outcome:
        """Convert one (leaf) model; never raises for a model problem (the outcome says it)."""
        start = time.monotonic()
        outcome = Outcome(model.name, ok=True)
        if self.cancelled.is_set():
            return Outcome(model.name, ok=False, message="interrupted")
        precisions = self.precisions_for(model)
        if model.mo_args is None:
            self.reporter.skip(model.name, "no conversions defined (the model is already IR)")
            outcome.skipped = True
            return outcome
        if not precisions:
            self.reporter.skip(model.name, f"none of the requested precisions; it converts to "
                                           f"{', '.join(sorted(model.precisions))}")
            outcome.skipped = True
            return outcome
        outcome.card = {k: model.model_card[k] for k in ("mparams", "gflops") if k in (model.model_card or {})}
        conv_dir = self.paths(model)["conv_dir"]
        existed = conv_dir.exists()
        self.reporter.model_begin(model.name, precisions)
        try:
            unsupported = self._unsupported(model)
            if unsupported:
                raise ModelFailed(unsupported)
            outcome.backend, why = self.backend_for(model)
            if self.options.dry_run:
                self._dry_run(model, precisions, outcome.backend, why)
            else:
                self._convert(model, precisions, outcome, why)
        except ModelFailed as exc:
            outcome.ok = False
            outcome.message = str(exc)
            self.reporter.error(model.name, outcome.message, exc.detail)
        except Cancelled:
            outcome.ok = False
            outcome.message = "interrupted"
            return outcome
        except OSError as exc:  # mostly the output folder: read-only, no permission, full
            outcome.ok = False
            folder = self.options.out_dir / model.subdirectory
            where = Path(exc.filename or folder)
            writing = where.absolute().is_relative_to(self.options.out_dir.absolute()) or \
                self.options.out_dir.absolute().is_relative_to(where.absolute())
            outcome.message = (
                f"cannot {'write' if writing else 'read'} {where}: {exc.strerror or exc}. No IR was "
                f"installed for {model.name}; check the permissions, mount and free space of "
                f"{folder if writing else where.parent}, or choose another "
                f"{'--output_dir' if writing else '--download_dir'}.")
            self.reporter.error(model.name, outcome.message, "")
        except Exception as exc:  # noqa: BLE001 - a bug: that model's FAILED line, never a traceback
            outcome.ok = False
            log = self._log_unexpected(model, exc)
            outcome.message = (f"unexpected error ({type(exc).__name__}: {' '.join(str(exc).split())[:300]}). "
                               f"No IR was installed for {model.name}; this is a bug in omz_tools: please "
                               f"report it with the traceback in {log}.")
            self.reporter.error(model.name, outcome.message, "")
        finally:
            if not existed and not outcome.ok:
                _remove_empty(conv_dir, self.options.out_dir)  # a failed run leaves no empty model folder
        outcome.seconds = time.monotonic() - start
        self.reporter.model_end(model.name, outcome.ok, outcome.seconds, outcome.phases)
        return outcome

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

    @staticmethod
    def _unsupported(model: Model) -> str:
        # Frameworks the registry accepts (registries outlive tools) but nothing here converts.
        from omz_tools.registry.schema import MO_FRAMEWORKS
        if model.framework not in MO_FRAMEWORKS and not model.conversion_to_onnx_args:
            gone = " (openvino-dev 2024.6's Model Optimizer has no MXNet front end any more)" \
                if model.framework == "mxnet" else ""
            return (f"framework '{model.framework}' cannot be converted{gone}: Model Optimizer (openvino-dev "
                    f"2024.6) reads {', '.join(sorted(MO_FRAMEWORKS))} models, and pytorch and caffe2 ones "
                    f"through ONNX; the native backend reads caffe only. Convert the model to ONNX yourself and "
                    f"list it with framework: onnx, or use an older openvino-dev's omz_converter.")
        # Steps omz_converter has that this converter does not implement yet: say so, never guess.
        if model.conversion_to_onnx_args:
            return (f"models of framework '{model.framework}' are converted to ONNX first "
                    f"({model.converter_to_onnx}); this converter does not do that step yet. Use openvino-dev's "
                    f"omz_converter for this model.")
        if (model.config_dir / "pre-convert.py").exists():
            return (f"the model has a pre-convert script ({model.config_dir / 'pre-convert.py'}), which this "
                    f"converter does not run yet. Use openvino-dev's omz_converter for this model.")
        return ""

    def _dry_run(self, model: Model, precisions: list, backend: str, why: str) -> None:
        paths = self.paths(model)
        self.reporter.command(model.name, ["backend", backend, why], f"(DRY RUN) Backend: {backend} ({why})")
        if backend == "native":
            args = self.native_arguments(model, paths["tmp"] / "mo")
            self.reporter.command(model.name, ["omz_tools.convert.caffe.convert", *args],
                                  f"(DRY RUN) Native Caffe front end, in this process: omz_tools.convert.caffe."
                                  f"convert({mo_mod.command_string(args)})")
            source = "the native model"
        else:
            parser = self.caffe_parser_dir(build=False) if model.framework == "caffe" else None
            cmd = self.mo_command(model, paths["tmp"] / "mo", parser)
            self.reporter.command(model.name, cmd, f"(DRY RUN) Conversion command: {mo_mod.command_string(cmd)}")
            source = f"read_model({paths['tmp'] / 'mo' / model.name}.xml)"
        for precision in precisions:
            target = paths["conv_dir"] / precision / f"{model.name}.xml"
            self.reporter.command(
                model.name, ["openvino.save_model", source if backend == "native" else
                             str(paths["tmp"] / "mo" / f"{model.name}.xml"), str(target),
                             f"compress_to_fp16={precision.startswith('FP16')}"],
                f"(DRY RUN) {precision}: openvino.save_model({source}, "
                f"{target}, compress_to_fp16={precision.startswith('FP16')}), then checked against the model card")

    def _phase(self, model: Model, outcome: Outcome, name: str, detail: str = "") -> None:
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
        self._phase(model, outcome, "check", f"backend {backend} ({why})")
        try:
            self._check_inputs(model)
            keys = self.keys(model, precisions, backend)
            paths = self.paths(model)
            targets = {p: paths["conv_dir"] / p for p in precisions}

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
            from omz_tools.download.locks import LockTimeout, PathLock
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
                self.budget.acquire(estimate)
                try:
                    self._produce(model, precisions, keys, paths, targets, outcome)
                finally:
                    self.budget.release(estimate)
            finally:
                lock.release()
        finally:
            self._phase(model, outcome, "")

    def _check_inputs(self, model: Model) -> None:
        options = self.options
        problems = missing_inputs(model, options.download_dir)
        if problems and options.download:
            self.reporter.phase(model.name, "download", ", ".join(name for name, _ in problems))
            from omz_tools.download import download
            from omz_tools.download.space import FolderNotWritable, NotEnoughSpace
            try:
                result = download([model], output_dir=options.download_dir, **options.download_settings)
            except (ValueError, NotEnoughSpace, FolderNotWritable) as exc:
                raise ModelFailed(f"downloading its files failed: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - cache.py is imported only with a cache
                from omz_tools.download.cache import CacheError
                if not isinstance(exc, CacheError):
                    raise
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

    def _produce(self, model, precisions, keys, paths, targets, outcome) -> None:
        """backend run -> derive precisions -> verify -> install, in a scratch folder."""
        tmp = paths["tmp"]
        shutil.rmtree(tmp, ignore_errors=True)  # a stale one from an interrupted run
        paths["log"].unlink(missing_ok=True)
        try:
            if outcome.backend == "native":
                source, extra = self._run_native(model, paths, outcome)
            else:
                source, extra = self._run_mo(model, precisions, paths, outcome)
            self._derive_and_verify(model, precisions, source, tmp, targets, outcome)
            del source
            self._phase(model, outcome, "install")
            for precision in precisions:
                records.write(tmp / precision, keys[precision], model.name,
                              extra={"backend": outcome.backend, **extra,
                                     "figures": _figures_dict(outcome.figures)})
                install(tmp / precision, targets[precision], tmp)
                outcome.irs[precision] = targets[precision] / f"{model.name}.xml"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _run_mo(self, model, precisions, paths, outcome) -> tuple:
        """Model Optimizer, once, FP32: (the .xml it wrote, record extras)."""
        tmp, log = paths["tmp"], paths["log"]
        mo_dir = tmp / "mo"
        parser = self.caffe_parser_dir(build=True) if model.framework == "caffe" else None
        cmd = self.mo_command(model, mo_dir, parser)
        self._phase(model, outcome, "mo", "Model Optimizer, FP32")
        result = mo_mod.run_logged(cmd, log)
        if self.cancelled.is_set():
            raise Cancelled()
        outcome.mo_peak_rss = result.peak_rss_bytes
        xml, bin_ = mo_dir / f"{model.name}.xml", mo_dir / f"{model.name}.bin"
        if result.returncode != 0 or not (xml.is_file() and bin_.is_file()):
            tail = mo_mod.log_tail(log)
            what = (f"exited with code {result.returncode}" if result.returncode
                    else f"exited with code 0 but wrote no {xml.name}/{bin_.name}")
            errors = [line.strip() for line in tail.splitlines() if "[ ERROR ]" in line]
            reason = f" Its last error: {errors[-1]}." if errors else ""
            raise ModelFailed(
                f"Model Optimizer {what} after {result.seconds:.1f} s; no IR was written (the "
                f"{' and '.join(precisions)} folders are unchanged).{reason} Full log: {log} (it starts "
                f"with the command); check the model files and model_optimizer_args/--add_mo_arg.",
                detail=f"Last lines of the log:\n{_indent(tail)}")
        return xml, {"mo_seconds": round(result.seconds, 3), "mo_peak_rss_bytes": result.peak_rss_bytes}

    def _run_native(self, model, paths, outcome) -> tuple:
        """The native Caffe front end, in this process: (an openvino.Model, record extras)."""
        from omz_tools.convert import caffe, runtime
        args = self.native_arguments(model, paths["tmp"] / "mo")
        self._phase(model, outcome, "native", "native Caffe front end, FP32")
        began = time.monotonic()
        try:
            with runtime.LOCK:
                ov_model = caffe.convert(args)
        except caffe.CaffeConversionError as exc:
            raise ModelFailed(f"the native Caffe front end cannot convert it: {str(exc).rstrip('.')}. "
                              f"No IR was written.") from None
        except ImportError as exc:
            raise ModelFailed(f"the native Caffe front end needs the OpenVINO runtime in {sys.executable} "
                              f"({exc}); pip install openvino there.") from None
        except RuntimeError as exc:  # OpenVINO refused the graph built from the model
            raise ModelFailed(f"the native Caffe front end failed in OpenVINO: "
                              f"{' '.join(str(exc).split())[:500]}. No IR was written.") from None
        if self.cancelled.is_set():
            raise Cancelled()
        return ov_model, {"native_seconds": round(time.monotonic() - began, 3)}

    def _derive_and_verify(self, model, precisions, source, tmp, targets, outcome) -> None:
        """``source``: Model Optimizer's FP32 .xml, or the native front end's openvino.Model."""
        from omz_tools.convert import runtime
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            raise ModelFailed(f"cannot import the OpenVINO runtime in {sys.executable} ({exc}); it writes "
                              "FP16 and checks the IR. Install openvino there.") from None
        # One model at a time inside OpenVINO, on the process's one Core (see runtime.py: -j hung).
        with runtime.LOCK:
            self._derive_and_verify_locked(model, precisions, source, tmp, targets, outcome, runtime.core())

    def _derive_and_verify_locked(self, model, precisions, source, tmp, targets, outcome, core) -> None:
        import openvino as ov

        from omz_tools.convert import ircheck, rtinfo
        self._phase(model, outcome, "fp16", ", ".join(precisions))
        tmp.mkdir(parents=True, exist_ok=True)
        if isinstance(source, Path):
            sizes = ((source).stat().st_size, source.with_suffix(".bin").stat().st_size)
        else:  # the native model's weights are about the caffemodel's size
            sizes = (4096 * len(source.get_ops()), sum(f.size for f in model.files))
        what = "Model Optimizer's output" if isinstance(source, Path) else "the native front end's model"
        _check_room_to_save(model, precisions, sizes, tmp)
        try:
            ov_model = core.read_model(str(source)) if isinstance(source, Path) else source
            try:
                rtinfo.write_model_info(ov_model, model)
            except rtinfo.RtInfoError as exc:
                raise ModelFailed(f"{model.config_dir / 'model.yml'}: {exc}; fix the registry entry.") from None
            for precision in precisions:
                out_dir = tmp / precision
                out_dir.mkdir(parents=True, exist_ok=True)
                rtinfo.set_output_dir(ov_model, targets[precision])
                ov.save_model(ov_model, str(out_dir / f"{model.name}.xml"),
                              compress_to_fp16=precision.startswith("FP16"))
            del ov_model
            _check_room_to_save(model, precisions, sizes, tmp, saved=True)
        except (RuntimeError, ValueError) as exc:
            raise ModelFailed(f"reading {what} or saving it as "
                              f"{', '.join(precisions)} failed: {' '.join(str(exc).split())[:500]}") from None
        self._phase(model, outcome, "verify")
        problems_all = []
        figures = None
        for precision in precisions:
            xml = tmp / precision / f"{model.name}.xml"
            try:
                # Counts once (on FP32 when converted); names, shapes and an inference on each.
                figures_p, problems = ircheck.check_ir(model, xml, core, counts=figures is None)
            except RuntimeError as exc:
                problems = [f"OpenVINO cannot read or run it: {' '.join(str(exc).split())[:300]}"]
                figures_p = None
            figures = figures or figures_p
            problems_all += [f"{precision}: {p}" for p in problems]
        outcome.figures = figures
        if problems_all:
            raise ModelFailed(
                f"the converted IR does not match the registry entry ({model.config_dir / 'model.yml'}): "
                f"{'; '.join(problems_all)}. No IR was installed. Check the model files and "
                f"model_optimizer_args, or correct model_card if its figures are wrong.")


SAVE_MARGIN = 1 << 20  # bytes of slack on top of the estimate below


def _check_room_to_save(model, precisions: list, sizes: tuple, tmp: Path, saved: bool = False) -> None:
    """openvino.save_model does not report a full disk: it leaves the files cut short, which the
    IR check would then blame on the model. So compare the room it needs with the free space
    before saving: per precision up to twice the FP32 .xml (FP16 adds decompression nodes) plus
    its .bin (half of it for FP16), and a margin; and after saving (``saved``), a filesystem left
    with no free byte means the files were probably cut short. ``sizes``: (xml, bin) bytes of FP32."""
    xml_size, bin_size = sizes
    needed = SAVE_MARGIN + sum(2 * xml_size + (bin_size // 2 if p.startswith("FP16") else bin_size)
                               for p in precisions)
    free = shutil.disk_usage(tmp).free
    if (saved and free == 0) or (not saved and needed > free):
        from omz_tools.download.space import human_size
        raise ModelFailed(
            f"not enough disk space to save the {', '.join(precisions)} IR in {tmp.parent}: it needs about "
            f"{human_size(needed)} ({needed} bytes), {human_size(free)} ({free} bytes) is free there"
            f"{' after saving, so the files were probably cut short' if saved else ''}. No IR was "
            f"installed (the {' and '.join(precisions)} folders are unchanged). Free some space or "
            "choose another --output_dir.")


def _remove_empty(folder: Path, root: Path) -> None:
    """Remove ``folder`` and its parents up to ``root`` (excluded) while they are empty."""
    folder, root = Path(folder).absolute(), Path(root).absolute()
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _figures_dict(figures) -> Optional[dict]:
    if figures is None:
        return None
    return {"inputs": figures.inputs, "outputs": figures.outputs, "params": figures.params,
            "gflops": round(figures.gflops, 6)}


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines()) or "    (the log is empty)"


def install(staged: Path, target: Path, scratch: Path) -> None:
    """Move the ``staged`` IR folder to ``target``: the old folder goes aside first, so ``target``
    is at every moment either the old complete IR, absent, or the new complete IR. The staged
    files are fsynced first, so that after a crash the record never vouches for a cut-short IR."""
    from omz_tools.download.durable import fsync_dir, fsync_file

    for entry in staged.iterdir():
        if entry.is_file():
            fsync_file(entry)
    fsync_dir(staged)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = scratch / f"old-{target.name}"
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(staged, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


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
