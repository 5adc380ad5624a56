"""The ovc backend's conversion, in a child process (as Model Optimizer runs in one).

Why a child: the conversion loads every OpenVINO front end (``convert_model`` tries each on the
file), torch for PyTorch models, and the source model's weights, none of which the converter needs
once the IR is on disk. In the converter's process they stayed for the rest of the run (every
later model of ``--all`` paid for them), and the IR check's compile came on top of them: the peak.
A front end that crashes on a malformed file now fails one model, not the whole run, and under
``-j`` conversions run side by side instead of one at a time behind ``runtime.LOCK``.

Why a fork server: a fresh interpreter per model pays for Python and ``import openvino`` each time
(0.4-0.5 s, half of a small model's conversion). :class:`Server` is ``python -m
omz_tools.convert.ovc_child``: it imports openvino once, then for each request read from its stdin
(one JSON line: request, result and log paths) forks a child, which runs :func:`convert_request`
with its output appended to the model's log and exits; the server answers one JSON line (the
child's exit code, negative for a signal, and its ru_maxrss). It forks from its one Python thread;
importing openvino leaves only idle helper threads (OpenBLAS's; telemetry's sender, which
convert_model makes anew in the child). The converter keeps one server per ``-j`` slot (:func:`run`).

REQUEST: a pickle of :class:`Request`, written by :func:`write_request` in the conversion's own
scratch folder (same user, same package). The child exports PyTorch models to ONNX, checks the
files it is about to read (``inputs.check_read_paths``), converts (``ovc.convert``) and saves every
precision as the other backends' models are saved (``derive.save_precisions``), leaving the checks
to the converter. RESULT: JSON, ``{"ok": true, "torch_seconds": ...}`` or ``{"error": <kind>,
"message": ...}`` for the errors the converter words (:data:`KINDS`); anything else leaves a
traceback in the log and no RESULT.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import sys
import threading
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


def convert_request(request_path: Path, result_path: Path) -> int:
    """Run one REQUEST, write its RESULT; the exit code (0 when converted)."""
    with open(request_path, "rb") as stream:
        request = pickle.load(stream)
    result = _run(request)
    from omz_tools.localstate import atomic_write
    atomic_write(result_path, json.dumps(result).encode("utf-8"), sync=False)
    _end_telemetry()
    return 0 if result.get("ok") else 1


def _end_telemetry() -> None:
    """convert_model sends OpenVINO's telemetry (where the user has not opted out and CI is not
    set) from worker threads, each waiting up to 3 s offline. End it as Model Optimizer and ovc end
    theirs, with force_shutdown(1.0): pending sends get up to a second before the child exits."""
    telemetry = sys.modules.get("openvino_telemetry")
    if telemetry is not None:
        try:
            telemetry.Telemetry().force_shutdown(1.0)
        except Exception:  # noqa: BLE001 - telemetry must never fail a conversion
            pass


def serve() -> None:
    """The fork server's loop (see the module's docstring); ends when its stdin closes."""
    import traceback
    try:
        import openvino  # noqa: F401 - once, for every child it forks
    except ImportError:
        pass  # each child reports it ("no-openvino")
    for line in sys.stdin:
        order = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                log = os.open(order["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                null = os.open(os.devnull, os.O_RDONLY)
                os.dup2(null, 0)
                os.dup2(log, 1)
                os.dup2(log, 2)
                code = convert_request(Path(order["request"]), Path(order["result"]))
            except BaseException:  # noqa: BLE001 - a bug: its traceback in the model's log
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status, usage = os.wait4(pid, 0)
        answer = {"code": os.waitstatus_to_exitcode(status), "peak": usage.ru_maxrss * 1024}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


class Server:
    """One fork server (``python -m omz_tools.convert.ovc_child``), started on first use."""

    def __init__(self) -> None:
        import subprocess
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "omz_tools.convert.ovc_child"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
                                     start_new_session=True)
        self.pid = self.proc.pid  # for mo.terminate_all, which kills the process group

    def convert(self, request: Path, result: Path, log: Path) -> Tuple[Optional[int], int]:
        """(exit code, negative for a signal, or None if the server died; the child's peak RSS)."""
        try:
            self.proc.stdin.write(json.dumps({"request": str(request), "result": str(result),
                                              "log": str(log)}) + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline()
        except (OSError, ValueError):
            answer = ""
        if not answer:
            return None, 0
        parsed = json.loads(answer)
        return int(parsed["code"]), int(parsed["peak"])

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001 - at exit: kill what does not end
            self.proc.kill()


_idle: List[Server] = []
_idle_lock = threading.Lock()
_closing_at_exit = False


def run(request: Path, result: Path, log: Path):
    """Convert one REQUEST in a fork server's child: ``mo.RunResult`` (exit code, seconds, peak RSS)."""
    global _closing_at_exit
    from omz_tools.convert import mo
    with _idle_lock:
        server = _idle.pop() if _idle else None
        if not _closing_at_exit:
            atexit.register(_close_all)
            _closing_at_exit = True
    server = server or Server()
    start = time.monotonic()
    with mo.tracked(server):
        try:
            code, peak = server.convert(request, result, log)
        except BaseException:
            mo.kill_group(server.proc)  # interrupted: the server and its child go
            raise
    seconds = time.monotonic() - start
    if code is not None and server.alive():
        with _idle_lock:
            _idle.append(server)
    else:
        mo.kill_group(server.proc)
    return mo.RunResult(-9 if code is None else code, seconds, peak, log)


def _close_all() -> None:
    with _idle_lock:
        servers, _idle[:] = list(_idle), []
    for server in servers:
        server.close()


if __name__ == "__main__":
    serve()
