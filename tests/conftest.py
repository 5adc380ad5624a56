"""Fixtures shared by every test module. Area-specific helpers live in tests/helpers_*.py."""

from __future__ import annotations

import os
import shutil
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
