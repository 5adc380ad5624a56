"""Step 1 of a conversion, the plan: which backend (``auto``: Model Optimizer when the chosen
interpreter has it, else the native Caffe front end), which precisions, which folders, the record key
each IR folder must hold, and the commands a dry run prints. Model Optimizer and the fast Caffe
parser are looked up once per run, and only if some model needs them."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Optional

from omz_tools.convert import mo as mo_mod
from omz_tools.convert import records
from omz_tools.convert.outcome import BACKENDS, DEFAULT_PRECISIONS, ModelFailed, Options
from omz_tools.convert.progress import Reporter
from omz_tools.errors import OmzError
from omz_tools.registry import Model
from omz_tools.version import pip_install


class Planner:
    """The plan of each model, with the run's settings; thread-safe."""

    def __init__(self, options: Options, reporter: Optional[Reporter] = None):
        self.options = options
        self.reporter = reporter or Reporter()
        self._mo: Optional[mo_mod.MOInfo] = None
        self._mo_error: Optional[str] = None
        self._parser_dir: Optional[Path] = None
        self._lock = threading.Lock()

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
        conv_dir = self.options.output_dir / model.subdirectory
        return {
            "conv_dir": conv_dir,
            "tmp": conv_dir / f".omz_convert.{model.name}.tmp",
            "log": conv_dir / f".omz_convert.{model.name}.log",
            "lock": conv_dir / f".omz_convert.{model.name}.lock",
        }

    def mo_command(self, model: Model, ir_dir: Path, parser_dir: Optional[Path]) -> list:
        return mo_mod.mo_arguments(model, download_dir=self.options.download_dir,
                                   output_dir=self.options.output_dir, ir_dir=ir_dir, mo=self.mo_info(),
                                   compress_to_fp16=False, extra_args=self.options.extra_mo_args,
                                   caffe_parser_dir=parser_dir)

    def native_arguments(self, model: Model, ir_dir: Path) -> list:
        """The MO arguments the native front end takes (no interpreter, no parser path)."""
        try:
            args = mo_mod.model_arguments(model, download_dir=self.options.download_dir,
                                          output_dir=self.options.output_dir, ir_dir=ir_dir, mo=None,
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
        if choice == "ovc":
            return "ovc", "--backend ovc"
        if choice == "auto" and model.framework == "pytorch" and self.options.mo is None:
            return "ovc", "auto: the PyTorch model is exported to ONNX with torch (Model Optimizer cannot)"
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
            return ("native" if model.framework == "caffe" else "ovc"), \
                f"auto: {self.options.python or sys.executable} has no Model Optimizer"
        return "mo", f"auto: Model Optimizer {mo.mo_version} of {mo.python}"

    def keys(self, model: Model, precisions: list, backend: str = "mo") -> dict:
        """The record key each IR folder must hold to be up to date."""
        conv_dir = self.paths(model)["conv_dir"]
        if backend == "ovc":
            from omz_tools.convert import ovc
            cmd = self.ovc_arguments(model, conv_dir / "FP32")
            versions = ovc.versions(model.framework)
        elif backend == "native":
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

    def ovc_arguments(self, model: Model, ir_dir: Path) -> list:
        """The MO arguments the ovc backend translates; ModelFailed for one only MO honours."""
        from omz_tools.convert import ovc
        why = ovc.refusal(model.framework) or ovc.needs_mo(list(model.mo_args or []) +
                                                           list(self.options.extra_mo_args))
        if why:
            raise ModelFailed(f"{why}.")
        return self.native_arguments(model, ir_dir)

    @staticmethod
    def unsupported(model: Model, backend: str = "mo") -> str:
        # Registry arguments that would choose where output goes, refused for every backend.
        from omz_tools.convert import outputargs
        for key, why in (("model_optimizer_args", outputargs.refusal(model.mo_args or [])),
                         ("conversion_to_onnx_args", outputargs.onnx_refusal(model.conversion_to_onnx_args or []))):
            if why:
                return (f"{model.config_dir / 'model.yml'}: {key}: {why}. Where the IR is written is the "
                        f"converter's choice (-o, and files named after the model); nothing was converted. "
                        f"Remove the argument from the model.yml.")
        # Frameworks the registry accepts (registries outlive tools) but nothing here converts.
        from omz_tools.registry.schema import MO_FRAMEWORKS
        if backend == "ovc":
            from omz_tools.convert import ovc
            why = ovc.refusal(model.framework)
            return f"{why}." if why else Planner._pre_convert(model)
        if model.framework not in MO_FRAMEWORKS and not model.conversion_to_onnx_args:
            gone = " (openvino-dev 2024.6's Model Optimizer has no MXNet front end any more)" \
                if model.framework == "mxnet" else ""
            return (f"framework '{model.framework}' cannot be converted{gone}: Model Optimizer (openvino-dev "
                    f"2024.6) reads {', '.join(sorted(MO_FRAMEWORKS))} models, and pytorch and caffe2 ones "
                    f"through ONNX; the native backend reads caffe only. Convert the model to ONNX yourself and "
                    f"list it with framework: onnx, or use an older openvino-dev's omz_converter.")
        # Steps omz_converter has that this converter does not implement yet: say so, never guess.
        if model.conversion_to_onnx_args:
            if model.framework == "pytorch":
                return (f"models of framework '{model.framework}' are converted to ONNX first "
                        f"({model.converter_to_onnx}); the mo backend does not do that step: convert with "
                        f"--backend ovc (it needs torch: {pip_install('pytorch')}).")
            return (f"models of framework '{model.framework}' are converted to ONNX first "
                    f"({model.converter_to_onnx}); this converter does not do that step yet. Use openvino-dev's "
                    f"omz_converter for this model.")
        return Planner._pre_convert(model)

    @staticmethod
    def _pre_convert(model: Model) -> str:
        if (model.config_dir / "pre-convert.py").exists():
            return (f"the model has a pre-convert script ({model.config_dir / 'pre-convert.py'}), which this "
                    f"converter does not run yet. Use openvino-dev's omz_converter for this model.")
        return ""

    def ovc_plan(self, model: Model, tmp: Path):
        """The ovc backend's plan of ``model`` (ModelFailed for what it cannot honour)."""
        from omz_tools.convert import ovc
        args = self.ovc_arguments(model, tmp / "mo")
        try:
            return ovc.plan(model.framework, args, tmp)
        except OmzError as exc:  # MOArgumentError, FrameworkConversionError
            raise ModelFailed(f"{str(exc).rstrip('.')} ({model.config_dir / 'model.yml'}). No IR was written.") \
                from None

    def _dry_run_ovc(self, model: Model, paths: dict) -> None:
        conversion = self.ovc_plan(model, paths["tmp"])
        if model.conversion_to_onnx_args:
            from omz_tools.convert import ovc_pytorch
            export = ovc_pytorch.plan(model, self.options.download_dir, self.options.output_dir)
            self.reporter.command(model.name, ["torch.onnx.export", export.call()],
                                  f"(DRY RUN) PyTorch to ONNX, in a child process: {export.call()}")
        call = conversion.call()
        self.reporter.command(model.name, [call], f"(DRY RUN) Conversion, in a child process: {call}")
        steps = conversion.steps()
        self.reporter.command(model.name, ["steps", *steps],
                              f"(DRY RUN) Then: {'; '.join(steps) if steps else 'no preprocessing'}")

    def dry_run(self, model: Model, precisions: list, backend: str, why: str) -> None:
        paths = self.paths(model)
        self.reporter.command(model.name, ["backend", backend, why], f"(DRY RUN) Backend: {backend} ({why})")
        if backend == "ovc":
            self._dry_run_ovc(model, paths)
            source = "the converted model"
        elif backend == "native":
            args = self.native_arguments(model, paths["tmp"] / "mo")
            from omz_tools.convert.caffe import mo_args
            mo_args.parse(args)  # an argument the conversion would refuse fails the dry run the same way
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
                model.name, ["openvino.save_model", source if backend != "mo" else
                             str(paths["tmp"] / "mo" / f"{model.name}.xml"), str(target),
                             f"compress_to_fp16={precision.startswith('FP16')}"],
                f"(DRY RUN) {precision}: openvino.save_model({source}, "
                f"{target}, compress_to_fp16={precision.startswith('FP16')}), then checked against the model card")
