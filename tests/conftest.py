"""Fixtures shared by every test module. Area-specific helpers live in tests/helpers_*.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Hang guards: a hang fails loudly, with stacks, instead of holding CI until its own limit.
# - pytest's faulthandler_timeout (pyproject.toml) dumps every thread's stack of a test still
#   running after 15 minutes;
# - TEST_GUARD: a test (its fixtures' setup included) still running after 30 minutes dumps the
#   stacks again and ends the pytest process (exit 1);
# - SUBPROCESS_GUARD: Popen.communicate()/wait() without a timeout (so subprocess.run too) give a
#   child at most 15 minutes; then it gets SIGABRT (PYTHONFAULTHANDLER=1 below makes a Python child
#   print every thread's stack), is killed, and the test fails with the end of its output.
# These are guards against hangs, not time limits: every legitimate run here is far shorter.
SUBPROCESS_GUARD = 900.0
TEST_GUARD = 1800.0
os.environ.setdefault("PYTHONFAULTHANDLER", "1")


class SubprocessHung(AssertionError):
    """A subprocess started by a test ran past SUBPROCESS_GUARD."""


_communicate = subprocess.Popen.communicate
_wait = subprocess.Popen.wait


def _abort_and_collect(proc: subprocess.Popen) -> tuple:
    import signal
    try:
        proc.send_signal(signal.SIGABRT)  # a Python child prints its threads' stacks (faulthandler)
    except OSError:
        pass
    try:
        return _communicate(proc, None, 60)
    except (subprocess.TimeoutExpired, ValueError, OSError):
        proc.kill()
        return None, None


def _hung(proc: subprocess.Popen, out, err) -> SubprocessHung:
    tail = "\n".join(str(part)[-4000:] for part in (out, err) if part)
    return SubprocessHung(f"subprocess {proc.args!r} still running after {SUBPROCESS_GUARD:.0f} s (the tests' "
                          f"guard against hangs); it was sent SIGABRT and killed. End of its output:\n{tail}")


def _guarded_communicate(self, input=None, timeout=None):
    if timeout is not None:
        return _communicate(self, input, timeout)
    try:
        return _communicate(self, input, SUBPROCESS_GUARD)
    except subprocess.TimeoutExpired:
        raise _hung(self, *_abort_and_collect(self)) from None


def _guarded_wait(self, timeout=None):
    if timeout is not None:
        return _wait(self, timeout)
    try:
        return _wait(self, SUBPROCESS_GUARD)
    except subprocess.TimeoutExpired:
        raise _hung(self, *_abort_and_collect(self)) from None


subprocess.Popen.communicate = _guarded_communicate
subprocess.Popen.wait = _guarded_wait


def _test_hung(nodeid: str) -> None:
    import faulthandler
    sys.stderr.write(f"\n{nodeid} still running after {TEST_GUARD:.0f} s (the tests' guard against hangs); "
                     "stacks of every thread follow, then pytest exits 1.\n")
    faulthandler.dump_traceback(all_threads=True)
    sys.stderr.flush()
    os._exit(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Arm TEST_GUARD around a test's setup (module fixtures included), call and teardown."""
    import threading
    timer = threading.Timer(TEST_GUARD, _test_hung, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_ROOT.parent / "shared"
SE_RESNET_PROTOTXT = SHARED_DIR / "fixtures" / "se-resnet-101" / "SE-ResNet-101.prototxt"
VENV_BIN = Path(sys.executable).parent


def command(name: str) -> str:
    """Path of one of our console scripts (omz-downloader, converter.py, ...) in this environment."""
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"console script {name!r} is not installed; run: pip install -e '.[test]'")
    return found


def write_registry_files(root: Path, entries: dict) -> Path:
    """The one writer of test registries: ``{path: content}`` under ``root``, where a path not
    ending in ``.yml`` means ``<path>/model.yml`` and content is the file's text, or a dict
    written as YAML. Returns ``root``."""
    import yaml

    root = Path(root)
    for relative, content in entries.items():
        path = root / (relative if str(relative).endswith(".yml") else f"{relative}/model.yml")
        path.parent.mkdir(parents=True, exist_ok=True)
        text = content if isinstance(content, str) else yaml.safe_dump(content)
        path.write_text(text, encoding="utf-8")
    return root


def events(stdout: str) -> list:
    """The JSON-lines events a command printed (--progress_format json), in order."""
    import json
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def one_message(proc, *fragments) -> None:
    """The command failed with exit 1 and said one line on stderr, no traceback, holding every fragment."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def restore_sigint() -> None:
    """Popen preexec_fn for tests that send SIGINT: a shell that starts a job in the background
    without job control (e.g. `pytest &` in a script) makes it ignore SIGINT, and children
    inherit that, so Python in them would never raise KeyboardInterrupt. Undo it in the child."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def se_resnet_prototxt() -> Path:
    """The real upstream SE-ResNet-101 prototxt, read in place from ../shared."""
    if not SE_RESNET_PROTOTXT.exists():
        pytest.skip(f"needs the real SE-ResNet-101 prototxt at {SE_RESNET_PROTOTXT} (../shared is absent)")
    return SE_RESNET_PROTOTXT


@pytest.fixture
def clean_env(monkeypatch):
    """No registry, mirror or offline settings leak in from the developer's shell."""
    for var in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE", "OMZ_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)
    env = dict(os.environ)
    env["CI"] = "true"  # keeps openvino-dev's telemetry quiet
    return env


@pytest.fixture
def small_tmpfs(tmp_path) -> Path:
    """A real 2 MiB filesystem (a tmpfs at tmp_path/small), unmounted at the end.

    Mounting needs root and mount permission (CAP_SYS_ADMIN); the test skips without them.
    """
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a 2 MiB tmpfs here (needs root and mount permission): "
                    f"{result.stderr.strip() or f'mount exited {result.returncode}'}")
    yield mount_point
    if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(mount_point)], check=True)  # busy: detach it now, freed when closed


def remount(mount_point: Path, mode: str) -> None:
    """Remount a filesystem mounted by ``small_tmpfs`` "ro" or "rw" (a read-only folder for root too)."""
    result = subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
