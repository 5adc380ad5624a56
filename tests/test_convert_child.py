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
# crashes its child as a front end would.
_CRASH = textwrap.dedent("""
    import os, signal
    if "omz_tools.convert.ovc_child" in open("/proc/self/cmdline").read().split("\\0"):
        import omz_tools.convert.ovc as ovc
        ovc.convert = lambda conversion: os.kill(os.getpid(), signal.SIGSEGV)
""")


@pytest.mark.native
def test_an_ovc_child_that_crashes_fails_its_model_in_one_message(tmp_path):
    pytest.importorskip("openvino")
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_CRASH)
    run = register(tmp_path, "crashing", "onnx", ["--input_model=$dl_dir/placeholder.bin"])
    proc, _ = convert(run, {"PYTHONPATH": str(hooks)}, "--backend", "ovc")
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
    assert os.environ.get("PYTHONPATH") != str(hooks)


_SLOW = textwrap.dedent("""
    import time
    if "omz_tools.convert.ovc_child" in open("/proc/self/cmdline").read().split("\\0"):
        import omz_tools.convert.ovc as ovc
        ovc.convert = lambda conversion: time.sleep(120)
""")


@pytest.mark.native
def test_ctrl_c_during_an_ovc_conversion_stops_its_child_and_server(tmp_path):
    pytest.importorskip("openvino")
    from conftest import command, restore_sigint
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SLOW)
    run = register(tmp_path, "slow", "onnx", ["--input_model=$dl_dir/placeholder.bin"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMZ_")}
    env.update(CI="true", PYTHONPATH=str(hooks))
    proc = subprocess.Popen([command("omz-converter"), "--name", "slow", "--registry", str(run["registry"]),
                             "-d", str(run["dl"]), "-o", str(run["out"]), "--backend", "ovc"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=restore_sigint)
    log = run["out"] / "public" / "slow" / ".omz_convert.slow.log"
    deadline = time.monotonic() + 120
    while not (log.exists() and len(log.read_text().splitlines()) >= 1) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.0)  # the child is in its (slowed) conversion
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == ("Interrupted: the conversions were stopped, with their Model Optimizer or ovc processes; "
                           "IR folders are as before this run."), err
    folder = run["out"] / "public" / "slow"
    assert not any((folder / p).exists() for p in ("FP32", "FP16")), list(folder.rglob("*"))
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert not [line for line in ps.splitlines() if "omz_tools.convert.ovc_child" in line and str(hooks) not in line
                and "ps -eo" not in line], ps
