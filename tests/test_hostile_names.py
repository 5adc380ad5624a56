"""Names that come from files: a model.yml whose model_optimizer_args would choose where the IR is
written (refused for every backend, before anything runs), and control characters in names read from a
prototxt (escaped in every text line, JSON escapes in JSON events)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from helpers_accuracy import run_cli
from helpers_caffe import file_digest, write_caffemodel, write_model_yml

SHAPE, CLASSES = [1, 3, 16, 16], 5
TINY = f'''name: "tiny"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 3 dim: 16 dim: 16 }} }} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param {{ num_output: 4 kernel_size: 3 stride: 2 }} }}
layer {{ name: "relu" type: "ReLU" bottom: "conv" top: "conv" }}
layer {{ name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" inner_product_param {{ num_output: {CLASSES} }} }}
layer {{ name: "prob" type: "Softmax" bottom: "fc" top: "prob" }}
'''


def _model(root: Path, registry: Path, name: str, prototxt: str = TINY, extra_mo_args: list = ()) -> Path:
    """A Caffe model ``name`` in ``registry``, its files where omz-downloader puts them under root/dl."""
    folder = root / "dl" / "public" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.prototxt").write_text(prototxt, encoding="utf-8")
    write_caffemodel(folder / f"{name}.prototxt", folder / f"{name}.caffemodel", seed=4)
    files = [(f, *file_digest(folder / f), f"https://example.com/{f}") for f in (f"{name}.prototxt", f"{name}.caffemodel")]
    return write_model_yml(registry, name, files, input_shape=SHAPE, outputs={"prob": [1, CLASSES]},
                           extra_mo_args=list(extra_mo_args))


def _quoted_args(model_yml: Path, args: list) -> None:
    """write_model_yml writes arguments unquoted; these need YAML quoting (spaces, '=' at the end...)."""
    text = model_yml.read_text()
    for arg in args:
        text = text.replace(f"  - {arg}\n", f"  - {json.dumps(arg)}\n")
    model_yml.write_text(text)


def _files_under(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# -- model_optimizer_args that would choose where output goes ---------------------------------------

def _hostile_args(elsewhere: Path) -> dict:
    """model name -> (its model_optimizer_args, what the refusal quotes, a word of the reason)."""
    return {
        "out-eq": ([f"--output_dir={elsewhere}"], f"--output_dir={elsewhere}", "output folder"),
        "out-sep": (["--output_dir", str(elsewhere)], f"--output_dir {elsewhere}", "output folder"),
        "out-prefix": ([f"--output_d={elsewhere}"], f"--output_d={elsewhere}", "output folder"),
        "out-short": (["-o", str(elsewhere)], f"-o {elsewhere}", "output folder"),
        "name-up": (["--model_name=../../../X"], "--model_name=../../../X", "a path"),
        "name-sep": (["--model_name", "sub/X"], "--model_name sub/X", "a path"),
        "name-dots": (["--model_name=.."], "--model_name=..", "'..'"),
        "name-empty": (["--model_name="], "--model_name=", "empty"),
        "name-short": (["-n..%2F"], "-n..%2F", "not a plain file name"),
        "name-hidden": (["--mo=.omz_converted"], "--mo=.omz_converted", "not a plain file name"),
        "board": ([f"--tensorboard_logdir={elsewhere}"], f"--tensorboard_logdir={elsewhere}", "dump"),
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-args")
    registry, elsewhere = root / "registry", root / "elsewhere"
    cases = _hostile_args(elsewhere)
    for name, (args, _, _) in cases.items():
        _quoted_args(_model(root, registry, name, extra_mo_args=args), args)
    _model(root, registry, "plain-name", extra_mo_args=["--model_name=foo"])
    return SimpleNamespace(root=root, registry=registry, dl=root / "dl", elsewhere=elsewhere, cases=cases)


def _check_refusals(hostile, proc, out: Path) -> None:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    failed = proc.stderr.split("FAILED:\n")[1].splitlines()
    assert sorted(line.split(":")[0] for line in failed) == sorted(hostile.cases), proc.stderr
    for name, (_, quoted, why) in hostile.cases.items():
        model_yml = hostile.registry / "public" / name / "model.yml"
        said = [line for line in errors if line.startswith(f"Error: {name}: ")]
        assert len(said) == 1, proc.stderr
        assert f"{model_yml}: model_optimizer_args: '{quoted}' " in said[0] and why in said[0], said[0]
        assert "nothing was converted" in said[0], said[0]
    assert _files_under(hostile.elsewhere) == [] and not (hostile.root / "X").exists()
    assert not any("public/X" in p or p.endswith("/X") for p in _files_under(out)), _files_under(out)


@pytest.mark.native
def test_native_refuses_registry_args_that_choose_where_output_goes(hostile, tmp_path):
    """Every form in one run (each model fails alone); a plain --model_name converts, its IR files
    named after the model as always."""
    out = tmp_path / "out"
    names = ",".join([*hostile.cases, "plain-name"])
    proc = run_cli("omz-converter", "--name", names, "--registry", hostile.registry, "-d", hostile.dl, "-o", out,
                   "--backend", "native", "--precisions", "FP32")
    _check_refusals(hostile, proc, out)
    assert _files_under(out) == ["public", "public/plain-name", "public/plain-name/FP32",
                                 "public/plain-name/FP32/.omz_converted.json", "public/plain-name/FP32/plain-name.bin",
                                 "public/plain-name/FP32/plain-name.xml"]


@pytest.mark.native
def test_dry_run_refuses_them_too(hostile, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("omz-converter", "--name", ",".join(hostile.cases), "--registry", hostile.registry,
                   "-d", hostile.dl, "-o", out, "--backend", "native", "--dry_run")
    _check_refusals(hostile, proc, out)
    assert not out.exists()


def test_model_optimizer_refuses_them_and_names_a_plain_model_name_as_native(hostile, tmp_path):
    """The real Model Optimizer (one run, for plain-name): before the refusal it wrote the IR into
    --output_dir / --model_name's path outside -o. With a plain --model_name=foo MO writes foo.xml: the
    IR is found and installed as plain-name.xml, as native installs it, and computes what native's does."""
    pytest.importorskip("openvino.tools.mo", reason="needs Model Optimizer: pip install -e '.[mo,test]'")
    out = tmp_path / "out"
    names = ",".join(["out-eq", "out-sep", "name-up", "name-sep", "plain-name"])
    proc = run_cli("omz-converter", "--name", names, "--registry", hostile.registry, "-d", hostile.dl, "-o", out,
                   "--backend", "mo", "--precisions", "FP32")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = proc.stderr.split("FAILED:\n")[1].splitlines()
    assert sorted(line.split(":")[0] for line in failed) == ["name-sep", "name-up", "out-eq", "out-sep"], proc.stderr
    assert all("model_optimizer_args" in line for line in failed), proc.stderr
    assert _files_under(hostile.elsewhere) == [] and not (hostile.root / "X.xml").exists()
    assert not list(tmp_path.rglob("X.xml")) and not list(tmp_path.rglob("foo.xml"))
    xml = out / "public/plain-name/FP32/plain-name.xml"
    import openvino as ov
    core = ov.Core()
    model = core.read_model(str(xml))
    x = np.random.default_rng(2).uniform(0, 255, SHAPE).astype(np.float32)
    native = tmp_path / "native"
    proc = run_cli("omz-converter", "--name", "plain-name", "--registry", hostile.registry, "-d", hostile.dl,
                   "-o", native, "--backend", "native", "--precisions", "FP32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    ours = core.compile_model(str(native / "public/plain-name/FP32/plain-name.xml"), "CPU", config)({"data": x})
    theirs = core.compile_model(model, "CPU", config)({"data": x})
    ours, theirs = next(iter(ours.values())), next(iter(theirs.values()))
    assert 0.05 < float(theirs.max()) < 0.95  # a softmax over 5 classes, not one-hot
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)

