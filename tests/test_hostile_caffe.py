"""Hostile Caffe model files against the native converter (issue 20, items 3-7): each is one clear
message naming the file and the limit, exit 1, bounded memory, nothing written outside -o.

Peak memory is measured with resource.getrusage in the child (a memory bound, not a time limit)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import command, write_registry_files
from helpers_caffe import file_digest, write_caffemodel
from helpers_memory import PEAK_SOURCE

pytestmark = pytest.mark.native
ov = pytest.importorskip("openvino")

MIB = 1 << 20
# Running the converter on a tiny net peaks at a few hundred MiB (Python, OpenVINO, numpy, protobuf).
BASELINE_RSS = 700 * MIB

# Every run prints the child's peak RSS (bytes) on its last line of stderr.
_MEASURED = ("import resource, subprocess, sys\n"
             "code = subprocess.run(sys.argv[1:]).returncode\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024, file=sys.stderr)\n"
             "sys.exit(code)\n")


def conv_net(pad: int, shape=(1, 3, 8, 8)) -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return (f'name: "pad"\nlayer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {dims} }} }} }}\n'
            f'layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" '
            f'convolution_param {{ num_output: 1 kernel_size: 1 pad: {pad} }} }}\n')


CONV_BLOBS = {"conv": [np.full((1, 3, 1, 1), 0.1, np.float32), np.zeros(1, np.float32)]}


def register(tmp_path: Path, name: str, prototxt: str, blobs=None, *, mo_args=(), output="conv",
             caffemodel: bytes = None) -> dict:
    """A registry with one Caffe model (its two files downloaded and verified); the paths of a run."""
    folder = tmp_path / "dl" / "public" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.prototxt").write_text(prototxt)
    if caffemodel is None:
        write_caffemodel(folder / f"{name}.prototxt", folder / f"{name}.caffemodel", blobs=blobs or {})
    else:
        (folder / f"{name}.caffemodel").write_bytes(caffemodel)
    files = "".join(f"  - name: {f}\n    size: {file_digest(folder / f)[0]}\n    sha256: {file_digest(folder / f)[1]}\n"
                    f"    source: http://127.0.0.1:9/{f}\n" for f in (f"{name}.prototxt", f"{name}.caffemodel"))
    args = [f"--input_model=$dl_dir/{name}.caffemodel", f"--output={output}", *mo_args]
    if not any(a.startswith("--input_proto") for a in mo_args):  # mo_args may name another one
        args.append(f"--input_proto=$dl_dir/{name}.prototxt")
    arg_lines = "".join(f"  - {a}\n" for a in args)
    write_registry_files(tmp_path / "registry", {f"public/{name}": (
        f"description: hostile {name}\ntask_type: classification\nfiles:\n{files}"
        f"model_optimizer_args:\n{arg_lines}framework: caffe\nlicense: https://example.com/license\n")})
    return {"name": name, "registry": tmp_path / "registry", "dl": tmp_path / "dl", "out": tmp_path / "out"}


def convert(run: dict, env_extra: dict = None, *extra) -> tuple:
    """omz-converter --backend native in a child: (CompletedProcess, its peak RSS in bytes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMZ_")}
    env.update(CI="true", **(env_extra or {}))
    cmd = [sys.executable, "-c", _MEASURED, command("omz-converter"), "--name", run["name"],
           "--registry", str(run["registry"]), "-d", str(run["dl"]), "-o", str(run["out"]),
           *(extra if "--backend" in extra else ("--backend", "native", *extra))]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    *rest, peak = proc.stderr.rstrip("\n").split("\n")
    proc.stderr = "\n".join(rest) + ("\n" if rest else "")
    return proc, int(peak)


def failed_line(proc, name: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = proc.stderr.split("FAILED:\n")[1].splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{name}: "), proc.stderr
    return lines[0]


def nothing_installed(run: dict) -> None:
    folder = run["out"] / "public" / run["name"]
    assert not any((folder / p).exists() for p in ("FP32", "FP16")), list(folder.rglob("*"))


# -- item 3: activation memory from layer sizes ----------------------------------------------------

def test_the_issues_convolution_padded_to_a_4_gb_peak_is_refused_at_the_default(tmp_path):
    # The issue's 480-byte prototxt: pad: 8000 on one channel is a 0.95 GiB output, a ~4 GB peak in the
    # IR check before the default was lowered to 512 MiB.
    run = register(tmp_path, "pad8000", conv_net(8000), CONV_BLOBS)
    proc, peak = convert(run)
    line = failed_line(proc, "pad8000")
    assert "pad8000.prototxt" in line, line
    assert 'layer "conv" (Convolution) gives a tensor of shape [1, 1, 16008, 16008] (f32), 977.5 MiB' in line, line
    assert "raise OMZ_TENSOR_MAX_SIZE (now 512.0 MiB)" in line, line
    assert peak < BASELINE_RSS, peak
    nothing_installed(run)


def test_a_net_below_the_default_converts_and_a_lowered_limit_refuses_it(tmp_path):
    # pad: 3000 gives 1x1x6008x6008, 138 MiB: converts at the default (a raised limit would convert the
    # issue's pad: 8000 the same way, at a ~4 GB peak, which a test should not take).
    run = register(tmp_path, "pad3000", conv_net(3000), CONV_BLOBS)
    proc, _ = convert(run, {"OMZ_TENSOR_MAX_SIZE": "128M"})
    line = failed_line(proc, "pad3000")
    assert "[1, 1, 6008, 6008] (f32), 137.7 MiB" in line and "OMZ_TENSOR_MAX_SIZE (now 128.0 MiB)" in line, line
    nothing_installed(run)
    proc, _ = convert(run)
    assert proc.returncode == 0, proc.stderr
    assert (run["out"] / "public" / "pad3000" / "FP32" / "pad3000.xml").is_file()


def test_the_tensor_limit_is_overridable_and_bounds_a_net_that_converts_today(tmp_path):
    run = register(tmp_path, "pad300", conv_net(300), CONV_BLOBS)  # output 1x1x608x608: 1.4 MiB
    proc, _ = convert(run, {"OMZ_TENSOR_MAX_SIZE": "1M"})
    line = failed_line(proc, "pad300")
    assert 'layer "conv" (Convolution) gives a tensor of shape [1, 1, 608, 608] (f32), 1.4 MiB' in line, line
    assert "raise OMZ_TENSOR_MAX_SIZE (now 1.0 MiB)" in line, line
    nothing_installed(run)
    proc, _ = convert(run, {"OMZ_TENSOR_MAX_SIZE": "2M"})
    assert proc.returncode == 0, proc.stderr
    bad, _ = convert(run, {"OMZ_TENSOR_MAX_SIZE": "lots"}, "--force")
    assert "OMZ_TENSOR_MAX_SIZE='lots' does not set" in failed_line(bad, "pad300")


def test_a_huge_input_is_refused_without_a_random_input(tmp_path):
    run = register(tmp_path, "wide", conv_net(0, (1, 3, 20000, 20000)), CONV_BLOBS)
    proc, peak = convert(run)
    line = failed_line(proc, "wide")
    assert 'layer "data" (Parameter) gives a tensor of shape [1, 3, 20000, 20000] (f32), 4.5 GiB' in line, line
    assert "wide.prototxt" in line and "OMZ_TENSOR_MAX_SIZE" in line
    assert peak < BASELINE_RSS, peak


def test_the_ir_check_bounds_tensors_before_compiling(tmp_path, monkeypatch):
    """The check both backends run (Model Optimizer's IR goes through it too), on a saved IR."""
    from omz_tools.convert import bounds, ircheck
    from omz_tools.registry import Registry
    run = register(tmp_path, "checked", conv_net(300), CONV_BLOBS)
    from omz_tools.convert import caffe
    folder = run["dl"] / "public" / "checked"
    model = caffe.convert([f"--input_model={folder / 'checked.caffemodel'}",
                           f"--input_proto={folder / 'checked.prototxt'}"])
    xml = tmp_path / "ir" / "checked.xml"
    ov.save_model(model, str(xml))
    entry = Registry.from_options([run["registry"]]).load("checked")
    monkeypatch.setenv("OMZ_TENSOR_MAX_SIZE", "1M")
    with pytest.raises(bounds.BoundError) as refused:
        ircheck.check_ir(entry, xml)
    message = str(refused.value)
    assert "checked.prototxt, checked.caffemodel" in message and "[1, 1, 608, 608]" in message, message
    assert "OMZ_TENSOR_MAX_SIZE (now 1.0 MiB)" in message, message
    monkeypatch.setenv("OMZ_TENSOR_MAX_SIZE", "2M")
    figures, problems = ircheck.check_ir(entry, xml)
    assert problems == [] and figures.outputs == {"conv": [1, 1, 608, 608]}


# -- item 6: files that are not regular, or too large ----------------------------------------------

def test_input_proto_at_dev_zero_is_refused_without_reading_it(tmp_path):
    run = register(tmp_path, "zero", conv_net(0), CONV_BLOBS, mo_args=["--input_proto=/dev/zero"])
    proc, peak = convert(run)
    line = failed_line(proc, "zero")
    assert "the Caffe network description /dev/zero is a character device; the converter reads only regular files" in line
    assert peak < BASELINE_RSS, peak
    nothing_installed(run)


def test_a_fifo_never_blocks(tmp_path):
    fifo = tmp_path / "net.fifo"
    os.mkfifo(fifo)
    run = register(tmp_path, "fifo", conv_net(0), CONV_BLOBS, mo_args=[f"--input_proto={fifo}"])
    proc, _ = convert(run)  # a hang would end at convert's timeout, a failure
    assert f"the Caffe network description {fifo} is a named pipe (FIFO)" in failed_line(proc, "fifo")


def test_a_caffemodel_fifo_never_blocks(tmp_path):
    from omz_tools.convert import caffe
    fifo = tmp_path / "weights.fifo"
    os.mkfifo(fifo)
    proto = tmp_path / "net.prototxt"
    proto.write_text(conv_net(0))
    with pytest.raises(caffe.CaffeConversionError, match=f"the Caffe weights file {fifo} is a named pipe \\(FIFO\\)"):
        caffe.convert([f"--input_model={fifo}", f"--input_proto={proto}"])


def test_huge_files_are_refused_by_size_before_reading(tmp_path):
    run = register(tmp_path, "huge", conv_net(0), CONV_BLOBS, mo_args=[f"--input_proto={tmp_path / 'big.prototxt'}"])
    with open(tmp_path / "big.prototxt", "wb") as stream:  # sparse: 100 MiB that take no disk
        stream.truncate(100 * MIB)
    proc, peak = convert(run)
    line = failed_line(proc, "huge")
    assert f"the Caffe network description {tmp_path / 'big.prototxt'} has 100.0 MiB (104,857,600 bytes)" in line
    assert "raise OMZ_PROTOTXT_MAX_SIZE (now 64.0 MiB)" in line, line
    assert peak < BASELINE_RSS, peak
    run = register(tmp_path / "w", "heavy", conv_net(0), CONV_BLOBS)
    weights = run["dl"] / "public" / "heavy" / "heavy.caffemodel"
    proc, _ = convert(run, {"OMZ_MODEL_FILE_MAX_SIZE": "64"})
    line = failed_line(proc, "heavy")
    assert f"the Caffe weights file {weights} has" in line and "raise OMZ_MODEL_FILE_MAX_SIZE (now 64 B)" in line


def _has_mo() -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec("openvino.tools.mo") is not None
    except ImportError:
        return False


@pytest.mark.skipif(not _has_mo(), reason="needs Model Optimizer (openvino-dev) for --backend mo")
def test_model_optimizer_is_not_run_on_a_device_or_fifo(tmp_path):
    fifo = tmp_path / "net.fifo"
    os.mkfifo(fifo)
    for name, path in (("mozero", "/dev/zero"), ("mofifo", str(fifo))):
        run = register(tmp_path / name, name, conv_net(0), CONV_BLOBS, mo_args=[f"--input_proto={path}"])
        proc, peak = convert(run, None, "--backend", "mo")
        line = failed_line(proc, name)
        assert f"--input_proto={path} (model_optimizer_args of {run['registry']}/public/{name}/model.yml" in line
        assert ("is a character device" if name == "mozero" else "is a named pipe (FIFO)") in line, line
        assert "Model Optimizer was not run" in line and peak < BASELINE_RSS
        assert not (run["out"] / "public" / name / f".omz_convert.{name}.log").exists()


# -- item 5: unpacked floats in a caffemodel ---------------------------------------------------------

def unpacked_caffemodel(path: Path, values: np.ndarray, dims, *, interleave: bool = False) -> Path:
    """One Convolution layer "conv" whose blob 0 holds ``values`` unpacked (one fixed32 field each;
    ``interleave``: each followed by a diff value, so no two data values are adjacent) and declares ``dims``."""
    from helpers_caffe import _field, _varint
    shape = b"".join(_varint(1 << 3) + _varint(d) for d in dims)
    record = np.zeros(values.size, dtype=[("tag", "u1"), ("value", "<f4")] +
                      ([("diff_tag", "u1"), ("diff", "<f4")] if interleave else []))
    record["tag"], record["value"] = 5 << 3 | 5, values
    if interleave:
        record["diff_tag"], record["diff"] = 6 << 3 | 5, -1.0
    blob = _field(7, shape) + record.tobytes()
    layer = _field(1, b"conv") + _field(2, b"Convolution") + _field(7, blob)
    path.write_bytes(_field(1, b"net") + _field(100, layer))
    return path


_READ_PEAK = (PEAK_SOURCE + "import sys\n"
              "from omz_tools.convert.caffe.caffemodel import read_caffemodel\n"
              "from omz_tools.convert.caffe import CaffeConversionError\n"
              "try:\n"
              "    blobs = read_caffemodel(sys.argv[1], {'conv': 'Convolution'})['conv']\n"
              "    print('ok', blobs[0].shape, float(blobs[0].sum()))\n"
              "except CaffeConversionError as exc:\n"
              "    print('error', exc)\n"
              "print(peak_rss_bytes())\n")


def read_measured(path: Path) -> tuple:
    proc = subprocess.run([sys.executable, "-c", _READ_PEAK, str(path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    said, peak = proc.stdout.rstrip("\n").rsplit("\n", 1)
    return said, int(peak)


def test_unpacked_floats_that_do_not_match_the_shape_are_refused_before_they_are_made(tmp_path):
    path = unpacked_caffemodel(tmp_path / "w.caffemodel", np.full(8_000_000, 0.5, np.float32), [1, 3, 1, 1])
    size = path.stat().st_size  # 40 MB
    said, peak = read_measured(path)
    assert said == (f"error {path}: layer \"conv\" (Convolution), blob 0: the blob's shape [1, 3, 1, 1] needs 3 "
                    "values, the caffemodel holds 8000000; the caffemodel is truncated or corrupt, or does not "
                    "belong to this prototxt"), said
    assert peak < BASELINE_RSS / 2 + 3 * size, (peak, size)


@pytest.mark.parametrize("interleave", [False, True])
def test_unpacked_floats_are_read_in_memory_a_small_multiple_of_the_file(tmp_path, interleave):
    rows = 100 if interleave else 1000  # interleaved, each value is a field of its own: slower
    values = (np.arange(rows * 2000, dtype=np.float32) % 7) * 0.25
    path = unpacked_caffemodel(tmp_path / "w.caffemodel", values, [rows, 2000], interleave=interleave)
    said, peak = read_measured(path)
    assert said == f"ok ({rows}, 2000) {float(values.sum())}", said
    assert peak < BASELINE_RSS / 2 + 3 * path.stat().st_size, (peak, path.stat().st_size)


def test_unpacked_and_packed_runs_of_one_blob_concatenate_in_wire_order():
    from helpers_caffe import _field, _varint
    from omz_tools.convert.caffe.caffemodel import blob_array
    packed = _field(5, np.array([1, 2], "<f4").tobytes())
    unpacked = b"".join(bytes([5 << 3 | 5]) + np.float32(v).tobytes() for v in (3, 4))
    diff = bytes([6 << 3 | 5]) + np.float32(9).tobytes()
    shape = _field(7, _varint(1 << 3) + _varint(4))
    blob = unpacked[:5] + shape + packed + diff + unpacked[5:] + diff
    assert blob_array(blob, "b").tolist() == [3, 1, 2, 4]
    with pytest.raises(Exception, match="b: the blob's shape \\[4\\] needs 4 values, the caffemodel holds 5"):
        blob_array(blob + unpacked[:5], "b")


# -- item 7: a prototxt nested deeper than the text parser can follow --------------------------------

def nested(depth: int, open_="{", close="}") -> str:
    return (conv_net(0) + 'layer { name: "extra" type: "Dropout" bottom: "conv" top: "conv" '
            + f"unknown_param {open_} " * depth + "x: 1" + f" {close}" * depth + " }\n")


def conv_weights(tmp_path: Path) -> bytes:
    """The bytes of a caffemodel for conv_net (written from a plain copy of it)."""
    (tmp_path / "plain.prototxt").write_text(conv_net(0))
    return write_caffemodel(tmp_path / "plain.prototxt", tmp_path / "plain.caffemodel", blobs=CONV_BLOBS).read_bytes()


def test_a_prototxt_nested_2000_levels_names_the_file_and_the_limit(tmp_path):
    run = register(tmp_path, "deep", nested(2000), caffemodel=conv_weights(tmp_path))
    proc, _ = convert(run)
    line = failed_line(proc, "deep")
    assert "deep.prototxt nests blocks ({ }, < > or [ ]) 2,001 levels deep (line 4)" in line, line
    assert "the nesting depth of a Caffe .prototxt allows (100)" in line and "OMZ_PROTOTXT_MAX_DEPTH" in line, line
    assert "OpenVINO" not in line and "recursion" not in line, line


@pytest.mark.parametrize("open_,close", [("<", ">"), ("[", "]")])
def test_nesting_counts_every_bracket_but_not_those_in_strings_or_comments(tmp_path, open_, close):
    from omz_tools.convert import caffe
    weights = tmp_path / "net.caffemodel"
    weights.write_bytes(conv_weights(tmp_path))
    proto = tmp_path / "net.prototxt"
    proto.write_text(nested(150, open_, close))
    with pytest.raises(caffe.CaffeConversionError, match="nests blocks .* 151 levels deep"):
        caffe.convert([f"--input_model={weights}", f"--input_proto={proto}"])
    quoted = "# {{{{{{{{ " * 3 + "\n" + conv_net(0).replace('name: "pad"', 'name: "' + open_ * 500 + '\\""')
    proto.write_text(quoted)
    assert caffe.convert([f"--input_model={weights}", f"--input_proto={proto}"]) is not None


def test_a_raised_nesting_limit_ends_in_one_message_not_a_recursion_error(tmp_path, monkeypatch):
    from omz_tools.convert import caffe
    proto = tmp_path / "net.prototxt"
    proto.write_text(nested(3000))
    monkeypatch.setenv("OMZ_PROTOTXT_MAX_DEPTH", "5000")
    with pytest.raises(caffe.CaffeConversionError, match="deeper than protobuf's text parser can follow within "
                       "Python's recursion limit \\(OMZ_PROTOTXT_MAX_DEPTH is 5,000"):
        caffe.convert([f"--input_proto={proto}", f"--input_model={tmp_path / 'absent.caffemodel'}"])


# -- item 4: time linear in the layer count ------------------------------------------------------------

def dropout_chain(count: int, in_place: bool) -> str:
    lines = [conv_net(0).splitlines()[0], conv_net(0).splitlines()[1]]
    for i in range(count):
        top = "data" if in_place else f"d{i}"
        lines.append(f'layer {{ name: "drop{i}" type: "Dropout" bottom: "{"data" if in_place or not i else f"d{i - 1}"}" '
                     f'top: "{top}" }}')
    return "\n".join(lines) + "\n"


def _lines_run(path: Path, output: str) -> int:
    """Lines of the native front end's own code (omz_tools/convert) run to read and build the net."""
    from omz_tools.convert.caffe import build, mo_args, reader
    own = str(Path(reader.__file__).resolve().parent.parent)
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "call":
            return tracer if frame.f_code.co_filename.startswith(own) else None
        count += event == "line"
        return tracer

    sys.settrace(tracer)
    try:
        build.build(reader.read_net(path, None), mo_args.parse([f"--input_proto={path}", "--input_model=x.caffemodel",
                                                                f"--output={output}"]))
    finally:
        sys.settrace(None)
    return count


@pytest.mark.parametrize("in_place", [False, True])
def test_reading_and_building_do_work_linear_in_the_layer_count(tmp_path, in_place):
    """A structural bound, not a time one: the lines of our code run for 4x the layers are about 4x
    (a scan of every layer per layer output, as before, made 20,000 Dropout layers take 177 s)."""
    work = {}
    for count in (300, 1200):
        path = tmp_path / f"chain{count}.prototxt"
        path.write_text(dropout_chain(count, in_place))
        work[count] = _lines_run(path, "data" if in_place else f"d{count - 1}")
    assert work[1200] < 5 * work[300], work


def test_a_net_of_20000_layers_converts_and_computes(tmp_path):
    from omz_tools.convert import caffe
    path = tmp_path / "deep.prototxt"
    path.write_text(dropout_chain(20000, False).replace('name: "pad"', 'name: "deep"'))
    (tmp_path / "empty.caffemodel").write_bytes(b"")  # a NetParameter with no layers: Dropout has no weights
    model = caffe.convert([f"--input_proto={path}", f"--input_model={tmp_path / 'empty.caffemodel'}",
                           "--output=d19999"])
    x = np.random.default_rng(0).normal(size=(1, 3, 8, 8)).astype(np.float32)
    compiled = ov.Core().compile_model(model, "CPU")
    assert np.array_equal(compiled(x)[compiled.output(0)], x)  # Dropout is the identity for inference
    assert compiled.output(0).get_names() >= {"d19999"}
