"""What the install promises beside openvino-dev: with the [mo] extra, openvino-dev's own Model
Optimizer keeps reading Caffe in the same venv (its generated caffe_pb2 needs protobuf < 4, which
the extra keeps), and the base install declares no upper pin on openvino, numpy or protobuf."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from helpers_caffe import small_se_resnet_prototxt, write_caffemodel


def _has_mo() -> bool:
    try:
        return importlib.util.find_spec("openvino.tools.mo") is not None
    except ModuleNotFoundError:  # openvino 2025 and newer have no openvino.tools package
        return False


def test_openvino_devs_own_mo_reads_caffe(tmp_path):
    """`mo` exactly as a user types it: no --caffe_parser_path, so MO imports its own caffe_pb2."""
    if not _has_mo():
        pytest.skip("openvino-dev (the [mo] extra) is not installed in this venv")
    mo = Path(sys.executable).parent / "mo"
    if not mo.exists():
        pytest.skip(f"openvino-dev is importable but its mo script is not beside {sys.executable}")
    proto = tmp_path / "net.prototxt"
    proto.write_text(small_se_resnet_prototxt())
    model = write_caffemodel(proto, tmp_path / "net.caffemodel", seed=3)
    result = subprocess.run([str(mo), "--input_model", str(model), "--input_proto", str(proto),
                             "--output_dir", str(tmp_path / "ir")], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "CI": "true"}, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (tmp_path / "ir" / "net.xml").is_file() and (tmp_path / "ir" / "net.bin").stat().st_size > 0


def test_base_dependencies_have_no_upper_pins():
    """pip must keep the openvino and numpy a venv already has (CI's second environment checks the
    install itself); an upper bound in the base install would fight the user's environment."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for requirement in project["dependencies"]:
        assert "<" not in requirement and "==" not in requirement, requirement
    names = {r.split(">")[0].split("=")[0].strip() for r in project["dependencies"]}
    assert {"openvino", "numpy", "protobuf"} <= names
    assert "openvino-dev" not in names
    assert project["requires-python"] == ">=3.10"
    assert any(r.startswith("openvino-dev[caffe]==2024.6.0") and "python_version < '3.13'" in r
               for r in project["optional-dependencies"]["mo"])
