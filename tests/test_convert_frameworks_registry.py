"""Open Model Zoo 2024.6's registry (openvino-dev's 264 model.yml files) under --dry_run without Model
Optimizer: every model to convert gets a plan from a backend that needs no MO (ovc, or native for
Caffe), or one refusal line naming what cannot be honoured; no traceback. The refusals are the
ones the README lists (section "The ovc backend")."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import command
from omz_tools.registry import Registry

# What the README lists; a model refused for another reason is a regression (or a README to update).
REFUSALS = (r"--transformations_config needs Model Optimizer \(a Model Optimizer transformation configuration",
            r"the model has a pre-convert script \(")


def _their_registry() -> Path:
    spec = importlib.util.find_spec("omz_tools.omz_info_dumper")
    if spec is None or spec.origin is None:
        pytest.skip("openvino-dev 2024.6's registry (omz_tools/models beside its omz_info_dumper) is not installed")
    return Path(spec.origin).resolve().parent / "models"


def test_every_model_of_openvino_dev_gets_a_plan_or_one_refusal(tmp_path):
    registry = _their_registry()
    bare = tmp_path / "bare"  # an interpreter without Model Optimizer: what auto sees in a venv without [mo]
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "OMZ_MIRROR")}
    proc = subprocess.run([command("omz-converter"), "--registry", str(registry), "--all", "--dry_run",
                           "-p", str(bare / "bin" / "python"), "-o", str(tmp_path / "out"), "-d", str(tmp_path / "dl")],
                          capture_output=True, text=True, env={**env, "CI": "true"}, timeout=600)
    assert "Traceback" not in proc.stdout + proc.stderr
    stages = [stage for model in Registry.from_options([registry]).load_all() for stage in model.leaves()
              if stage.mo_args is not None and stage.framework in ("onnx", "tf", "pytorch")]
    assert len(stages) == 121  # 23 ONNX, 46 TensorFlow, 52 PyTorch
    planned = set(re.findall(r"^========== (\S+): converting", proc.stdout, re.M))
    blocks = {name: block for name, block in re.findall(r"^========== (\S+): converting[^\n]*\n(.*?)(?=^=====|\Z)",
                                                        proc.stdout, re.M | re.S)}
    failed = dict(line.split(": ", 1) for line in proc.stderr.split("FAILED:\n")[-1].splitlines() if ": " in line)
    for stage in stages:
        assert stage.name in planned, stage.name
        block = blocks[stage.name]
        if stage.name in failed:
            assert "(DRY RUN) Conversion" not in block
            assert any(re.match(p, failed[stage.name]) for p in REFUSALS), f"{stage.name}: {failed[stage.name]}"
            assert proc.stderr.count(f"{stage.name}: ") <= 2  # said once, and once in the FAILED: list
        else:
            assert "(DRY RUN) Backend: ovc (auto: " in block, block
            assert "(DRY RUN) Conversion, in a child process: openvino.convert_model(" in block, block
            assert "(DRY RUN) FP32: openvino.save_model(the converted model" in block
            if stage.framework == "pytorch":
                assert "(DRY RUN) PyTorch to ONNX, in a child process: torch.onnx.export(" in block
    assert len(failed) == 31 and proc.returncode == 1  # 18 --transformations_config, 13 pre-convert scripts
    # ovc is asked for by name too: the same plans, without -p
    direct = subprocess.run([command("omz-converter"), "--registry", str(registry), "--name", "resnet-50-tf",
                             "--dry_run", "--backend", "ovc", "-o", str(tmp_path / "out")],
                            capture_output=True, text=True, env={**env, "CI": "true"}, timeout=120)
    assert direct.returncode == 0, direct.stderr
    assert "input=[('map/TensorArrayStack/TensorArrayGatherV3', PartialShape('[1,224,224,3]'))]" in direct.stdout


def test_pytorch_without_torch_is_one_message(tmp_path):
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here; test_convert_frameworks.py converts PyTorch models with it")
    from helpers_frameworks import register
    folder = tmp_path / "dl" / "public" / "pt"
    folder.mkdir(parents=True)
    (folder / "net.py").write_text("class Net: pass\n")
    register(tmp_path / "reg", tmp_path / "dl", "pt", "pytorch", [folder / "net.py"], ["--input_model=$conv_dir/n.onnx"],
             onnx_args=["--model-path=$dl_dir", "--model-name=Net", "--import-module=net", "--input-shapes=1,3,8,8",
                        "--input-names=data", "--output-names=prob", "--output-file=$conv_dir/n.onnx"])
    proc = subprocess.run([command("omz-converter"), "--registry", str(tmp_path / "reg"), "--name", "pt",
                           "-d", str(tmp_path / "dl"), "--backend", "ovc"],
                          capture_output=True, text=True, env={**os.environ, "CI": "true"}, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pt: PyTorch models need torch in " in proc.stderr
    assert "pip install 'omz-model-tools[pytorch]'" in proc.stderr
    assert proc.stderr.count("PyTorch models need torch") == 2  # the error, and its line in FAILED:
