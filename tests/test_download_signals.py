"""The downloader killed (SIGKILL) or interrupted (SIGINT) mid-file: nothing partial at the final
path, and the next run resumes from the kept .part and verifies the whole file."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from conftest import restore_sigint
from helpers_http import Fault, downloader_cmd, one_model, run_downloader, server  # noqa: F401

MiB = 1 << 20


def _start_and_wait_for_part(reg, out, part):
    env = dict(os.environ, CI="true")
    env.pop("OMZ_REGISTRY", None)
    proc = subprocess.Popen([downloader_cmd(), "--registry", str(reg), "--name", "m1", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=restore_sigint)
    # The server sends 1.5 MiB at once, then trickles: wait until the first MiB is on disk.
    for _ in range(600):
        if part.exists() and part.stat().st_size >= MiB:
            return proc
        if proc.poll() is not None:
            pytest.fail(f"the downloader ended early: {proc.communicate()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("no .part file grew to 1 MiB")


@pytest.fixture
def trickling(tmp_path, server):
    blob = os.urandom(3 * MiB)
    reg, out = one_model(tmp_path, server, {"m.bin": blob})
    server.queue_fault("/m1/m.bin", Fault("trickle", after=MiB + MiB // 2, delay=0.05))
    target = out / "public" / "m1" / "m.bin"
    return blob, reg, out, target, target.with_name("m.bin.part")


def test_sigkill_mid_file_then_rerun_resumes_and_verifies(trickling, server):
    blob, reg, out, target, part = trickling
    proc = _start_and_wait_for_part(reg, out, part)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    assert part.exists() and target.with_name("m.bin.part.json").exists()
    rerun = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    assert target.read_bytes() == blob
    last = server.requests_for("/m1/m.bin")[-1]
    assert last.status == 206 and last.headers["Range"].startswith("bytes=") and last.headers["Range"] != "bytes=0-"
    assert not part.exists()


def test_sigint_exits_130_with_nothing_at_the_final_path(trickling, server):
    blob, reg, out, target, part = trickling
    proc = _start_and_wait_for_part(reg, out, part)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Interrupted" in stderr and "Traceback" not in stderr
    assert not target.exists() and part.exists()
    rerun = run_downloader("--registry", reg, "--name", "m1", "-o", out)
    assert rerun.returncode == 0, rerun.stderr
    assert target.read_bytes() == blob
    assert server.requests_for("/m1/m.bin")[-1].status == 206
