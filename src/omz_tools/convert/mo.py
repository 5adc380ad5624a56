"""Finding Model Optimizer, building its command line, running it.

Commands are argument lists (never a shell). The command layout follows openvino-dev's
omz_converter: ``python -- mo --framework=... --output_dir=... --model_name=... <model args>``,
with the registry's ``$dl_dir``, ``$conv_dir``, ``$config_dir``, ``$mo_dir``, ``$mo_ext_dir``
expanded, plus an explicit ``--compress_to_fp16`` (MO 2024 defaults to True).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import string
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from omz_tools.errors import OmzError
from omz_tools.registry import Model

# Run with the target Python: where MO lives and which versions it would use. Only package
# metadata is read (importing openvino would cost a second on every run).
_PROBE = r"""
import importlib.metadata as md, importlib.util, json, os, sys
def version(name):
    try:
        return md.version(name)
    except Exception:
        return None
mo_dir = None
try:
    spec = importlib.util.find_spec("openvino")
except Exception:
    spec = None
for location in (spec.submodule_search_locations or []) if spec else []:
    candidate = os.path.join(location, "tools", "mo")
    if os.path.isfile(os.path.join(candidate, "__init__.py")) or os.path.isdir(candidate):
        mo_dir = candidate
        break
print(json.dumps({"mo_dir": mo_dir, "openvino_dev": version("openvino-dev"),
                  "openvino": version("openvino"), "protobuf": version("protobuf"),
                  "python": sys.version.split()[0], "prefix": sys.prefix}))
"""


class MOError(OmzError):
    """Model Optimizer cannot be found or used; the message is for the user."""


@dataclass(frozen=True)
class MOInfo:
    python: str
    cmd_prefix: tuple  # e.g. (python, "--", ".../bin/mo")
    mo_dir: Path  # the openvino.tools.mo package folder ($mo_dir)
    mo_version: str
    openvino_version: str
    protobuf_version: str
    python_version: str
    prefix: str = ""  # sys.prefix of that interpreter: its environment (a venv's folder)

    @property
    def interpreter_id(self) -> str:
        """The interpreter by identity, for records: its environment and version. `.venv/bin/python`,
        `.venv/bin/python3` (the console scripts' shebang) and `sys.executable` of a script are one
        interpreter; two venvs, or two Python versions, are two."""
        return f"python {self.python_version} in {self.prefix or Path(self.python).parent.parent}"

    @property
    def mo_ext_dir(self) -> Path:
        extensions = self.mo_dir / "extensions"
        return extensions if extensions.exists() else self.mo_dir

    def versions(self) -> dict:
        return {"mo": self.mo_version, "openvino": self.openvino_version,
                "protobuf": self.protobuf_version, "python": self.python_version}


def _is_this_interpreter(python: str) -> bool:
    # Not Path.resolve(): a venv's python is a symlink to the base interpreter, yet another environment.
    this = Path(sys.executable).absolute()
    other = Path(python).absolute()
    if other == this:
        return True
    try:
        return other.parent == this.parent and os.path.samefile(other, this)
    except OSError:
        return False


def _probe(python: str) -> dict:
    if _is_this_interpreter(python):
        import contextlib
        import io
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(_PROBE, "<omz_tools mo probe>", "exec"), {})
        return json.loads(out.getvalue())
    try:
        result = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=120)
    except OSError as exc:
        raise MOError(f"Cannot run the Python interpreter {python} to look for Model Optimizer: "
                      f"{exc.strerror or exc}. Pass an existing interpreter with -p/--python.") from None
    if result.returncode != 0:
        tail = " ".join(result.stderr.strip().splitlines()[-3:])
        raise MOError(f"The Python interpreter {python} failed while looking for Model Optimizer "
                      f"(exit code {result.returncode}): {tail}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def find_mo(python: Optional[os.PathLike] = None, mo: Optional[os.PathLike] = None) -> MOInfo:
    """Locate Model Optimizer for ``python`` (default: this interpreter): ``--mo`` if given, else
    the ``mo`` script beside the interpreter, else ``python -m openvino.tools.mo``. (omz_converter
    takes the ``mo`` on PATH, which may belong to another environment than ``-p``.)"""
    python = str(python or sys.executable)
    if os.sep not in python:  # a bare name such as "python3": the one on PATH
        python = shutil.which(python) or python
    info = _probe(python)
    if mo is not None:
        mo_path = Path(mo)
        if not mo_path.is_file():
            raise MOError(f"Model Optimizer not found: --mo {mo_path} does not exist. Pass the path of "
                          "the 'mo' script (or mo.py) of openvino-dev, or leave --mo out to use the one "
                          f"installed for {python}.")
    else:
        # The 'mo' of that interpreter's environment; else `python -m openvino.tools.mo`.
        beside = Path(python).parent / "mo"
        mo_path = beside if beside.is_file() else None
    mo_dir = info.get("mo_dir")
    if mo_path is not None and str(mo_path).lower().endswith(".py") and mo_dir is None:
        mo_dir = str(Path(mo_path).resolve().parent)  # a source checkout's mo.py
    if mo_dir is None:
        raise MOError(f"Model Optimizer not found: the Python interpreter {python} has no openvino.tools.mo "
                      "package (openvino-dev). Install it there (pip install openvino-dev==2024.6.0), or "
                      "pass another interpreter with -p/--python or the MO script with --mo.")
    prefix = (python, "--", str(Path(mo_path).absolute())) if mo_path is not None else \
        (python, "-m", "openvino.tools.mo")
    return MOInfo(python=python, cmd_prefix=prefix, mo_dir=Path(mo_dir),
                  mo_version=info.get("openvino_dev") or "unknown",
                  openvino_version=info.get("openvino") or "unknown",
                  protobuf_version=info.get("protobuf") or "unknown",
                  python_version=info.get("python") or "unknown",
                  prefix=str(Path(info["prefix"]).absolute()) if info.get("prefix") else "")


def template_variables(model: Model, download_dir: Path, output_dir: Path, mo: Optional[MOInfo]) -> dict:
    """The registry's ``$`` variables; without ``mo`` (the native backend) no ``$mo_dir``/``$mo_ext_dir``."""
    variables = {
        "config_dir": str(model.config_dir),
        "conv_dir": str(Path(output_dir) / model.subdirectory),
        "dl_dir": str(Path(download_dir) / model.subdirectory),
    }
    if mo is not None:
        variables.update(mo_dir=str(mo.mo_dir), mo_ext_dir=str(mo.mo_ext_dir))
    return variables


def model_arguments(model: Model, *, download_dir: Path, output_dir: Path, ir_dir: Path, mo: Optional[MOInfo],
                    compress_to_fp16: bool) -> list:
    """The MO arguments for ``model`` without the interpreter/script prefix, the parser path and
    extra arguments (what the native front end takes too). KeyError names a ``$variable`` that
    only Model Optimizer has when ``mo`` is None."""
    variables = template_variables(model, download_dir, output_dir, mo)
    args = [string.Template(arg).substitute(variables) for arg in model.mo_args or []]
    framework = "onnx" if model.conversion_to_onnx_args else model.framework
    cmd = [f"--framework={framework}", f"--output_dir={ir_dir}", f"--model_name={model.name}"]
    names = [i.name for i in model.input_info]
    if names:
        cmd.append("--input=" + ",".join(names))
    cmd += args
    layouts = ",".join(f"{i.name}({i.layout})" for i in model.input_info if i.layout)
    shapes = ",".join(str(i.shape) for i in model.input_info if i.shape)
    if layouts:
        cmd.append(f"--layout={layouts}")
    if shapes:
        cmd.append(f"--input_shape={shapes}")
    cmd.append(f"--compress_to_fp16={compress_to_fp16}")
    return cmd


def mo_arguments(model: Model, *, download_dir: Path, output_dir: Path, ir_dir: Path, mo: MOInfo,
                 compress_to_fp16: bool, extra_args: Sequence[str] = (),
                 caffe_parser_dir: Optional[Path] = None) -> list:
    """The full MO command for ``model``, writing ``<ir_dir>/<name>.xml|.bin``."""
    cmd = [*mo.cmd_prefix, *model_arguments(model, download_dir=download_dir, output_dir=output_dir, ir_dir=ir_dir,
                                            mo=mo, compress_to_fp16=compress_to_fp16)]
    given = list(model.mo_args or []) + list(extra_args)
    if caffe_parser_dir is not None and cmd[len(mo.cmd_prefix)] == "--framework=caffe" and \
            not any(a.startswith("--caffe_parser_path") for a in given):
        cmd.append(f"--caffe_parser_path={caffe_parser_dir}")
    cmd += list(extra_args)
    return cmd


def command_string(cmd: Sequence[str]) -> str:
    """A copy-pasteable rendering of an argument list (for logs and --dry_run)."""
    import shlex
    return " ".join(shlex.quote(str(part)) for part in cmd)


@dataclass
class RunResult:
    returncode: int
    seconds: float
    peak_rss_bytes: int  # the command's own peak resident set (0 if unknown)
    log: Path


_active: set = set()  # running MO processes, killed on Ctrl+C with -j
_active_lock = threading.Lock()


def terminate_all() -> None:
    """Kill every running MO (their threads, blocked in wait4, then return)."""
    with _active_lock:
        procs = list(_active)
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# Starts the command from a small fresh process and reports its ru_maxrss: Linux carries a process's
# high-water mark across exec, so a command forked straight from the converter (grown by the models
# it converted) would report the converter's RSS instead of its own peak. Exits as the command did.
_LAUNCHER = r"""
import os, signal, sys
peak_file, argv = sys.argv[1], sys.argv[2:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, f"cannot start: {exc}\n".encode())
    os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(peak_file, "w") as stream:
    stream.write(str(usage.ru_maxrss))
code = os.waitstatus_to_exitcode(status)
if code < 0:  # die of the same signal (SIGKILL's handler cannot be set, nor needs to be)
    try:
        signal.signal(-code, signal.SIG_DFL)
    except (OSError, ValueError):
        pass
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def run_logged(cmd: Sequence[str], log: Path, env: Optional[dict] = None) -> RunResult:
    """Run ``cmd`` with stdout+stderr appended to ``log``; report its own peak RSS (see _LAUNCHER)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ if env is None else env)
    env.setdefault("PYTHONUNBUFFERED", "1")
    peak_file = log.with_name(log.name + ".peak")
    peak_file.unlink(missing_ok=True)
    start = time.monotonic()
    with open(log, "ab") as stream:
        stream.write(f"$ {command_string(cmd)}\n".encode())
        stream.flush()
        try:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _LAUNCHER, str(peak_file), *map(str, cmd)],
                                    stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        except OSError as exc:
            stream.write(f"cannot start: {exc}\n".encode())
            return RunResult(127, 0.0, 0, log)
        with tracked(proc):
            try:
                _, status, _ = os.wait4(proc.pid, 0)
            except ChildProcessError:  # reaped elsewhere (killed on interrupt)
                return RunResult(-9, time.monotonic() - start, 0, log)
            except BaseException:
                # Interrupted (Ctrl+C) or any other error: do not leave MO running on its own.
                kill_group(proc)
                raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    try:
        peak = int(peak_file.read_text()) * (1 if sys.platform == "darwin" else 1024)
        peak_file.unlink()
    except (OSError, ValueError):  # the launcher itself was killed
        peak = 0
    return RunResult(proc.returncode, time.monotonic() - start, peak, log)


@contextlib.contextmanager
def tracked(proc):
    """While the block runs, :func:`terminate_all` kills ``proc``'s process group (it has a ``pid``)."""
    with _active_lock:
        _active.add(proc)
    try:
        yield
    finally:
        with _active_lock:
            _active.discard(proc)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM ``proc``'s process group, then SIGKILL if it is still there after 5 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def log_tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
