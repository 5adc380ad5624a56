"""What a person reads: a failure said once (short retry lines, one paragraph, one FAILED line
per model), every missing file named offline, resumes said, the plan of --dry_run, -q, and a
clean line after Ctrl-C on a terminal."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from conftest import restore_sigint
from helpers_http import (  # noqa: F401
    Fault, downloader_cmd, events, one_model, run_downloader, server, sha256, write_registry,
)

MiB = 1 << 20
GUARD = 600  # seconds: a generous guard for each child process


def _dead_url(path: str) -> str:
    with socket.socket() as probe:  # a port nobody listens on once this is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def _tree(folder) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_no_network_says_the_failure_once_and_what_to_do(tmp_path):
    reg = tmp_path / "reg"
    write_registry(reg, {"public/m1": {"files": [
        {"name": "a.bin", "data": b"a" * 1000, "source": _dead_url("/m1/a.bin")},
        {"name": "b.bin", "data": b"b" * 10, "source": _dead_url("/m1/b.bin")}]}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", tmp_path / "out", timeout=GUARD)
    assert proc.returncode == 1
    err = proc.stderr.splitlines()
    retries = [line for line in err if line.startswith("Retrying")]
    assert [r.split(" in ")[0] for r in retries] == ["Retrying m1/a.bin (attempt 2/3)",
                                                     "Retrying m1/a.bin (attempt 3/3)"]
    assert all(r.endswith(": Connection refused") and len(r) < 80 for r in retries), retries
    errors = [line for line in err if line.startswith("Error:")]
    assert len(errors) == 1  # the paragraph, once
    assert errors[0].count("Connection refused") == 1 and errors[0].count("check the network") + \
        errors[0].count("Check the network") == 1
    for flag in ("--mirror", "--cache_dir", "--offline"):
        assert flag in errors[0]
    failed = proc.stderr.split("FAILED:\n", 1)[1].splitlines()
    assert len(failed) == 1 and failed[0].startswith("m1: a.bin: Connection refused") and len(failed[0]) < 120
    assert "Skipped m1/b.bin: another file of the model failed (a.bin)" in proc.stdout
    assert "skipped: " not in proc.stdout


def test_offline_names_every_missing_file_once(tmp_path, server):
    reg = tmp_path / "reg"
    write_registry(reg, {
        "public/m1": {"files": [{"name": n, "data": n.encode(), "source": server.url(f"/{n}")}
                                for n in ("a.bin", "b.bin", "c.bin")]},
        "public/m2": {"files": [{"name": "d.bin", "data": b"d", "source": server.url("/d.bin")}]}})
    proc = run_downloader("--registry", reg, "--name", "m1,m2", "-o", tmp_path / "out", "--offline",
                          timeout=GUARD)
    assert proc.returncode == 1 and server.log == []
    for model, name in (("m1", "a.bin"), ("m1", "b.bin"), ("m1", "c.bin"), ("m2", "d.bin")):
        assert proc.stderr.count(f"Error: {model}/{name}: not available offline") == 1, proc.stderr
    assert f"{name}: {name}" not in proc.stderr
    failed = proc.stderr.split("FAILED:\n", 1)[1].splitlines()
    assert failed == ["m1: a.bin, b.bin, c.bin: not available offline", "m2: d.bin: not available offline"]


def test_a_refused_body_does_not_say_hash_not_computed(tmp_path, server):
    data = os.urandom(1000)
    reg, out = one_model(tmp_path, server, {"a.bin": {"data": data, "source": server.add("/x", data * 2)}})
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, timeout=GUARD)
    assert proc.returncode == 1
    assert "not computed" not in proc.stderr and "got 2000 bytes." in proc.stderr


def test_a_resume_is_said_in_text_and_in_json(tmp_path, server):
    data = os.urandom(3 * MiB)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    server.queue_fault("/m1/a.bin", Fault("drop", after=MiB + MiB // 2))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1", timeout=GUARD)
    assert proc.returncode == 1
    server.queue_fault("/m1/a.bin", Fault("drop", after=MiB // 2))
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--num_attempts", "1",
                          "--progress_format", "json", timeout=GUARD)
    resume = [e for e in events(proc.stdout) if e["$type"] == "model_file_download_resume"]
    assert resume and resume[0]["offset"] == MiB + MiB // 2 and resume[0]["message"] == "resuming at 1.5 MiB"
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, timeout=GUARD)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"Downloading m1/a\.bin \(3\.0 MiB, resuming at 2\.0 MiB\)", proc.stdout), proc.stdout


def test_dry_run_plans_without_a_connection_or_a_write(tmp_path, server):
    files = {n: os.urandom(1000 + i) for i, n in enumerate(("here.bin", "cached.bin", "away.bin"))}
    reg, out = one_model(tmp_path, server, files)
    # here.bin is present (a previous run), cached.bin is in a cache, away.bin is nowhere.
    assert run_downloader("--registry", reg, "--name", "m1", "-o", tmp_path / "prev", "--cache_dir",
                          tmp_path / "cache", timeout=GUARD).returncode == 0
    (out / "public" / "m1").mkdir(parents=True)
    os.link(tmp_path / "prev" / "public" / "m1" / "here.bin", out / "public" / "m1" / "here.bin")
    for name in ("here.bin", "away.bin"):
        digest = sha256(files[name])
        (tmp_path / "cache" / "sha256" / digest[:2] / digest[2:]).unlink()
    before_out, before_cache = _tree(out), _tree(tmp_path / "cache")
    served = len(server.log)
    proc = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--cache_dir", tmp_path / "cache",
                          "--mirror", "http://mirror.invalid:8080", "--dry_run", timeout=GUARD)
    assert proc.returncode == 0, proc.stderr
    assert len(server.log) == served  # no request
    assert _tree(out) == before_out and _tree(tmp_path / "cache") == before_cache  # nothing written
    lines = proc.stdout.splitlines()
    here = next(line for line in lines if "here.bin" in line)
    cached = next(line for line in lines if "cached.bin" in line)
    away = next(line for line in lines if "away.bin" in line)
    assert "1000 B" in here and "present" in here
    assert "cache " in cached and str(tmp_path / "cache") in cached
    assert away.index("mirror http://mirror.invalid:8080/public/m1/away.bin") < away.index(
        f"origin {server.url('/m1/away.bin')}")
    assert lines[-1] == "To fetch: 1 file(s), 1002 B (1002 bytes); 1 present, 1 from the cache."
    js = run_downloader("--registry", reg, "--name", "m1", "-o", out, "--cache_dir", tmp_path / "cache",
                        "--dry_run", "--progress_format", "json", timeout=GUARD)
    plan = events(js.stdout)
    assert plan[-1]["$type"] == "download_plan" and plan[-1]["bytes_to_fetch"] == 1002
    assert {e["model_file"]: e["state"] for e in plan[:-1]} == {
        "here.bin": "present, to re-check", "cached.bin": "cache", "away.bin": "fetch"}  # no record there yet
    assert len(server.log) == served and _tree(out) == before_out


def test_quiet_prints_only_the_failure(tmp_path, server):
    reg = tmp_path / "reg"
    write_registry(reg, {
        "public/ok": {"files": [{"name": "a.bin", "data": b"a", "source": server.add("/a.bin", b"a")}]},
        "public/bad": {"files": [{"name": "b.bin", "data": b"b", "source": server.url("/missing")}]}})
    proc = run_downloader("--registry", reg, "--name", "ok,bad", "-o", tmp_path / "out", "-q", timeout=GUARD)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("Error: bad/b.bin: the server answered HTTP 404")
    assert proc.stderr.splitlines()[-2:] == ["FAILED:", f"bad: b.bin: HTTP 404 Not Found ({server.url('/missing')})"]
    quiet_ok = run_downloader("--registry", reg, "--name", "ok", "-o", tmp_path / "out", "-q", timeout=GUARD)
    assert quiet_ok.returncode == 0 and quiet_ok.stdout == "" and quiet_ok.stderr == ""


def _render(raw: str) -> list:
    """The screen a terminal shows for ``raw``: \\r, \\n, cursor up (ESC[A) and erase (ESC[K)."""
    rows, row, col = [[]], 0, 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\x1b":
            match = re.match(r"\x1b\[(\d*)([A-Za-z])", raw[i:])
            if match:
                if match.group(2) == "A":
                    row = max(0, row - int(match.group(1) or 1))
                elif match.group(2) == "K":
                    del rows[row][col:]
                i += match.end()
                continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            while len(rows) <= row:
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col - len(line) + 1) if col >= len(line) else "")
            line[col] = ch
            col += 1
        i += 1
    return ["".join(r).rstrip() for r in rows]


def test_ctrl_c_on_a_terminal_clears_the_bars_first(tmp_path, server):
    import fcntl
    import pty
    import struct
    import termios
    data = os.urandom(4 * MiB)
    reg, out = one_model(tmp_path, server, {"a.bin": data})
    server.queue_fault("/m1/a.bin", Fault("trickle", after=MiB, delay=0.05))
    env = dict(os.environ, CI="true", COLUMNS="100")
    env.pop("OMZ_REGISTRY", None)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen([downloader_cmd(), "--registry", str(reg), "--name", "m1", "-o", str(out)],
                            stdin=secondary, stdout=secondary, stderr=secondary, env=env,
                            preexec_fn=restore_sigint)
    os.close(secondary)
    part = out / "public" / "m1" / "a.bin.part"
    output = b""
    os.set_blocking(primary, False)
    deadline = time.monotonic() + GUARD
    sent = False
    while True:
        if not sent and part.exists() and part.stat().st_size >= MiB and b"a.bin" in output:
            time.sleep(0.5)  # let the bar draw
            proc.send_signal(signal.SIGINT)
            sent = True
        try:
            chunk = os.read(primary, 65536)
            if not chunk:
                break
            output += chunk
        except BlockingIOError:
            if proc.poll() is not None and sent:
                time.sleep(0.2)
                try:
                    output += os.read(primary, 65536)
                except OSError:
                    pass
                break
            assert time.monotonic() < deadline, "the downloader did not end"
            time.sleep(0.05)
        except OSError:  # EIO: the child closed the terminal
            break
    os.close(primary)
    assert proc.wait(timeout=GUARD) == 130
    screen = _render(output.decode(errors="replace"))
    line = next(row for row in screen if "Interrupted" in row)
    assert line == "Interrupted: partial downloads are kept as .part files; run again to resume.", screen
    assert not any("|" in row and "B/s" in row for row in screen[screen.index(line):]), screen
