"""The ovc backend's conversion, run in a child process of this interpreter (as Model Optimizer is).

    python -m omz_tools.convert.ovc_child REQUEST RESULT

Why a child: the conversion loads every OpenVINO front end (``convert_model`` tries each on the
file), torch for PyTorch models, and the source model's weights, none of which the converter needs
once the FP32 IR is on disk. In the converter's process they stayed for the rest of the run (every
later model of ``--all`` paid for them), and the IR check's compile came on top of them: the peak.
A front end that crashes on a malformed file now fails one model, not the whole run, and under
``-j`` conversions run side by side instead of one at a time behind ``runtime.LOCK``.

REQUEST: a pickle of :class:`Request`, written by :func:`write_request` in the conversion's own
scratch folder (same user, same package). The child exports PyTorch models to ONNX, checks the
files it is about to read (``inputs.check_read_paths``), converts (``ovc.convert``) and saves every
precision as the other backends' models are saved (``derive.save_precisions``), leaving the checks
to the parent. RESULT: JSON, ``{"ok": true, "torch_seconds": ...}`` or ``{"error": <kind>,
"message": ...}`` for the errors the parent words (:data:`KINDS`); anything else leaves a
traceback in the log and no RESULT.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

# The error kinds the child reports: the parent words each (see backends.run_ovc).
KINDS = ("conversion", "pytorch", "bound", "openvino", "no-openvino", "failed")


@dataclass
class Request:
    conversion: object         # ovc.Plan
    export: Optional[object]   # ovc_pytorch.Export, or None
    config_file: Path          # the model.yml, named in messages about the files read
    name: str                  # the model's name: <tmp>/<precision>/<name>.xml
    info: list                 # derive.model_info(model)
    precisions: List[str]
    tmp: Path                  # the conversion's scratch folder
    targets: Dict[str, Path]   # precision -> final folder (for rt_info)
    sizes: Tuple[int, int]     # estimated FP32 (xml, bin) bytes, for the disk-room check


def write_request(path: Path, request: Request) -> None:
    from omz_tools.localstate import atomic_write
    atomic_write(path, pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL), sync=False)


def _run(request: Request) -> dict:
    from omz_tools.convert import bounds, derive, inputs, ovc, ovc_pytorch
    from omz_tools.convert.outcome import ModelFailed
    result: dict = {"ok": True}
    try:
        if request.export is not None:
            began = time.monotonic()
            ovc_pytorch.export(request.export)
            result["torch_seconds"] = round(time.monotonic() - began, 3)
        conversion = request.conversion
        source = conversion.source  # and --input_model, which a text graph's source only links to
        named = [*(source if isinstance(source, list) else [source]), conversion.args.input_model]
        inputs.check_read_paths(request.config_file, [path for path in named if path])
        try:
            import openvino  # noqa: F401
        except ImportError as exc:
            return {"error": "no-openvino", "message": str(exc)}
        model = ovc.convert(conversion)
        try:
            derive.save_precisions(model, request.name, request.info, request.precisions, request.tmp,
                                   request.targets, request.sizes)
        except (RuntimeError, ValueError) as exc:
            return {"error": "failed", "message": f"saving openvino.convert_model's model as "
                                                  f"{', '.join(request.precisions)} failed: "
                                                  f"{' '.join(str(exc).split())[:500]}"}
    except ModelFailed as exc:  # no room on the disk for the IR
        return {"error": "failed", "message": str(exc)}
    except (ovc.FrameworkConversionError, ovc.MOArgumentError) as exc:
        return {"error": "conversion", "message": str(exc)}
    except ovc_pytorch.PyTorchExportError as exc:
        return {"error": "pytorch", "message": str(exc)}
    except bounds.BoundError as exc:
        return {"error": "bound", "message": str(exc)}
    except RuntimeError as exc:  # OpenVINO refused the preprocessing or the frozen values
        return {"error": "openvino", "message": " ".join(str(exc).split())[:500]}
    return result


def main(argv: list) -> int:
    request_path, result_path = (Path(a) for a in argv)
    with open(request_path, "rb") as stream:
        request = pickle.load(stream)
    result = _run(request)
    from omz_tools.localstate import atomic_write
    atomic_write(result_path, json.dumps(result).encode("utf-8"), sync=False)
    _end_telemetry()
    return 0 if result.get("ok") else 1


def _end_telemetry() -> None:
    """convert_model sends OpenVINO's telemetry (where the user has not opted out and CI is not
    set) from worker threads that Python joins at exit: offline, each waits out a 3 s timeout.
    End it as Model Optimizer and ovc end theirs, with force_shutdown(1.0): pending sends get up to
    a second, then stop."""
    telemetry = sys.modules.get("openvino_telemetry")
    if telemetry is not None:
        try:
            telemetry.Telemetry().force_shutdown(1.0)
        except Exception:  # noqa: BLE001 - telemetry must never fail a conversion
            pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
