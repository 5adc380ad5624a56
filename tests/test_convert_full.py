"""The full-size SE-ResNet-101: the real prototxt, a 198 MB caffemodel with random weights, the
built-in registry entry (its model_optimizer_args and model_card) with that file's size and hash.
Converted once per session (about a minute); the tests share the result."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import yaml

from conftest import SE_RESNET_PROTOTXT, command
from helpers_caffe import register_se_resnet, write_caffemodel

NAME = "se-resnet-101"
pytestmark = pytest.mark.slow
# The default backend (auto) is Model Optimizer where openvino-dev is installed, else the native
# front end: the tests marked native hold for either, and CI runs them again without MO.
try:
    HAS_MO = importlib.util.find_spec("openvino.tools.mo") is not None
except ModuleNotFoundError:  # no openvino.tools package at all (openvino 2025 and newer)
    HAS_MO = False


@pytest.fixture(scope="module")
def full(tmp_path_factory, make_httpserver):
    if not SE_RESNET_PROTOTXT.exists():
        pytest.skip(f"needs the real SE-ResNet-101 prototxt at {SE_RESNET_PROTOTXT} (../shared is absent)")
    root = tmp_path_factory.mktemp("full")
    cache = root / "cache"
    src = root / "src"
    src.mkdir()
    caffemodel = write_caffemodel(SE_RESNET_PROTOTXT, src / f"{NAME}.caffemodel", cache, seed=101)
    shutil.copyfile(SE_RESNET_PROTOTXT, src / f"{NAME}.prototxt")
    sources = {}
    for path in (src / f"{NAME}.prototxt", caffemodel):
        make_httpserver.expect_request(f"/full/{path.name}").respond_with_data(path.read_bytes())
        sources[path.name] = make_httpserver.url_for(f"/full/{path.name}")
    card = yaml.safe_load(register_se_resnet(src, root / "registry", sources=sources).read_text())["model_card"]
    env = {k: v for k, v in os.environ.items() if k not in ("OMZ_REGISTRY", "OMZ_MIRROR", "OMZ_OFFLINE")}
    env.update(CI="true", XDG_CACHE_HOME=str(cache))
    dl = root / "dl"
    fetched = subprocess.run([command("omz-downloader"), "--name", NAME, "--registry", str(root / "registry"),
                              "-o", str(dl)], capture_output=True, text=True, env=env)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    make_httpserver.clear()  # drop the 198 MB response held by the server
    caffemodel.unlink()  # 198 MB less on disk; the downloaded copy is what gets converted
    result = subprocess.run([command("omz-converter"), "--name", NAME, "--registry", str(root / "registry"),
                             "-d", str(dl), "-o", str(root / "out")], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"root": root, "env": env, "conv_dir": root / "out" / "public" / NAME, "result": result,
            "registry": root / "registry", "dl": dl, "card": card}


@pytest.mark.native
def test_card_figures_of_the_full_model(full):
    record = json.loads((full["conv_dir"] / "FP32" / ".omz_converted.json").read_text())
    assert record["backend"] == ("mo" if HAS_MO else "native")
    figures = record["figures"]
    assert figures["inputs"] == {"data": [1, 3, 224, 224]} and figures["outputs"] == {"prob": [1, 1000]}
    assert round(figures["params"] / 1e6, 3) == full["card"]["mparams"] == 49.274
    assert figures["gflops"] == pytest.approx(15.15, abs=0.01)  # vs the card's 15.239: within 2%
    assert abs(figures["gflops"] - full["card"]["gflops"]) <= 0.02 * full["card"]["gflops"]
    if HAS_MO:
        assert "--caffe_parser_path=" in (full["conv_dir"] / f".omz_convert.{NAME}.log").read_text()


@pytest.mark.native
def test_both_precisions_infer_probabilities(full):
    import openvino as ov
    core = ov.Core()
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 224, 224)).astype(np.float32)
    results = {}
    for precision in ("FP32", "FP16"):
        compiled = core.compile_model(str(full["conv_dir"] / precision / f"{NAME}.xml"), "CPU")
        prob = compiled({"data": x})[compiled.output(0)]
        assert prob.shape == (1, 1000) and prob.min() >= 0 and abs(prob.sum() - 1) < 1e-3
        results[precision] = prob
    fp16_bytes = (full["conv_dir"] / "FP16" / f"{NAME}.bin").stat().st_size
    fp32_bytes = (full["conv_dir"] / "FP32" / f"{NAME}.bin").stat().st_size
    assert fp16_bytes < 0.51 * fp32_bytes  # weights really compressed


@pytest.mark.native
def test_rerun_is_skipped(full):
    result = subprocess.run([command("omz-converter"), "--name", NAME, "--registry", str(full["registry"]),
                             "-d", str(full["dl"]), "-o", str(full["root"] / "out")], capture_output=True,
                            text=True, env=full["env"])
    assert result.returncode == 0 and f"Skipped {NAME}: IR up to date" in result.stdout


def test_native_backend_full_size_passes_the_card_checks_and_agrees_with_mo(full):
    """omz-converter --backend native on the full SE-ResNet-101: the same card checks (49.274 M
    parameters, GFLOPs, names, shapes, a probability vector) and, against the MO IR, the same
    top-5 in the same order on 3 inputs, FP32 probabilities within 1e-4."""
    if not HAS_MO:
        pytest.skip("needs Model Optimizer (openvino-dev) as the oracle; the native IR's own card checks ran above")
    out = full["root"] / "native"
    result = subprocess.run([command("omz-converter"), "--name", NAME, "--registry", str(full["registry"]),
                             "-d", str(full["dl"]), "-o", str(out), "--backend", "native"], capture_output=True,
                            text=True, env=full["env"])
    assert result.returncode == 0, result.stdout + result.stderr
    native_dir = out / "public" / NAME
    record = json.loads((native_dir / "FP32" / ".omz_converted.json").read_text())
    assert record["backend"] == "native" and round(record["figures"]["params"] / 1e6, 3) == 49.274
    assert f"{NAME} FP16: {native_dir / 'FP16' / NAME}.xml [input data 1x3x224x224; output prob 1x1000; " \
           f"49.274 M parameters (card 49.274)" in result.stdout
    import openvino as ov

    from helpers_caffe import assert_not_saturated, image_like
    core = ov.Core()
    f32 = {"INFERENCE_PRECISION_HINT": "f32"}  # a CPU with bf16 would otherwise round both differently
    native = core.compile_model(str(native_dir / "FP32" / f"{NAME}.xml"), "CPU", f32)
    mo = core.compile_model(str(full["conv_dir"] / "FP32" / f"{NAME}.xml"), "CPU", f32)
    for seed in (1, 2, 3):
        x = image_like((1, 3, 224, 224), seed)
        a, b = native({"data": x})[native.output(0)][0], mo({"data": x})[mo.output(0)][0]
        assert_not_saturated(b)
        assert list(np.argsort(-a)[:5]) == list(np.argsort(-b)[:5])
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)
