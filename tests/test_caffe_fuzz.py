"""A property-based fuzz of the native Caffe front end: prototxt text and caffemodel bytes.

Each example is a small network of random layers (every supported type and a few unsupported ones)
with random parameters (zeros, huge values, wrong kinds), inputs in every form, bottoms that exist
or not, weights that fit (drawn by the numpy reference where it can run the net) or not, written
packed, unpacked, as doubles or in the legacy shape; then, often, the text or the bytes are cut,
spliced or sprinkled with brackets, quotes and random bytes. ``caffe.convert`` (in process, so that
thousands of examples stay cheap) must return a model or raise an OmzError with a message: no other
exception, no hang. The fuzz runs in a child process, whose peak RSS is then bounded; a few runs of
``omz-converter --backend native`` on hostile files go through the CLI and the IR check as well.

Derandomised (the same examples every run): ``OMZ_CAFFE_FUZZ_EXAMPLES`` (default 1500 per
property: 3000 conversions) sets how many; raise it to fuzz longer locally.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

EXAMPLES = int(os.environ.get("OMZ_CAFFE_FUZZ_EXAMPLES", "1500"))
HERE = Path(__file__).resolve().parent
MIB = 1 << 20

if __name__ != "__main__":
    pytestmark = pytest.mark.native
    pytest.importorskip("hypothesis")
    pytest.importorskip("openvino")
    sys.path.insert(0, str(HERE))
    from test_hostile_caffe import convert, register  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

ODD_INTS = ["0", "1", "2", "3", "-1", "7", "64", "100000", "4294967295", "4294967296", "-2147483649",
            "99999999999999999999", "1.5", "nan", "inf", "true", "\"3\"", "0x10"]
ODD_FLOATS = ["0", "1", "-1", "0.5", "1e-30", "1e30", "nan", "inf", "-inf", "1e400", "2", "-0.0", "abc"]
ENUMS = ["MAX", "AVE", "STOCHASTIC", "SUM", "PROD", "ACROSS_CHANNELS", "WITHIN_CHANNEL", "CEIL", "FLOOR",
         "CAFFE", "NOPE", "0", "5"]
# type -> (its parameter message, the fields the fuzz sets: name -> kind)
PARAMS = {
    "Convolution": ("convolution_param", {"num_output": "int", "kernel_size": "int", "stride": "int",
                                          "pad": "int", "group": "int", "dilation": "int", "bias_term": "bool",
                                          "kernel_h": "int", "pad_w": "int", "axis": "int"}),
    "Pooling": ("pooling_param", {"pool": "enum", "kernel_size": "int", "stride": "int", "pad": "int",
                                  "global_pooling": "bool", "round_mode": "enum", "ceil_mode": "bool"}),
    "InnerProduct": ("inner_product_param", {"num_output": "int", "axis": "int", "transpose": "bool",
                                             "bias_term": "bool"}),
    "Softmax": ("softmax_param", {"axis": "int"}), "Concat": ("concat_param", {"axis": "int", "concat_dim": "int"}),
    "Eltwise": ("eltwise_param", {"operation": "enum", "coeff": "float"}),
    "Slice": ("slice_param", {"axis": "int", "slice_point": "int"}),
    "Reshape": ("reshape_param", {"shape": "shape", "axis": "int", "num_axes": "int"}),
    "Permute": ("permute_param", {"order": "int"}), "Flatten": ("flatten_param", {"axis": "int", "end_axis": "int"}),
    "Power": ("power_param", {"power": "float", "scale": "float", "shift": "float"}),
    "LRN": ("lrn_param", {"local_size": "int", "alpha": "float", "beta": "float", "norm_region": "enum"}),
    "Scale": ("scale_param", {"axis": "int", "num_axes": "int", "bias_term": "bool"}),
    "BatchNorm": ("batch_norm_param", {"eps": "float", "use_global_stats": "bool"}),
    "PReLU": ("prelu_param", {"channel_shared": "bool"}), "ReLU": ("relu_param", {"negative_slope": "float"}),
    "Dropout": ("dropout_param", {"dropout_ratio": "float"}),
    "Deconvolution": ("convolution_param", {"num_output": "int", "kernel_size": "int", "stride": "int",
                                            "pad": "int", "group": "int"}),
}
SIMPLE = ["ReLU", "Sigmoid", "TanH", "Power", "Dropout", "Softmax", "Pooling", "Flatten", "Split", "AbsVal",
          "BNLL", "Exp", "ELU", "ReLU6"]


def _types():
    from omz_tools.convert.caffe import SUPPORTED_LAYER_TYPES
    return sorted(SUPPORTED_LAYER_TYPES - {"Input"}) + ["MVN", "Data", "", "Convolution", "Pooling", "ReLU"]


def _value(kind: str, draw) -> str:
    if kind == "int":
        return draw(st.sampled_from(["0", "1", "2", "3", "4"] * 15 + ODD_INTS))
    if kind == "float":
        return draw(st.sampled_from(["0.5", "1", "2", "0"] * 4 + ODD_FLOATS))
    if kind == "bool":
        return draw(st.sampled_from(["true", "false"] * 8 + ["1", "maybe"]))
    if kind == "enum":
        return draw(st.sampled_from(ENUMS[:7] * 4 + ENUMS))
    dims = draw(st.lists(st.sampled_from(["0", "-1", "1", "2", "3", "4", "8", "100000"]), max_size=5))
    return "{ " + " ".join(f"dim: {d}" for d in dims) + " }"


def _param_block(kind: str, draw) -> str:
    if kind not in PARAMS or not draw(st.integers(0, 4)):
        return ""
    message, fields = PARAMS[kind]
    chosen = draw(st.lists(st.sampled_from(sorted(fields)), max_size=4))
    body = " ".join(f"{name}{'' if fields[name] == 'shape' else ':'} {_value(fields[name], draw)}" for name in chosen)
    return f" {message} {{ {body} }}"


def _inputs(draw) -> tuple:
    dims = draw(st.lists(st.sampled_from(["1", "2", "3", "4", "5", "8", "0", "-1", "100000"]), min_size=0, max_size=5))
    if draw(st.booleans()) and len(dims) != 4:
        dims = ["1", "3", draw(st.sampled_from(["4", "8", "9"])), draw(st.sampled_from(["4", "8", "7"]))]
    form = draw(st.integers(0, 3))
    shape = " ".join(f"dim: {d}" for d in dims)
    if form == 0:
        return f'layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {shape} }} }} }}\n', ["data"]
    if form == 1:
        return f'input: "data"\ninput_shape {{ {shape} }}\n', ["data"]
    if form == 2:
        return 'input: "data"\n' + "".join(f"input_dim: {d}\n" for d in dims), ["data"]
    return "", []


@st.composite
def networks(draw) -> str:
    header, blobs = _inputs(draw)
    text = f'name: "fuzz"\n{header}'
    types = _types()
    for i in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(SIMPLE + types))
        count = 2 if kind in ("Eltwise", "Concat", "Axpy") else 1
        count = draw(st.sampled_from([count, count, count, 0, 3]))
        bottoms = [draw(st.sampled_from(blobs)) if blobs and draw(st.integers(0, 9)) else f"nowhere{i}"
                   for _ in range(count)]
        top = bottoms[0] if bottoms and draw(st.integers(0, 3)) == 0 else f"b{i}"
        tops = [top] + ([f"b{i}_2"] if kind in ("Slice", "Split") and draw(st.booleans()) else [])
        parts = [f'name: "l{i}"', f'type: "{kind}"'] + [f'bottom: "{b}"' for b in bottoms] + [f'top: "{t}"' for t in tops]
        text += "layer { " + " ".join(parts) + _param_block(kind, draw) + " }\n"
        blobs += [t for t in tops if t not in blobs]
    return text


def _mutate_text(text: str, draw) -> str:
    kind = draw(st.integers(0, 14))
    if kind > 5 or not text:
        return text
    at = draw(st.integers(0, len(text)))
    if kind == 0:
        return text[:at]
    if kind == 1:
        return text[:at] + text[draw(st.integers(at, len(text))):]
    if kind == 2:
        return text[:at] + draw(st.text(st.sampled_from(list("{}<>[]:\"'#\\\n 0123456789abc-.")), max_size=12)) + text[at:]
    if kind == 3:
        return text[:at] + "x { " * draw(st.sampled_from([50, 99, 101, 400])) + text[at:]
    if kind == 4:
        return text[:at] + draw(st.text(max_size=8)) + text[at:]
    return text + text[at:]


def _blobs_for(text: str, draw) -> dict:
    """Weights the numpy reference draws for the net when it can run it; else random little blobs."""
    import numpy as np
    sys.path.insert(0, str(HERE))
    from helpers_caffe import make_weights, parse_prototxt
    try:
        blobs = make_weights(parse_prototxt(text), 0, batch=1)
    except Exception:  # noqa: BLE001 - the reference cannot run every random net: random blobs then
        blobs = {}
    names = [n for n in draw(st.lists(st.sampled_from([f"l{i}" for i in range(6)]), max_size=3))
             if n not in blobs and not draw(st.integers(0, 2))]
    for name in names:
        shapes = draw(st.lists(st.lists(st.integers(0, 4), max_size=4), min_size=1, max_size=3))
        blobs[name] = [np.full(s, 0.5, np.float32) for s in shapes]
    return blobs


def _mutate_bytes(data: bytes, draw) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind > 4 or not data:
        return data
    at = draw(st.integers(0, len(data)))
    if kind == 0:
        return data[:at]
    if kind == 1:
        return data[:at] + draw(st.binary(max_size=16)) + data[at:]
    if kind == 2:
        return data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    if kind == 3:
        return draw(st.binary(max_size=64))
    return data[:at] + draw(st.sampled_from([b"\x0a\xff\xff\xff\xff\x0f", b"\xa2\x06\x80\x80\x80\x80\x10",
                                            b"\x0b\x0c", b"\x2d" * 9, b"\xff" * 11])) + data[at:]


OUTCOMES: dict = {}


def _convert(text: str, weights: bytes, work: Path) -> None:
    """The property: a model, or an OmzError with a message; anything else propagates (a failure)."""
    from omz_tools.convert import caffe
    from omz_tools.errors import OmzError
    proto, model = work / "net.prototxt", work / "net.caffemodel"
    proto.write_text(text, encoding="utf-8", errors="surrogatepass")
    model.write_bytes(weights)
    try:
        caffe.convert([f"--input_proto={proto}", f"--input_model={model}"])
        OUTCOMES["converted"] = OUTCOMES.get("converted", 0) + 1
    except OmzError as exc:
        assert str(exc).strip(), f"{type(exc).__name__} with no message"
        OUTCOMES["refused"] = OUTCOMES.get("refused", 0) + 1
        if os.environ.get("OMZ_CAFFE_FUZZ_VERBOSE"):
            print("   ", str(exc)[:160])


@FUZZ
@given(st.data())
def fuzz_prototxt(data) -> None:
    text = data.draw(networks())
    mutated = _mutate_text(text, data.draw)
    with tempfile.TemporaryDirectory() as work:
        weights = b""
        if mutated == text:
            sys.path.insert(0, str(HERE))
            from helpers_caffe import write_caffemodel
            (Path(work) / "w.prototxt").write_text(text)
            try:
                weights = write_caffemodel(Path(work) / "w.prototxt", Path(work) / "w.caffemodel",
                                           blobs=_blobs_for(text, data.draw)).read_bytes()
            except Exception:  # noqa: BLE001 - a net the helper's parser refuses: no weights
                weights = b""
        _convert(mutated, weights, Path(work))


@settings(FUZZ)
@given(st.data())
def fuzz_caffemodel(data) -> None:
    sys.path.insert(0, str(HERE))
    from helpers_caffe import write_caffemodel
    text = data.draw(networks())
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "w.prototxt").write_text(text)
        form = data.draw(st.sampled_from([{}, {"unpacked": True}, {"double": True}, {"legacy_shape": True}]))
        try:
            weights = write_caffemodel(Path(work) / "w.prototxt", Path(work) / "w.caffemodel",
                                       blobs=_blobs_for(text, data.draw), **form).read_bytes()
        except Exception:  # noqa: BLE001 - the helper's parser refuses the text: random bytes
            weights = data.draw(st.binary(max_size=256))
        _convert(text, _mutate_bytes(weights, data.draw), Path(work))


# -- the test: the fuzz in a child, whose peak memory is bounded ---------------------------------------

def main() -> None:
    """Run both properties (the child's entry point); print the peak RSS last."""
    import time
    os.environ["OMZ_TENSOR_MAX_SIZE"] = "64M"  # the front end's bound; no model is compiled here
    began = time.monotonic()
    fuzz_prototxt()
    fuzz_caffemodel()
    print(f"{2 * EXAMPLES} examples in {time.monotonic() - began:.1f} s: {OUTCOMES.get('converted', 0)} converted, "
          f"{OUTCOMES.get('refused', 0)} refused with a message (hypothesis also runs a few to shrink or replay)")
    from helpers_memory import peak_rss_bytes
    print(peak_rss_bytes())


def test_fuzzed_prototxt_and_caffemodel_give_a_model_or_one_message():
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMZ_") or k == "OMZ_CAFFE_FUZZ_EXAMPLES"}
    proc = subprocess.run([sys.executable, __file__], capture_output=True, text=True, env=env, timeout=1200,
                          cwd=HERE)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    *said, peak = proc.stdout.strip().splitlines()
    print(said[-1])
    assert int(peak) < 1024 * MIB, f"the fuzz peaked at {int(peak) / MIB:.0f} MiB"


CLI_CASES = {  # hostile files the fuzz refuses, through omz-converter and its IR check
    "cut": ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim', None),
    "no-bottom": ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }\n'
                  'layer { name: "l0" type: "Sigmoid" top: "b0" }\n', None),
    "negative-dim": ('input: "data"\ninput_dim: 1\ninput_dim: -3\nlayer { name: "conv" type: "ReLU" bottom: "data" '
                     'top: "conv" }\n', None),
    "garbage-weights": ('layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 '
                        'dim: 4 } } }\nlayer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
                        'convolution_param { num_output: 2 kernel_size: 1 } }\n', b"\xa2\x06\x80\x80\x80\x80\x10conv"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_fuzz_findings_through_the_converter_are_one_message(tmp_path, case):
    text, weights = CLI_CASES[case]
    run = register(tmp_path, case, text, caffemodel=weights or b"", output="b0" if case == "no-bottom" else "conv")
    proc, _ = convert(run)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    failed = proc.stderr.split("FAILED:\n")[1].splitlines()
    assert len(failed) == 1 and failed[0].startswith(f"{case}: the native Caffe front end cannot convert it: ")
    assert f"{case}.prototxt" in failed[0] or f"{case}.caffemodel" in failed[0] or "Sigmoid" in failed[0], failed


if __name__ == "__main__":
    main()


# The fuzz's own finds, kept as plain cases: an axis Caffe would reject (out of range, or any axis of
# a 0-D blob) is one message naming the layer, not a ZeroDivisionError or a silent wrap to another axis.
@pytest.mark.parametrize("shape,layer,said", [
    ("", 'type: "InnerProduct" inner_product_param { num_output: 2 }', "axis 1 on a 0-D input"),
    ("", 'type: "Flatten"', "axis 1 on a 0-D input"),
    ("dim: 1 dim: 3 dim: 4 dim: 4", 'type: "Flatten" flatten_param { axis: 4 }',
     "axis 4 is out of range for its 4-D input (expected -4 to 3)"),
    ("dim: 1 dim: 3 dim: 4 dim: 4", 'type: "Softmax" softmax_param { axis: -5 }', "out of range"),
    ("dim: 1 dim: 3 dim: 4 dim: 4", 'type: "Tile" tile_param { axis: 9 tiles: 2 }', "axis 9 is out of range"),
])
def test_an_axis_caffe_rejects_is_one_message(tmp_path, shape, layer, said):
    from omz_tools.convert import caffe
    text = (f'name: "axes"\nlayer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ {shape} }} }} }}\n'
            f'layer {{ name: "l0" {layer} bottom: "data" top: "out" }}\n')
    proto, model = tmp_path / "net.prototxt", tmp_path / "net.caffemodel"
    proto.write_text(text)
    model.write_bytes(b"")
    with pytest.raises(caffe.CaffeConversionError) as raised:
        caffe.convert([f"--input_proto={proto}", f"--input_model={model}"])
    assert str(raised.value).startswith('layer "l0"') and said in str(raised.value), str(raised.value)
