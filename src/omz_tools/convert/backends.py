"""Step 3 of a conversion, the backend run (FP32, once): Model Optimizer in a process of its own,
writing into ``<conv_dir>/.omz_convert.<name>.tmp/mo`` with its output in a log file; or
openvino.convert_model (``ovc``), likewise in a child process (``ovc_child``), into ``.../ovc``;
or the native Caffe front end (``convert.caffe``) in this process, giving an ``openvino.Model``.
``conv`` is the run's :class:`~omz_tools.convert.engine.Converter`."""

from __future__ import annotations

import importlib
import sys
import threading
import time

from omz_tools.convert import mo as mo_mod
from omz_tools.convert import outputargs
from omz_tools.convert.inputs import check_named_files
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


def run_ovc(conv, model, precisions, paths, outcome) -> tuple:
    """openvino.convert_model (PyTorch exported to ONNX first) in a child process that also saves
    every precision into ``<tmp>/<precision>`` (see ovc_child for why): (derive.Saved(), extras)."""
    from omz_tools.convert import derive, ovc_child
    tmp, log = paths["tmp"], paths["log"]
    conversion = conv.ovc_plan(model, tmp)
    export = None
    if model.conversion_to_onnx_args:
        from omz_tools.convert import ovc_pytorch
        export = ovc_pytorch.plan(model, conv.options.download_dir, conv.options.output_dir)
    targets = {p: paths["conv_dir"] / p for p in precisions}
    sizes = (1 << 20, sum(f.size for f in model.files))  # the weights are about the model files' size
    request, result_file = tmp / "ovc" / "request.pickle", tmp / "ovc" / "result.json"
    request.parent.mkdir(parents=True, exist_ok=True)
    ovc_child.write_request(request, ovc_child.Request(
        conversion, export, model.config_dir / "model.yml", model.name, derive.model_info(model),
        list(precisions), tmp, targets, sizes))
    steps = (("PyTorch to ONNX, then " if export else "") + f"openvino.convert_model ({model.framework}), "
             f"saved as {', '.join(precisions)}")
    conv.phase(model, outcome, "ovc", steps)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as stream:
        stream.write(f"$ {conversion.call()} (in a child process; then saved as {', '.join(precisions)})\n".encode())
    # The check after it needs openvino in this process: imported meanwhile, on the other core.
    threading.Thread(target=_import_quietly, args=("openvino",), daemon=True).start()
    result = ovc_child.run(request, result_file, log)
    if conv.cancelled.is_set():
        raise Cancelled()
    answer = _child_answer(result_file)
    error, message = answer.get("error"), str(answer.get("message", ""))
    if error == "bound":
        from omz_tools.convert import bounds
        raise bounds.BoundError(message)
    if error == "conversion":
        raise ModelFailed(f"{message.rstrip('.')} ({model.config_dir / 'model.yml'}). No IR was written.")
    if error == "pytorch":
        raise ModelFailed(f"{message.rstrip('.')}. No IR was written.")
    if error == "openvino":
        raise ModelFailed(f"OpenVINO failed after reading the model: {message}. No IR was written.")
    if error == "no-openvino":
        raise ModelFailed(f"the ovc backend needs the OpenVINO runtime in {sys.executable} ({message}); "
                          "pip install openvino there.")
    if error == "failed":
        raise ModelFailed(message)
    saved = all((tmp / p / f"{model.name}{ext}").is_file() for p in precisions for ext in (".xml", ".bin"))
    if result.returncode != 0 or not answer.get("ok") or not saved:
        tail = mo_mod.log_tail(log)
        how = (f"was killed by signal {-result.returncode}" if result.returncode < 0
               else f"exited with code {result.returncode}")
        raise ModelFailed(
            f"the ovc conversion (a child process: {steps}) {how} after {result.seconds:.1f} s"
            f"{'' if answer else ' without a result'}; no IR was written. Full log: {log}. A signal "
            f"or a traceback there is a crash of OpenVINO or torch on this model (try --backend mo), or "
            f"a bug of omz_tools to report.", detail=f"Last lines of the log:\n{_indent(tail)}")
    extras = {"ovc_seconds": round(result.seconds, 3), "ovc_peak_rss_bytes": result.peak_rss_bytes}
    if "torch_seconds" in answer:
        extras["torch_seconds"] = answer["torch_seconds"]
    return derive.Saved(), extras


def _import_quietly(name: str) -> None:
    try:
        importlib.import_module(name)
    except ImportError:
        pass  # said where it is needed (derive)


def _child_answer(path) -> dict:
    """The child's RESULT (see ovc_child), or {} when it left none (it crashed or was killed)."""
    import json
    try:
        answer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return answer if isinstance(answer, dict) else {}
