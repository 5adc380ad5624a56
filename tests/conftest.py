"""Fixtures shared by every test module. Area-specific helpers live in tests/helpers_*.py."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
    for var in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE"):
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
