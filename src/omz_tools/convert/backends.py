"""Step 3 of a conversion, the backend run (FP32, once): Model Optimizer in a process of its own,
writing into ``<conv_dir>/.omz_convert.<name>.tmp/mo`` with its output in a log file; or the
native Caffe front end (``convert.caffe``) or openvino.convert_model (``ovc``) in this process,
giving an ``openvino.Model``.
``conv`` is the run's :class:`~omz_tools.convert.engine.Converter`."""

from __future__ import annotations

import sys
import time

from omz_tools.convert import mo as mo_mod
from omz_tools.convert import outputargs
from omz_tools.convert.inputs import check_named_files, check_read_paths
from omz_tools.convert.install import _indent
from omz_tools.convert.outcome import Cancelled, ModelFailed


def run_mo(conv, model, precisions, paths, outcome) -> tuple:
    """Model Optimizer, once, FP32: (the .xml it wrote, record extras)."""
    tmp, log = paths["tmp"], paths["log"]
    mo_dir = tmp / "mo"
    parser = conv.caffe_parser_dir(build=True) if model.framework == "caffe" else None
    cmd = conv.mo_command(model, mo_dir, parser)
    check_named_files(model, cmd)  # before MO reads them: regular files, within bounds
    conv.phase(model, outcome, "mo", "Model Optimizer, FP32")
    result = mo_mod.run_logged(cmd, log)
    if conv.cancelled.is_set():
        raise Cancelled()
    outcome.mo_peak_rss = result.peak_rss_bytes
    named = outputargs.model_name(cmd, model.name)  # MO names its files after its last --model_name
    xml, bin_ = mo_dir / f"{named}.xml", mo_dir / f"{named}.bin"
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

def run_native(conv, model, paths, outcome) -> tuple:
    """The native Caffe front end, in this process: (an openvino.Model, record extras)."""
    from omz_tools.convert import caffe, runtime
    args = conv.native_arguments(model, paths["tmp"] / "mo")
    conv.phase(model, outcome, "native", "native Caffe front end, FP32")
    began = time.monotonic()
    notes: list = []
    try:
        with runtime.LOCK:
            ov_model = caffe.convert(args, notes)
    except caffe.CaffeConversionError as exc:
        raise ModelFailed(f"the native Caffe front end cannot convert it: {str(exc).rstrip('.')}. "
                          f"No IR was written.") from None
    except ImportError as exc:
        raise ModelFailed(f"the native Caffe front end needs the OpenVINO runtime in {sys.executable} "
                          f"({exc}); pip install openvino there.") from None
    except RuntimeError as exc:  # OpenVINO refused the graph built from the model
        raise ModelFailed(f"the native Caffe front end failed in OpenVINO: "
                          f"{' '.join(str(exc).split())[:500]}. No IR was written.") from None
    if conv.cancelled.is_set():
        raise Cancelled()
    for note in notes:  # said as a detail of the phase that produced it; the phase timing goes on
        conv.reporter.phase(model.name, "native", note)
    return ov_model, {"native_seconds": round(time.monotonic() - began, 3)}


def run_ovc(conv, model, paths, outcome) -> tuple:
    """openvino.convert_model in this process (PyTorch exported to ONNX first): (an openvino.Model, extras)."""
    from omz_tools.convert import ovc, runtime
    conversion = conv.ovc_plan(model, paths["tmp"])
    began = time.monotonic()
    extra = {}
    if model.conversion_to_onnx_args:
        from omz_tools.convert import ovc_pytorch
        conv.phase(model, outcome, "torch", "PyTorch to ONNX")
        export = ovc_pytorch.plan(model, conv.options.download_dir, conv.options.output_dir)
        try:
            ovc_pytorch.export(export)
        except ovc_pytorch.PyTorchExportError as exc:
            raise ModelFailed(f"{str(exc).rstrip('.')}. No IR was written.") from None
        extra["torch_seconds"] = round(time.monotonic() - began, 3)
    conv.phase(model, outcome, "ovc", f"openvino.convert_model, FP32 ({model.framework})")
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise ModelFailed(f"the ovc backend needs the OpenVINO runtime in {sys.executable} ({exc}); "
                          "pip install openvino there.") from None
    source = conversion.source  # and --input_model, which a text graph's source only links to
    named = [*(source if isinstance(source, list) else [source]), conversion.args.input_model]
    check_read_paths(model, [path for path in named if path])  # before OpenVINO reads them
    try:
        with runtime.LOCK:
            ov_model = ovc.convert(conversion)
    except (ovc.FrameworkConversionError, ovc.MOArgumentError) as exc:
        raise ModelFailed(f"{str(exc).rstrip('.')} ({model.config_dir / 'model.yml'}). No IR was written.") from None
    except RuntimeError as exc:  # OpenVINO refused the preprocessing or the frozen values
        raise ModelFailed(f"OpenVINO failed after reading the model: {' '.join(str(exc).split())[:500]}. "
                          f"No IR was written.") from None
    if conv.cancelled.is_set():
        raise Cancelled()
    return ov_model, {**extra, "ovc_seconds": round(time.monotonic() - began, 3)}
