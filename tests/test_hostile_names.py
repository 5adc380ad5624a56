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
    """A Caffe model ``name`` in ``registry``, its files where omz-downloader puts them under root/dl
    (the caffemodel holds TINY's weights, whatever ``prototxt`` says)."""
    folder = root / "dl" / "public" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.prototxt").write_text(TINY, encoding="utf-8")
    write_caffemodel(folder / f"{name}.prototxt", folder / f"{name}.caffemodel", seed=4)
    (folder / f"{name}.prototxt").write_text(prototxt, encoding="utf-8")
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



# -- control characters in names read from files ---------------------------------------------------

# ESC with a colour, BEL, CR, LF, NUL, a C1 CSI (U+009B) and a bidi override, in one layer name; the
# prototxt's string escapes are decoded by the parser, so the name holds the characters themselves.
HOSTILE_NAME = "evil\x1b[31m\x07\r\n\x00\x9b\u202eX"
ESCAPED_NAME = "evil\\x1b[31m\\x07\\x0d\\x0a\\x00\\x9b\\u202eX"
_PROTO_NAME = 'evil\\x1b[31m\\a\\r\\n\\000\\xc2\\x9b\u202eX'


def _raw_controls(text: str) -> list:
    """The characters of ``text`` a terminal would act on (a newline ends a line and is allowed)."""
    return sorted({c for c in text if not c.isprintable() and c != "\n"})


@pytest.fixture(scope="module")
def controls(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    registry = root / "registry"
    # An unsupported layer type named with the characters, and a blob name with ESC and LF.
    _model(root, registry, "ctl-layer", TINY.replace('layer { name: "relu" type: "ReLU"',
                                                     f'layer {{ name: "{_PROTO_NAME}" type: "MVN"'))
    _model(root, registry, "ctl-blob", TINY.replace('bottom: "conv" top: "fc"', 'bottom: "co\\x1bnv\\n" top: "fc"'))
    return SimpleNamespace(root=root, registry=registry, dl=root / "dl")


def _convert(controls, out, *extra):
    return run_cli("omz-converter", "--name", "ctl-layer,ctl-blob", "--registry", controls.registry,
                   "-d", controls.dl, "-o", out, "--backend", "native", *extra)


@pytest.mark.native
def test_control_characters_in_caffe_names_are_escaped_in_text_output(controls, tmp_path):
    proc = _convert(controls, tmp_path / "out")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr
    assert _raw_controls(proc.stdout + proc.stderr) == [], repr(proc.stderr)
    error, failed = proc.stderr.split("FAILED:\n")
    assert [line.split(":")[0] for line in failed.splitlines()] == ["ctl-layer", "ctl-blob"], proc.stderr
    errors = error.splitlines()
    assert len(errors) == 2 and all(line.startswith("Error: ctl-") for line in errors), proc.stderr
    assert f'layer "{ESCAPED_NAME}" has type "MVN"' in errors[0], errors[0]
    assert 'reads blob "co\\x1bnv\\x0a"' in errors[1], errors[1]
    assert errors[0][len("Error: "):] == failed.splitlines()[0]


@pytest.mark.native
def test_control_characters_stay_json_escapes_in_json_events(controls, tmp_path):
    proc = _convert(controls, tmp_path / "out", "--progress_format", "json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _raw_controls(proc.stdout) == [] and "\x1b" not in proc.stdout and "\u202e" not in proc.stdout
    events = [json.loads(line) for line in proc.stdout.splitlines()]  # one event per line, each whole
    errors = {e["model"]: e["message"] for e in events if e["$type"] == "model_conversion_error"}
    assert f'layer "{HOSTILE_NAME}" has type "MVN"' in errors["ctl-layer"]  # the name itself, not pre-escaped
    assert 'reads blob "co\x1bnv\n"' in errors["ctl-blob"]
    summary = events[-1]
    assert summary["$type"] == "conversion_summary"
    assert [f["message"] for f in summary["failed"]] == [errors["ctl-layer"], errors["ctl-blob"]]
    assert _raw_controls(proc.stderr) == [] and len(proc.stderr.split("FAILED:\n")[1].splitlines()) == 2


@pytest.mark.native
def test_a_file_name_with_control_characters_in_downloader_lines(tmp_path):
    """A model.yml file name with ESC and LF: the dry run, the failure (nothing listens on port 9 of
    127.0.0.1) and the FAILED: list say it escaped, one line each."""
    import hashlib
    from conftest import write_registry_files
    registry = write_registry_files(tmp_path / "registry", {"public/m1": {
        "description": "d", "task_type": "classification", "framework": "dldt", "license": "https://example.com",
        "files": [{"name": "a\x1b[31mb\nc.bin", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest(),
                   "source": "http://127.0.0.1:9/x"}]}})
    plan = run_cli("omz-downloader", "--name", "m1", "--registry", registry, "-o", tmp_path / "dl", "--dry_run")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert "  a\\x1b[31mb\\x0ac.bin  3 B  from" in plan.stdout and _raw_controls(plan.stdout) == []
    proc = run_cli("omz-downloader", "--name", "m1", "--registry", registry, "-o", tmp_path / "dl",
                   "--num_attempts", "1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _raw_controls(proc.stdout + proc.stderr) == [], repr(proc.stderr)
    assert [line for line in proc.stderr.splitlines() if line.startswith("Error: ")][0].startswith(
        "Error: m1/a\\x1b[31mb\\x0ac.bin: cannot connect")
    assert proc.stderr.split("FAILED:\n")[1].splitlines()[0].startswith("m1: a\\x1b[31mb\\x0ac.bin: ")


@pytest.mark.native
def test_a_registry_error_in_a_folder_named_with_control_characters_is_one_line(tmp_path):
    from conftest import write_registry_files
    registry = write_registry_files(tmp_path / "reg\x1b]0;owned\x07\nX", {"public/m2": {
        "description": "d", "task_type": "nonsense", "framework": "dldt", "license": "https://example.com",
        "files": []}})
    proc = run_cli("omz-info-dumper", "--name", "m2", "--registry", registry)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert _raw_controls(proc.stderr) == [], repr(proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Registry error: ") and "reg\\x1b]0;owned\\x07\\x0aX" in lines[0]


@pytest.mark.native
def test_printable_escapes_what_a_terminal_acts_on_and_nothing_else():
    from omz_tools.wording import printable
    assert printable("plain ascii, ünïcödé, 中文, tab-free") == "plain ascii, ünïcödé, 中文, tab-free"
    assert printable("\x00\x07\x1b\x7f\x85\x9b") == "\\x00\\x07\\x1b\\x7f\\x85\\x9b"  # C0, DEL, C1
    assert printable("a\u202eb\u2066c\u200bd\u2028e\ufefff") == "a\\u202eb\\u2066c\\u200bd\\u2028e\\ufefff"
    assert printable("x\udc9by") == "x\\udc9by"  # an undecodable byte of a file name (surrogateescape)
    assert printable("one\ntwo\r", keep="\n") == "one\ntwo\\x0d"
    assert printable(printable(HOSTILE_NAME)) == printable(HOSTILE_NAME) == ESCAPED_NAME


@pytest.mark.native
def test_a_conversion_to_onnx_output_file_outside_the_model_folder_is_refused(tmp_path):
    """PyTorch models: the ONNX export goes where --output-file says; only $conv_dir/<relative path>."""
    from conftest import write_registry_files
    bad = {"abs": f"--output-file={tmp_path / 'elsewhere' / 'x.onnx'}", "up": "--output-file=$conv_dir/../../x.onnx",
           "dl": "--output-f=$dl_dir/x.onnx"}
    registry = write_registry_files(tmp_path / "reg", {f"public/pt-{k}": (
        "description: d\ntask_type: classification\nframework: pytorch\nlicense: l\nfiles: []\n"
        f"conversion_to_onnx_args: [--model-name=x, --import-module=m, '{arg}', '--input-shapes=1,3,8,8', "
        f"--input-names=data, --output-names=prob]\n"
        f"model_optimizer_args: [--input_model=$conv_dir/x.onnx]\n") for k, arg in bad.items()})
    proc = run_cli("omz-converter", "--name", "pt-*", "--registry", registry, "-o", tmp_path / "out",
                   "-d", tmp_path / "dl", "--backend", "ovc", "--dry_run")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = proc.stderr.split("FAILED:\n")[1].splitlines()
    assert len(failed) == 3, proc.stderr
    for key, arg in bad.items():
        line = next(f for f in failed if f.startswith(f"pt-{key}: "))
        assert f"conversion_to_onnx_args: '{arg}' puts the ONNX export outside the model's folder" in line, line
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "out").exists()


def test_open_model_zoo_registry_passes_the_output_checks():
    """Every model of openvino-dev 2024.6's registry keeps its output where the converter says."""
    import importlib.util
    from omz_tools.convert import outputargs
    from omz_tools.registry import Registry
    spec = importlib.util.find_spec("omz_tools.omz_info_dumper")
    if spec is None:
        pytest.skip("needs openvino-dev 2024.6's registry: pip install -e '.[mo,test]'")
    registry = Registry([Path(spec.origin).resolve().parent / "models"])
    models = registry.load_all()
    assert len(models) > 200
    refused = {m.name: outputargs.refusal(m.mo_args or []) or outputargs.onnx_refusal(m.conversion_to_onnx_args or [])
               for m in models}
    assert {name: why for name, why in refused.items() if why} == {}
    assert sum(bool(m.conversion_to_onnx_args) for m in models) > 40  # the pytorch ones were looked at
