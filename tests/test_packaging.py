"""What the install promises beside openvino-dev: with the [mo] extra, openvino-dev's own Model
Optimizer keeps reading Caffe in the same venv (its generated caffe_pb2 needs protobuf < 4, which
the extra keeps), and the base install declares no upper pin on openvino, numpy or protobuf."""

from __future__ import annotations

import importlib.util
import os
import re
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


# "omz-tools" on the package index is someone else's project: an install line naming it would
# install their code. Every `pip install` the README or a message shows must name our distribution
# (or `.`, a checkout) with extras that exist.
_INSTALL_TARGET = re.compile(r"""pip install\s+(?:-\S+\s+)*['"]?([A-Za-z0-9_.-]+)(\[[^\]]*\])?""")


def _install_targets(text: str) -> list:
    return [(m.group(1), m.group(2) or "") for m in _INSTALL_TARGET.finditer(text)]


def test_every_install_line_names_our_distribution_with_real_extras():
    from omz_tools.version import DISTRIBUTION, pip_install
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION == "omz-model-tools"
    extras = set(project["optional-dependencies"])
    readme = (REPO_ROOT / "README.md").read_text()
    sources = [readme, pip_install("accuracy"), pip_install()]
    sources += [p.read_text() for p in (REPO_ROOT / "src" / "omz_tools").rglob("*.py")]
    ours = [t for text in sources for t in _install_targets(text)
            if t[0] in (".", DISTRIBUTION) or t[0].startswith("omz")]
    assert len(ours) >= 8, ours  # the table, the accuracy section and the messages
    for name, extra in ours:
        assert name in (".", DISTRIBUTION), f"an install line names {name!r}, not {DISTRIBUTION!r} or '.'"
        for wanted in filter(None, extra.strip("[]").split(",")):
            assert wanted.strip() in extras, f"pip install {name}{extra}: no extra {wanted!r} in pyproject.toml"
    for name in (".", DISTRIBUTION):  # the table gives both forms of each install
        assert any(t == (name, "[mo]") for t in ours) and any(t == (name, "[quantize]") for t in ours)


def test_the_wheel_is_named_after_the_distribution(tmp_path):
    """What `pip install .` builds is what the index would serve: omz_model_tools-<version>.whl,
    holding the omz_tools package."""
    import zipfile
    from omz_tools.version import __version__
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                           "--wheel-dir", str(tmp_path), str(REPO_ROOT)], capture_output=True, text=True)
    if done.returncode and "hatchling" in done.stderr:
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir",
                               str(tmp_path), str(REPO_ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    wheel, = tmp_path.glob("*.whl")
    assert wheel.name == f"omz_model_tools-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: omz-model-tools" in meta.splitlines()
    assert "omz_tools/__init__.py" in names and "omz_tools/builtin_registry/public/se-resnet-101/model.yml" in names
