"""Converter pieces without a full conversion: the upb caffe_pb2 builder, MO command building,
records, IR figure checks, and CLI errors that stop before Model Optimizer runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from conftest import command, write_registry_files
from helpers_caffe import small_se_resnet_prototxt, write_caffemodel, write_model_yml, file_digest
from omz_tools.convert import caffe_parser, ircheck, records
from omz_tools.convert.engine import Converter, Options
from omz_tools.convert.mo import find_mo, mo_arguments
from omz_tools.registry import Registry
from omz_tools.registry.schema import parse_model


@pytest.fixture(scope="module")
def mo_info():
    return find_mo()


def test_descriptor_is_mo_caffe_schema(mo_info):
    serialized = caffe_parser.extract_descriptor(caffe_parser.mo_caffe_pb2_path(mo_info.mo_dir))
    name, package, messages = caffe_parser.descriptor_summary(serialized)
    assert (name, package) == ("mo_caffe.proto", "mo_caffe")
    assert {"NetParameter", "LayerParameter", "BlobProto"} <= set(messages)


def test_mo_own_module_is_refused_by_upb_ours_is_not(mo_info, tmp_path):
    """Why the module is built at all: protobuf >= 4 (upb) refuses MO's old generated code."""
    proto_dir = mo_info.mo_dir / "front" / "caffe" / "proto"
    theirs = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(proto_dir)!r}); "
                             "import caffe_pb2"], capture_output=True, text=True)
    from google.protobuf.internal import api_implementation
    if api_implementation.Type() == "upb":
        assert theirs.returncode != 0 and "Descriptors cannot be created directly" in theirs.stderr
    folder = caffe_parser.ensure_parser(mo_info.mo_dir, mo_info.mo_version, tmp_path)
    ours = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(folder)!r}); "
                           "import caffe_pb2; from google.protobuf.internal import api_implementation as a; "
                           "print(a.Type(), caffe_pb2.NetParameter.DESCRIPTOR.full_name)"],
                          capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.split()[1] == "mo_caffe.NetParameter"


def test_module_reads_prototxt_and_mmap(mo_info, tmp_path):
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(small_se_resnet_prototxt())
    caffemodel = write_caffemodel(prototxt, tmp_path / "net.caffemodel", tmp_path / "cache")
    folder = caffe_parser.ensure_parser(mo_info.mo_dir, mo_info.mo_version, tmp_path / "cache")
    # Exactly what MO's loader does: text_format.Merge into NetParameter(), MergeFromString(mmap).
    script = f"""
import mmap, sys
sys.path.insert(0, {str(folder)!r})
import caffe_pb2
from google.protobuf import text_format
proto = caffe_pb2.NetParameter()
text_format.Merge(open({str(prototxt)!r}).read(), proto)
model = caffe_pb2.NetParameter()
with open({str(caffemodel)!r}, "rb") as f:
    model.MergeFromString(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
conv = [l for l in model.layer if l.name == "conv1/7x7_s2"][0]
print(proto.name, len(proto.layer), len(model.layer), list(conv.blobs[0].shape.dim), len(conv.blobs[0].data))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    name, n_proto, n_model, *rest = out.stdout.strip().split(maxsplit=3)
    assert name == "SE-ResNet-small" and n_proto == n_model
    assert rest[0].startswith("[16, 3, 7, 7]") and rest[0].endswith(str(16 * 3 * 7 * 7))


def test_parser_module_is_cached_per_mo_version(mo_info, tmp_path):
    first = caffe_parser.ensure_parser(mo_info.mo_dir, mo_info.mo_version, tmp_path)
    mtime = (first / "caffe_pb2.py").stat().st_mtime_ns
    assert caffe_parser.ensure_parser(mo_info.mo_dir, mo_info.mo_version, tmp_path) == first
    assert (first / "caffe_pb2.py").stat().st_mtime_ns == mtime
    assert caffe_parser.parser_dir(mo_info.mo_dir, "2099.1.0", tmp_path) != first
    assert [p.name for p in first.iterdir()] == ["caffe_pb2.py"]  # nothing else on MO's sys.path


def _model(tmp_path, mo_args, input_info=None, framework="caffe"):
    data = {"description": "d", "task_type": "classification", "framework": framework, "license": "l",
            "files": [], "model_optimizer_args": mo_args}
    if input_info:
        data["input_info"] = input_info
    return parse_model(data, name="m", subdirectory=PurePosixPath("public/m"), registry_root=tmp_path,
                       config=tmp_path / "public/m/model.yml")


def test_mo_command_expands_variables_like_omz_converter(mo_info, tmp_path):
    model = _model(tmp_path, ["--input_model=$dl_dir/m.caffemodel", "--x=$conv_dir/a", "--y=$config_dir/b",
                              "--z=$mo_dir/c", "--w=${mo_ext_dir}/d"])
    cmd = mo_arguments(model, download_dir=Path("/dl"), output_dir=Path("/out"), ir_dir=Path("/out/tmp"),
                       mo=mo_info, compress_to_fp16=False, extra_args=["--extra=1"],
                       caffe_parser_dir=Path("/cache/p"))
    assert cmd[:3] == list(mo_info.cmd_prefix)
    assert cmd[3:] == [
        "--framework=caffe", "--output_dir=/out/tmp", "--model_name=m",
        "--input_model=/dl/public/m/m.caffemodel", "--x=/out/public/m/a", f"--y={tmp_path}/public/m/b",
        f"--z={mo_info.mo_dir}/c", f"--w={mo_info.mo_ext_dir}/d",
        "--compress_to_fp16=False", "--caffe_parser_path=/cache/p", "--extra=1"]


def test_mo_command_input_info_and_own_parser_path(mo_info, tmp_path):
    model = _model(tmp_path, ["--scale=1"], input_info=[
        {"name": "a", "shape": [1, 3, 8, 8], "layout": "NCHW"}, {"name": "b", "shape": [1, 4]}])
    cmd = mo_arguments(model, download_dir=Path("/dl"), output_dir=Path("/o"), ir_dir=Path("/o/i"),
                       mo=mo_info, compress_to_fp16=True, extra_args=["--caffe_parser_path=/mine"],
                       caffe_parser_dir=Path("/cache/p"))
    assert "--input=a,b" in cmd and "--layout=a(NCHW)" in cmd
    assert "--input_shape=[1, 3, 8, 8],[1, 4]" in cmd and "--compress_to_fp16=True" in cmd
    assert [c for c in cmd if c.startswith("--caffe_parser_path")] == ["--caffe_parser_path=/mine"]
    onnx = _model(tmp_path, ["--a=1"], framework="onnx")
    cmd = mo_arguments(onnx, download_dir=Path("/dl"), output_dir=Path("/o"), ir_dir=Path("/o/i"), mo=mo_info,
                       compress_to_fp16=False, caffe_parser_dir=Path("/cache/p"))
    assert not any(c.startswith("--caffe_parser_path") for c in cmd) and "--framework=onnx" in cmd


def test_record_up_to_date_rules(tmp_path):
    ir = tmp_path / "FP32"
    ir.mkdir()
    (ir / "m.xml").write_text("<net/>")
    (ir / "m.bin").write_bytes(b"\0" * 8)
    key = {"recipe": 1, "inputs": [{"name": "a", "stat": {"size": 1, "mtime_ns": 5}}], "mo_command": ["mo"]}
    assert not records.up_to_date(ir, key, "m")  # no record yet
    records.write(ir, key, "m")
    assert records.up_to_date(ir, key, "m")
    assert not records.up_to_date(ir, {**key, "mo_command": ["mo", "--x"]}, "m")
    changed_input = {**key, "inputs": [{"name": "a", "stat": {"size": 1, "mtime_ns": 6}}]}
    assert not records.up_to_date(ir, changed_input, "m")
    (ir / "m.bin").write_bytes(b"\1" * 9)  # the IR itself touched since
    assert not records.up_to_date(ir, key, "m")
    records.write(ir, key, "m")
    (ir / "m.xml").unlink()
    assert not records.up_to_date(ir, key, "m")


def test_key_changes_when_an_input_changes(tmp_path):
    registry = tmp_path / "reg"
    dl = tmp_path / "dl"
    folder = dl / "public" / "k"
    folder.mkdir(parents=True)
    (folder / "k.prototxt").write_text("name: 'k'")
    (folder / "k.caffemodel").write_bytes(b"x")
    files = [(f, *file_digest(folder / f), "http://127.0.0.1:9/" + f) for f in ("k.prototxt", "k.caffemodel")]
    write_model_yml(registry, "k", files, input_shape=[1, 3, 8, 8], outputs={"prob": [1, 2]})
    model = Registry([registry]).load("k")
    converter = Converter(Options(download_dir=dl))
    before = converter.keys(model, ["FP32"])["FP32"]
    assert converter.keys(model, ["FP32"])["FP32"] == before
    os.utime(folder / "k.caffemodel", ns=(1, 1))
    assert converter.keys(model, ["FP32"])["FP32"] != before
    json.dumps(before)  # a record key is plain JSON


class _Card:
    def __init__(self, card, input_info=()):
        self.model_card = card
        self.input_info = list(input_info)


CARD = {"inputs": [{"name": "data", "shape": [1, 3, 224, 224]}],
        "outputs": [{"name": "prob", "shape": [1, 1000], "kind": "probabilities"}],
        "mparams": 49.274, "gflops": 15.239}


def _figures(**overrides):
    values = dict(inputs={"data": [1, 3, 224, 224]}, outputs={"prob": [1, 1000]}, params=49_274_271,
                  gflops=15.1499)
    values.update(overrides)
    return ircheck.Figures(**values)


def test_figures_matching_the_card_pass():
    assert ircheck.check_figures(_Card(CARD), _figures()) == []


@pytest.mark.parametrize("overrides, expected", [
    ({"params": 49_275_600}, "parameter count is 49.276 M (Constant elements of the IR), expected 49.274 M "
                             "(model_card.mparams)"),
    ({"gflops": 14.9}, "GFLOPs estimate is 14.900 (2 x Convolution/MatMul multiply-adds), expected 15.239 "
                       "+/- 2% (model_card.gflops)"),
    ({"outputs": {"fc": [1, 1000]}}, "output 'prob' is missing (the IR has fc)"),
    ({"inputs": {"data": [1, 3, 227, 227]}}, "input 'data' has shape [1, 3, 227, 227], expected [1, 3, 224, 224]"),
])
def test_each_figure_mismatch_is_named(overrides, expected):
    assert ircheck.check_figures(_Card(CARD), _figures(**overrides)) == [expected]


def test_gflops_tolerance_is_two_percent():
    assert ircheck.check_figures(_Card(CARD), _figures(gflops=15.239 * 0.981)) == []
    assert ircheck.check_figures(_Card(CARD), _figures(gflops=15.239 * 0.979)) != []


# -- CLI errors before any conversion ------------------------------------------------------------

def _registry_with_small(tmp_path):
    registry = tmp_path / "reg"
    files = [("small.prototxt", 7466, "a" * 64, "http://127.0.0.1:9/p"),
             ("small.caffemodel", 28346, "b" * 64, "http://127.0.0.1:9/c")]
    write_model_yml(registry, "small", files, input_shape=[1, 3, 64, 64], outputs={"prob": [1, 10]})
    return registry


def _run(args, env, cwd):
    return subprocess.run([command("omz-converter"), *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_missing_inputs_name_files_and_the_fetch_command(tmp_path, clean_env):
    registry = _registry_with_small(tmp_path)
    result = _run(["--name", "small", "--registry", str(registry), "-d", str(tmp_path / "dl")], clean_env, tmp_path)
    assert result.returncode == 1
    assert "small.prototxt (absent), small.caffemodel (absent)" in result.stderr
    assert f"omz-downloader --name small -o {tmp_path / 'dl'} --registry {registry}" in result.stderr
    assert "FAILED:\nsmall: input files are missing" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "dl" / "public" / "small" / "FP32").exists()


def test_mo_missing_fails_each_model_with_one_message(tmp_path, clean_env):
    registry = _registry_with_small(tmp_path)
    folder = tmp_path / "dl" / "public" / "small"
    folder.mkdir(parents=True)
    (folder / "small.prototxt").write_text("x" * 7466)
    (folder / "small.caffemodel").write_bytes(b"y" * 28346)
    # Wrong hashes: the input check fails first, naming both files.
    result = _run(["--name", "small", "--registry", str(registry), "-d", str(tmp_path / "dl")], clean_env, tmp_path)
    assert result.returncode == 1 and "does not match the registry's size/sha256" in result.stderr
    # With matching files, a --mo that does not exist is reported as such.
    files = [(f, *file_digest(folder / f), "http://127.0.0.1:9/" + f) for f in ("small.prototxt", "small.caffemodel")]
    write_model_yml(registry, "small", files, input_shape=[1, 3, 64, 64], outputs={"prob": [1, 10]})
    result = _run(["--name", "small", "--registry", str(registry), "-d", str(tmp_path / "dl"),
                   "--mo", str(tmp_path / "no" / "mo.py")], clean_env, tmp_path)
    assert result.returncode == 1
    assert f"Model Optimizer not found: --mo {tmp_path / 'no' / 'mo.py'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--jobs", "0"], 'must be a positive integer or "auto"'),
    (["--precisions", "FP64"], "unknown precision(s) FP64"),
    (["--progress_format", "xml"], "'xml' is not one of"),
])
def test_usage_errors_exit_2(tmp_path, clean_env, args, message):
    result = _run(["--name", "se-resnet-101", *args], clean_env, tmp_path)
    assert result.returncode == 2 and message in result.stderr


def test_dry_run_prints_exact_commands_and_runs_nothing(tmp_path, clean_env):
    result = _run(["--name", "se-resnet-101", "-d", str(tmp_path / "dl"), "-o", str(tmp_path / "out"),
                   "--dry_run", "--add_mo_arg=--log_level=ERROR"], clean_env, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    mo_line = next(line for line in lines if line.startswith("(DRY RUN) Conversion command: "))
    dl = tmp_path / "dl" / "public" / "se-resnet-101"
    tmp = tmp_path / "out" / "public" / "se-resnet-101" / ".omz_convert.se-resnet-101.tmp"
    info = find_mo()
    expected = [*info.cmd_prefix, "--framework=caffe", f"--output_dir={tmp / 'mo'}", "--model_name=se-resnet-101",
                "--input_shape=[1,3,224,224]", "--input=data", "--mean_values=data[104.0,117.0,123.0]",
                "--output=prob", f"--input_model={dl}/se-resnet-101.caffemodel",
                f"--input_proto={dl}/se-resnet-101.prototxt", "--compress_to_fp16=False",
                f"--caffe_parser_path={caffe_parser.parser_dir(info.mo_dir, info.mo_version)}",
                "--log_level=ERROR"]
    import shlex
    got = shlex.split(mo_line[len("(DRY RUN) Conversion command: "):])
    assert Path(got[0]).resolve() == Path(expected[0]).resolve()  # python vs python3: the same interpreter
    assert got[1:] == expected[1:]
    assert any("FP16: openvino.save_model" in line and "compress_to_fp16=True" in line for line in lines)
    assert not (tmp_path / "out").exists() and not (tmp_path / "dl").exists()


def test_steps_not_implemented_fail_clearly(tmp_path, clean_env):
    write_registry_files(tmp_path / "reg", {"public/pt": (
        "description: d\ntask_type: classification\nframework: pytorch\nlicense: l\nfiles: []\n"
        "conversion_to_onnx_args: [--model-name=x]\nmodel_optimizer_args: [--input_model=$conv_dir/pt.onnx]\n")})
    result = _run(["--name", "pt", "--registry", str(tmp_path / "reg"), "--dry_run", "--backend", "mo"],
                  clean_env, tmp_path)
    assert result.returncode == 1
    assert "pt: models of framework 'pytorch' are converted to ONNX first (pytorch_to_onnx.py); the mo backend " \
           "does not do that step: convert with --backend ovc" in result.stderr
    # auto takes the ovc backend for PyTorch models, which reads the export's arguments first
    result = _run(["--name", "pt", "--registry", str(tmp_path / "reg"), "--dry_run"], clean_env, tmp_path)
    assert result.returncode == 1
    assert "pt: conversion_to_onnx_args lack --import-module, --output-file, --input-shapes" in result.stderr


def test_terminal_status_line_and_json_events():
    import io
    from omz_tools.convert.progress import JsonReporter, TtyReporter
    stream = io.StringIO()
    tty = TtyReporter(stream=stream, err=stream)
    try:
        tty.model_begin("m", ["FP32", "FP16"])
        tty.phase("m", "mo", "Model Optimizer, FP32")
        with tty._lock:
            tty._draw()  # what the ticker thread does every second
        tty.model_end("m", True, 1.5, {"check": 0.1, "mo": 1.4})
    finally:
        tty.close()
    text = stream.getvalue()
    assert "[m]    0.0 s  mo: Model Optimizer, FP32\n" in text
    assert "\r\x1b[Km: mo 0 s" in text  # the live status line, erased before the next plain line
    assert "done (check 0.1 s, mo 1.4 s)" in text
    stream = io.StringIO()
    json_reporter = JsonReporter(stream)
    json_reporter.phase("m", "fp16", "FP32, FP16")
    json_reporter.error("m", "why", "tail")
    assert [json.loads(line) for line in stream.getvalue().splitlines()] == [
        {"$type": "model_conversion_phase", "model": "m", "phase": "fp16", "detail": "FP32, FP16"},
        {"$type": "model_conversion_error", "model": "m", "message": "why", "detail": "tail"}]


def test_grouped_text_output_keeps_each_model_together():
    import io
    from omz_tools.convert.progress import TextReporter
    stream = io.StringIO()
    reporter = TextReporter(stream=stream, err=stream, group=True)
    reporter.model_begin("a", ["FP32"])
    reporter.model_begin("b", ["FP32"])
    reporter.phase("a", "mo")
    reporter.phase("b", "mo")
    reporter.error("b", "broke")
    reporter.model_end("b", False, 1.0, {})
    reporter.phase("a", "verify")
    reporter.model_end("a", True, 2.0, {"mo": 2.0})
    models = [line.split()[1].strip("[]:") if line.startswith(("==", "Error")) else line.split()[0].strip("[]")
              for line in stream.getvalue().splitlines()]
    assert models == ["b", "b", "b", "a", "a", "a", "a"]


def test_grouped_models_ending_at_once_do_not_interleave():
    """Two models released by two threads at the same moment: each one's lines stay together.
    The stream yields the GIL on every write, which interleaved them before the fix."""
    import threading
    import time
    from omz_tools.convert.progress import TextReporter

    class SlowStream:
        def __init__(self):
            self.lines = []

        def write(self, text):
            time.sleep(0.001)
            self.lines.append(text)

        def flush(self):
            pass

    stream = SlowStream()
    reporter = TextReporter(stream=stream, err=stream, group=True)
    for model in ("a", "b"):
        reporter.model_begin(model, ["FP32"])
        for i in range(30):
            reporter.phase(model, f"step{i}")
    start = threading.Barrier(2)

    def end(model):
        start.wait()
        reporter.model_end(model, True, 1.0, {})

    threads = [threading.Thread(target=end, args=(m,)) for m in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    owners = [line.split()[1].rstrip(":") if line.startswith("==") else line.split()[0].strip("[]")
              for line in "".join(stream.lines).splitlines()]
    assert len(owners) == 2 * 31
    assert owners in (["a"] * 31 + ["b"] * 31, ["b"] * 31 + ["a"] * 31), owners


def test_python_without_openvino_dev_is_reported(tmp_path):
    base = Path(sys.base_prefix) / "bin" / "python3"
    if not base.exists() or Path(sys.prefix) == Path(sys.base_prefix):
        pytest.skip("needs this venv's base interpreter")
    if subprocess.run([str(base), "-c", "import openvino.tools.mo"], capture_output=True).returncode == 0:
        pytest.skip("the base interpreter has openvino-dev too")
    from omz_tools.convert.mo import MOError
    with pytest.raises(MOError, match=f"the Python interpreter {base} has no openvino.tools.mo package"):
        find_mo(base)
    # The venv's interpreter is recognised as this one even though it is a symlink to the base one.
    assert find_mo(Path(sys.executable)).mo_dir == find_mo().mo_dir


def test_a_hung_subprocess_fails_the_test_with_its_stacks(monkeypatch):
    """The conftest guard: a child still running after SUBPROCESS_GUARD gets SIGABRT (a Python
    child prints every thread's stack) and is killed; the test fails, naming the command."""
    import sys

    import conftest
    monkeypatch.setattr(conftest, "SUBPROCESS_GUARD", 3.0)
    code = "import threading, time; threading.Thread(target=time.sleep, args=(600,), name='stuck').start(); " \
           "print('started', flush=True); time.sleep(600)"
    with pytest.raises(conftest.SubprocessHung) as caught:
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    message = str(caught.value)
    assert "still running after 3 s" in message and "time.sleep(600)" in message
    assert "started" in message and "Fatal Python error: Aborted" in message
    assert message.count("File \"<string>\", line 1") >= 1 and "Thread 0x" in message


def test_record_key_names_the_interpreter_by_identity_not_by_path(tmp_path):
    """`python` and `python3` of one venv (the console scripts' shebang says python3, a script's
    sys.executable is often python) key one record; another venv keys another."""
    model = _model(tmp_path, ["--input_model=$dl_dir/m.caffemodel"])
    bin_dir = Path(sys.executable).parent

    def key(python):
        converter = Converter(Options(download_dir=tmp_path / "dl", output_dir=tmp_path / "out", python=str(python)))
        return converter.keys(model, ["FP32"])["FP32"], converter.mo_info()

    (key3, info3), (key_plain, info_plain) = key(bin_dir / "python3"), key(bin_dir / "python")
    assert info3.python != info_plain.python and key3 == key_plain
    assert key3["mo_command"][0] == f"python {info3.python_version} in {Path(sys.prefix).absolute()}"
    # A second venv that sees the same packages (a .pth to this one's site-packages): another record.
    other = tmp_path / "venv2"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(other)], check=True)
    import sysconfig
    purelib = Path(sysconfig.get_paths()["purelib"])
    (other / purelib.relative_to(sys.prefix) / "same.pth").write_text(f"{purelib}\n")
    key_other, info_other = key(other / "bin" / "python")
    assert info_other.mo_version == info3.mo_version and key_other != key3
    assert key_other["mo_command"][0] == f"python {info3.python_version} in {other.absolute()}"


def test_frameworks_nothing_converts_fail_that_model_alone(tmp_path, clean_env):
    """An mxnet model and one of an unknown framework load (registries outlive tools) and fail at
    conversion, each in one message; a caffe2 model (ONNX first) fails as before; a model beside
    them goes on."""
    registry = _registry_with_small(tmp_path)
    for name, framework, extra in (("old-mxnet", "mxnet", ""), ("odd", "darknet", ""),
                                   ("c2", "caffe2", "conversion_to_onnx_args: [--model-name=x]\n")):
        write_registry_files(registry, {f"public/{name}": (
            f"description: d\ntask_type: classification\nframework: {framework}\nlicense: l\nfiles: []\n{extra}"
            f"model_optimizer_args: [--input_model=$dl_dir/m.params]\n")})
    result = _run(["--name", "old-mxnet,odd,c2,small", "--registry", str(registry), "--dry_run"], clean_env, tmp_path)
    assert result.returncode == 1
    failed = result.stderr.split("FAILED:\n")[1].splitlines()
    assert [line.split(":")[0] for line in failed] == ["old-mxnet", "odd", "c2"]
    assert failed[0].startswith("old-mxnet: framework 'mxnet' cannot be converted (openvino-dev 2024.6's Model "
                                "Optimizer has no MXNet front end any more): Model Optimizer (openvino-dev 2024.6) "
                                "reads caffe, kaldi, onnx, paddle, tf models")
    assert failed[1].startswith("odd: framework 'darknet' cannot be converted: ")
    assert "the native backend reads caffe only" in failed[1]
    assert "c2: models of framework 'caffe2' are converted to ONNX first (caffe2_to_onnx.py)" in failed[2]
    assert "(DRY RUN) Conversion command:" in result.stdout and "--model_name=small" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_bug_outside_any_model_is_one_message_with_the_log(tmp_path, monkeypatch, clean_env):
    """The converter-wide guard (injected fault: nothing raises one for real): one paragraph
    naming the log that holds the traceback, exit 1, no traceback printed."""
    from click.testing import CliRunner

    from omz_tools.cli.converter import cli
    from omz_tools.convert import engine

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(engine, "run", broken)
    for where in ("run", "selection"):
        if where == "selection":  # e.g. a NameError in a half-edited registry module, seen while selecting
            import omz_tools.cli.converter as cli_module
            monkeypatch.setattr(cli_module, "resolve_models", broken)
        result = CliRunner().invoke(cli, ["--name", "se-resnet-101", "-d", str(tmp_path), "--dry_run"])
        assert result.exit_code == 1
        text = result.output
        assert text.startswith("omz-converter: unexpected error (KeyError: 'boom'); this is a bug in omz_tools: "
                               "please report it with the traceback in ")
        log = Path(text.split("traceback in ")[1].split(". IR folders")[0])
        assert "Traceback (most recent call last)" in log.read_text() and "Traceback" not in text
        log.unlink()
