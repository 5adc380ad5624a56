"""Child processes of the converter (Model Optimizer, the ovc backend's conversion): the peak memory
they report is their own, their exit (code or signal) is kept, and an ovc child that crashes fails
its model in one message, with nothing installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from test_hostile_ovc import register
from test_hostile_caffe import convert, failed_line

MIB = 1 << 20

# The parent grows to 400 MiB (touched), then runs a child that touches 60 MiB.
_BLOATED_PARENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from omz_tools.convert import mo
    ballast = bytearray(400 << 20)
    ballast[::4096] = b"\\1" * len(ballast[::4096])
    child = "x = bytearray(60 << 20); x[::4096] = b'\\\\1' * len(x[::4096])"
    result = mo.run_logged([sys.executable, "-c", child], Path(sys.argv[1]))
    print(result.returncode, result.peak_rss_bytes)
""")


def test_the_peak_is_the_commands_own_not_the_converters(tmp_path):
    # Linux keeps ru_maxrss across exec: forked straight from a 400 MiB converter, the command
    # reported >= 400 MiB whatever it used itself.
    proc = subprocess.run([sys.executable, "-c", _BLOATED_PARENT, str(tmp_path / "log")], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    code, peak = map(int, proc.stdout.split())
    assert code == 0
    assert 60 * MIB <= peak < 120 * MIB, peak / MIB
    assert not list(tmp_path.glob("*.peak"))  # the launcher's report is read and removed


@pytest.mark.parametrize("script, code", [("import sys; sys.exit(3)", 3), ("import os; os.kill(os.getpid(), 9)", -9),
                                          ("import os; os.kill(os.getpid(), 11)", -11)])
def test_exit_codes_and_signals_are_the_commands(tmp_path, script, code):
    from omz_tools.convert import mo
    result = mo.run_logged([sys.executable, "-c", script], tmp_path / "log")
    assert result.returncode == code
    assert result.peak_rss_bytes > 0


def test_a_command_that_cannot_start_is_exit_127_with_the_reason_in_the_log(tmp_path):
    from omz_tools.convert import mo
    result = mo.run_logged([str(tmp_path / "missing")], tmp_path / "log")
    assert result.returncode == 127
    log = (tmp_path / "log").read_text()
    assert log.splitlines() == [f"$ {tmp_path / 'missing'}", "cannot start: [Errno 2] No such file or directory"]


# Loaded by every Python the converter starts (PYTHONPATH): in the ovc fork server, the conversion
# its child runs is replaced by ``{body}``.
_HOOK = textwrap.dedent("""
    import os, signal, time
    if "omz_tools.convert.ovc_child" in open("/proc/self/cmdline").read().split("\\0"):
        import omz_tools.convert.ovc as ovc
        ovc.convert = lambda conversion: {body}
""")


def hooked(tmp_path, name: str, body: str) -> tuple:
    """A registry with one ovc model, and the PYTHONPATH that replaces its conversion by ``body``."""
    pytest.importorskip("openvino")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_HOOK.format(body=body))
    return register(tmp_path, name, "onnx", ["--input_model=$dl_dir/placeholder.bin"]), {"PYTHONPATH": str(hooks)}


def _children(pid: int) -> list:
    table = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True).stdout.split()
    return [int(child) for child, parent in zip(table[::2], table[1::2]) if int(parent) == pid]


@pytest.mark.native
def test_an_ovc_child_that_crashes_fails_its_model_in_one_message(tmp_path):
    run, hook = hooked(tmp_path, "crashing", "os.kill(os.getpid(), signal.SIGSEGV)")
    proc, _ = convert(run, hook, "--backend", "ovc")
    line = failed_line(proc, "crashing")
    log = run["out"] / "public" / "crashing" / ".omz_convert.crashing.log"
    assert ("the ovc conversion (a child process: openvino.convert_model (onnx), saved as FP32, FP16) was killed "
            "by signal 11 after ") in line, line
    assert f"without a result; no IR was written. Full log: {log}." in line, line
    assert "try --backend mo" in line, line
    first = log.read_text().splitlines()[0]
    assert first.startswith("$ openvino.convert_model(") and first.endswith(" (in a child process; then saved as "
                                                                            "FP32, FP16)"), first
    folder = run["out"] / "public" / "crashing"
    assert not any((folder / p).exists() for p in ("FP32", "FP16")), list(folder.rglob("*"))
    assert not list(folder.glob(".omz_convert.*.tmp")), list(folder.rglob("*"))


@pytest.mark.native
def test_ctrl_c_during_an_ovc_conversion_stops_its_child_and_server(tmp_path):
    from conftest import command, restore_sigint
    run, hook = hooked(tmp_path, "slow", "time.sleep(120)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMZ_")}
    env.update(CI="true", **hook)
    proc = subprocess.Popen([command("omz-converter"), "--name", "slow", "--registry", str(run["registry"]),
                             "-d", str(run["dl"]), "-o", str(run["out"]), "--backend", "ovc"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_sigint)
    deadline = time.monotonic() + 120
    servers, children = [], []
    while not children and time.monotonic() < deadline:  # until the server has forked the child
        time.sleep(0.2)
        servers = _children(proc.pid)
        children = [c for server in servers for c in _children(server)]
    assert children, "the ovc child never started"
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == ("Interrupted: the conversions were stopped, with their Model Optimizer or ovc processes; "
                           "IR folders are as before this run."), err
    folder = run["out"] / "public" / "slow"
    assert not any((folder / p).exists() for p in ("FP32", "FP16")), list(folder.rglob("*"))
    # The fork server and its child are gone, not orphaned (given a moment for init to reap them).
    deadline = time.monotonic() + 10
    while _alive(servers + children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(servers + children), subprocess.run(["ps", "-ef"], capture_output=True, text=True).stdout


def _alive(pids: list) -> list:
    alive = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as stream:
                if stream.read().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(pid)
        except FileNotFoundError:
            pass
    return alive
