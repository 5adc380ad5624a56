"""A property-based fuzz of model_optimizer_args (and conversion_to_onnx_args) through the converter's planning.

Each example writes a registry with one model whose ``model_optimizer_args`` are built from the option
names the two parsers know (``convert.mo_cli_args`` for the ovc backend, ``convert.caffe.mo_args`` for
the native Caffe front end), their refusals, Model Optimizer-only options, prefixes and short forms,
with hostile values: empty, unbalanced and nested brackets, huge numbers, 0, negatives, nan, inf, 1e400,
unicode, control characters, very long strings, repeated options, odd ``$dl_dir``/``$conv_dir`` uses.
Then ``omz-converter --dry_run`` runs in-process (click's CliRunner) for frameworks onnx, tf and pytorch
(ovc backend) and caffe (native backend; its arguments also go through ``caffe.mo_args.parse``, which
the native dry run does not call). The property: a plan (exit 0), or a failure said as one message
(exit 1, or 2 for usage), never "unexpected error"/"this is a bug", never a traceback.

Derandomised; ``OMZ_FUZZ_EXAMPLES`` (default 1000 for onnx and caffe, half that for tf and pytorch) sets the
number of examples. The plain tests at the end pin the bugs it found.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
import yaml  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from omz_tools.cli import converter  # noqa: E402
from omz_tools.convert import mo_cli_args  # noqa: E402
from omz_tools.convert.caffe import mo_args as caffe_mo_args  # noqa: E402
from omz_tools.convert.ovc_pytorch import OPTIONS as ONNX_OPTIONS  # noqa: E402
from omz_tools.errors import OmzError  # noqa: E402

pytestmark = pytest.mark.native

EXAMPLES = int(os.environ.get("OMZ_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
CLEAN_ENV = {"OMZ_REGISTRY": None, "OMZ_MIRROR": None, "OMZ_OFFLINE": None, "CI": "true"}
SHA384 = "0123456789abcdef" * 6
FILES = {"onnx": "m1.onnx", "tf": "m1.pb", "pytorch": "m1.pth", "caffe": "m1.caffemodel"}

OVC_NAMES = sorted(mo_cli_args.VALUED | mo_cli_args.FLAGS | set(mo_cli_args.NEEDS_MO))
CAFFE_NAMES = sorted(caffe_mo_args.VALUED | caffe_mo_args.FLAGS)
# Model Optimizer-only, unknown, prefixes (some ambiguous), odd spellings
OTHER_NAMES = ["disable_fusing", "transformations_config", "batch", "static_shape", "extensions", "unknown_thing",
               "inp", "input_meta", "sc", "mean", "re", "l", "", "-", "input_model ", "INPUT", "scale_value",
               "mo_dir", "tensorboard_logdir", "k"]
SHORT = ["-m", "-s", "-b", "-n", "-o", "-d", "-x", "-", "input_model"]
NUMBERS = ["0", "-0", "0.0", "1", "-1", "255", "58.395", "1e-30", "-1e-30", "1e400", "-1e400", "nan", "NaN", "-nan",
           "inf", "-inf", "Infinity", "9" * 400, "1_0", "0x10", "1,", "", " ", "a", "٣", "１", "1e", "."]
VALUES = ["", " ", "[", "]", "[]", "()", "[[", "]]", "[[1,2],[3]]", "[" * 50 + "]" * 50, "[" * 3000, "data[",
          "data]", "data[1,3,8,8", "data[1,3,8,8]]", "data[[1,3]]", "data(1,2,3", "(", ")", "{", "}", "{f32}",
          "data{f32}", "data{x}[1]", "data[1,3,8,8]{f32}->[0]", "data->", "->1", "a->b->c", "data:0", "0:data",
          "data:x:y", ",", ",,", "a,,b", "$dl_dir", "$conv_dir", "$config_dir", "$mo_dir", "${dl_dir",
          "$dl_dir/../../etc/passwd", "$dl_dir/m1.onnx", "$dl_dir/", "$$dl_dir", "$", "NCHW", "NCHW->NHWC",
          "data(NCHW)", "data[NCHW->NHWC]", "->", "[N,C,H,W]", "NN", "data(NCHW),data(NHWC)", "caffe", "onnx",
          "True", "false", "1..10", "?", "-1", "[1,?,-1,1..3]", "[1..]", "[..]", "\x00", "\x1b[31m", "\t\n",
          "\u202e", "\ud800", "名前[1,2,3]", "x" * 5000, "9" * 5000, "[" + "9" * 5000 + "]", "data[1e400,1,1]",
          "data[nan,1,1]", "data[inf,1,1]", "data[0,0,0]", "[0]", "(0),(0)", "a[1],[2]", "a[1],b[2]", "a[1] b[2]",
          "data[1,2,3],data[4,5,6]", "1 2 3", "1,2,3"]
ONNX_VALUES = ["", "[", "[1,3,8,8]", "1,3,8,8", "[[1,3,8,8]]", "[[]]", "[" * 200 + "]" * 200, "[" * 3000,
               "'a'", "a=1", "a=", "=1", "a=[", "a=1e400", "a=" + "9" * 5000, "a=__import__('os')", "11", "0",
               "-1", "1e400", "nan", "x", "float", "half", "bogus", "$dl_dir", "$conv_dir/m1.onnx", "\x00", "名"]


def brackets(inner: st.SearchStrategy) -> st.SearchStrategy:
    """'name[v,v,v]', '[v]', '(v,v)' or several of them, from the ``inner`` value texts."""
    one = st.tuples(st.sampled_from(["", "data", "data ", "other", "0", "名", "a:0"]), st.sampled_from(["[]", "()"]),
                    st.lists(inner, max_size=4)).map(lambda t: f"{t[0]}{t[1][0]}{','.join(t[2])}{t[1][1]}")
    return st.lists(one, min_size=1, max_size=3).map(",".join)



PREPROCESSING = sorted({"input", "input_shape", "mean_values", "scale_values", "scale", "layout", "source_layout",
                        "target_layout", "reverse_input_channels", "output"})
LAYOUTS = ["NCHW", "NHWC", "[N,C,H,W]", "?C??", "NC", "NCHWD", "N...", "...C", "C", "CHWN", "N?C?", "??????C",
           "data(NCHW)", "data(NHWC->NCHW)", "data[NCHW->NHWC]", "out(NC??)", "out(NCHW->NHWC)", "data(...)", "data()",
           "data(N,C,H,W)", "data([N,C,H,W])", "data:0(NCHW)", "data(nchw)", "data(NCHW),out(NCHW)"]
SHAPES = ["data[1,3,8,8]", "[1,3,8,8]", "[1,8,8,3]", "[0,3,8,8]", "[1,3,0,0]", "[99999999999,3,8,8]", "[1,3,8]",
          "[1,3,?,?]", "[1,3,1..9,8]", "[-1,3,8,8]", "data[1,3,8,8]{f32}", "data{i32}", "data->[1]", "[]"]
focused_values = st.one_of(st.sampled_from(LAYOUTS), st.sampled_from(SHAPES), brackets(st.sampled_from(NUMBERS)),
                           st.sampled_from(NUMBERS), st.sampled_from(VALUES))

values = st.one_of(st.sampled_from(VALUES), st.sampled_from(NUMBERS),
                   st.sampled_from(LAYOUTS + SHAPES), brackets(st.sampled_from(NUMBERS)),
                   brackets(st.sampled_from(NUMBERS)), st.text(max_size=12), st.sampled_from(VALUES))


def focused_arguments(names: list) -> st.SearchStrategy:
    """Known option names with values near the valid ones, so that most examples reach the preprocessing."""
    return st.tuples(st.sampled_from(names), focused_values).map(
        lambda t: [f"--{t[0]}"] if t[0] == "reverse_input_channels" else [f"--{t[0]}={t[1]}"])


@st.composite
def focused_lists(draw, names: list = PREPROCESSING) -> list:
    return [a for item in draw(st.lists(focused_arguments(names), max_size=5)) for a in item]


def arguments(names: list) -> st.SearchStrategy:
    """One option as one or two list items: '--name=value', '--name' 'value' or '--name' alone."""
    name = st.one_of(st.sampled_from(names), st.sampled_from(names), st.sampled_from(OTHER_NAMES))
    return st.one_of(
        st.tuples(name, values).map(lambda t: [f"--{t[0]}={t[1]}"]),
        st.tuples(name, values).map(lambda t: [f"--{t[0]}={t[1]}"]),
        st.tuples(name, values).map(lambda t: [f"--{t[0]}", t[1]]),
        name.map(lambda n: [f"--{n}"]),
        st.tuples(st.sampled_from(SHORT), values).map(lambda t: [t[0], t[1]]),
        st.sampled_from(VALUES).map(lambda v: [v]))


@st.composite
def mo_arg_lists(draw, names: list, framework: str) -> list:
    args = [] if not draw(st.integers(0, 9)) else [f"--input_model=$dl_dir/{FILES[framework]}"]
    if framework == "pytorch" and args:
        args = ["--input_model=$conv_dir/m1.onnx"]
    for item in draw(st.lists(arguments(names), max_size=6)):
        args += item
    if draw(st.integers(0, 5)) == 0 and len(args) > 1:  # the same option again
        args += args[-2:]
    return args


@st.composite
def onnx_arg_lists(draw) -> list:
    base = ["--model-name=Net", "--import-module=net", "--input-shapes=1,3,8,8", "--input-names=data",
            "--output-names=prob", "--output-file=$conv_dir/m1.onnx"]
    args = draw(st.permutations(base)) if draw(st.booleans()) else list(base)
    args = args[:len(args) - draw(st.integers(0, 1))]
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.one_of(st.sampled_from(ONNX_OPTIONS), st.sampled_from(["mod", "in", "", "x", "opset"])))
        form = draw(st.sampled_from(["--{k}={v}", "--{k}", "{k}={v}", "-{k}={v}"]))
        args.append(form.format(k=key, v=draw(st.one_of(st.sampled_from(ONNX_VALUES), st.text(max_size=8)))))
    return args


def write_registry(root: Path, framework: str, mo_args: list, onnx_args: list = None) -> Path:
    config = {"description": "fuzzed arguments", "task_type": "classification", "framework": framework,
              "license": "https://example.com/LICENSE",
              "files": [{"name": FILES[framework], "size": 3, "checksum": SHA384,
                         "source": f"https://127.0.0.1:9/{FILES[framework]}"}],
              "model_optimizer_args": mo_args}
    if framework == "caffe":
        config["files"].append({"name": "m1.prototxt", "size": 3, "checksum": SHA384,
                                "source": "https://127.0.0.1:9/m1.prototxt"})
    if onnx_args is not None:
        config["conversion_to_onnx_args"] = onnx_args
    folder = root / "registry" / "public" / "m1"
    folder.mkdir(parents=True)
    text = yaml.safe_dump(config, allow_unicode=False, width=1 << 30)
    (folder / "model.yml").write_text(text, encoding="utf-8", errors="surrogatepass")
    return root / "registry"


def check_dry_run(framework: str, mo_args: list, onnx_args: list = None) -> str:
    with tempfile.TemporaryDirectory(prefix="omz-argfuzz-") as tmp:
        root = Path(tmp)
        registry = write_registry(root, framework, mo_args, onnx_args)
        backend = "native" if framework == "caffe" else "ovc"
        result = CliRunner().invoke(converter.cli, ["--registry", str(registry), "--name", "m1", "--dry_run",
                                                    "--backend", backend, "-d", str(root / "dl"),
                                                    "-o", str(root / "out")], env=CLEAN_ENV, catch_exceptions=True)
    text = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)[:2000]
    assert result.exit_code in (0, 1, 2), (result.exit_code, text[-2000:])
    for bad in ("unexpected error", "this is a bug", "Traceback"):
        assert bad not in text, text[-3000:]
    if result.exit_code == 0:
        assert "(DRY RUN)" in text, text[-2000:]
    else:
        assert "error" in text.lower(), text[-2000:]
    return text


def check_caffe_parse(args: list) -> None:
    """The native front end's parser directly: Options, or one OmzError."""
    expanded = [a.replace("$dl_dir", "/dl").replace("$conv_dir", "/conv") for a in args]
    try:
        caffe_mo_args.parse(expanded)
    except OmzError as exc:
        assert str(exc).strip(), repr(exc)


@FUZZ
@given(mo_arg_lists(OVC_NAMES, "onnx"))
@example(["--input_model=$dl_dir/m1.onnx", "--scale="])
@example(["--input_model=$dl_dir/m1.onnx", "--scale", ""])
@example(["--input_model=$dl_dir/m1.onnx", "--scale=0"])
@example(["--input_model=$dl_dir/m1.onnx", "--mean_values=data[]"])
@example(["--input_model=$dl_dir/m1.onnx", "--scale_values=[nan,1,1]", "--mean_values=[1e400]"])
def test_fuzzed_onnx_arguments(args):
    check_dry_run("onnx", args)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(mo_arg_lists(OVC_NAMES, "tf"))
def test_fuzzed_tf_arguments(args):
    check_dry_run("tf", args)


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(mo_arg_lists(OVC_NAMES, "pytorch"), onnx_arg_lists())
def test_fuzzed_pytorch_arguments(args, onnx_args):
    check_dry_run("pytorch", args, onnx_args)


def test_pytorch_opset_version_not_a_number():
    base = ["--model-name=Net", "--import-module=net", "--input-shapes=1,3,8,8", "--input-names=data",
            "--output-names=prob", "--output-file=$conv_dir/m1.onnx"]
    for opset in ("", "x", "0", "-1", "٣"):
        text = check_dry_run("pytorch", ["--input_model=$conv_dir/m1.onnx"], base + [f"--opset_version={opset}"])
        assert f"--opset_version={opset}: expected a positive whole number" in text, text


@FUZZ
@given(mo_arg_lists(CAFFE_NAMES, "caffe"))
@example(["--input_model=$dl_dir/m1.caffemodel", "--scale="])
@example(["--input_model=$dl_dir/m1.caffemodel", "--scale=0", "--mean_values=[nan]"])
@example(["--input_model=$dl_dir/m1.caffemodel", "--batch=" + "9" * 5000])
@example(["--input_model=$dl_dir/m1.caffemodel", "--batch=٣"])
def test_fuzzed_caffe_arguments(args):
    check_caffe_parse(args)
    check_dry_run("caffe", args)


@pytest.mark.parametrize("batch", ["9" * 5000, "9" * 19, "٣", "0", "-1", ""])
def test_caffe_batch_refusals(batch):
    with pytest.raises(caffe_mo_args.UnsupportedArgumentError) as info:
        caffe_mo_args.parse(["--input_model=/m.caffemodel", f"--batch={batch}"])
    assert "--batch: expected a positive whole number" in str(info.value)


REFUSED = [("--scale=", "--scale: expected"), ("--scale=0", "--scale: a scale of 0"),
           ("--scale=-0.0", "--scale: a scale of 0"), ("--scale=nan", "--scale: nan is not a finite number"),
           ("--scale=1e400", "--scale: inf is not a finite number"), ("--scale=1,2", "--scale: expected one number"),
           ("--scale_values=data[1,0,1]", "--scale_values: a scale of 0"),
           ("--scale_values=[inf]", "--scale_values: inf is not a finite number"),
           ("--scale_values=-inf", "--scale_values: -inf is not a finite number"),
           ("--mean_values=data[nan,1,2]", "--mean_values: nan is not a finite number"),
           ("--mean_values=data[1,1e400,2]", "--mean_values: inf is not a finite number"),
           ("--mean_values=data[]", "--mean_values: expected at least one number")]


@pytest.mark.parametrize("arg,said", REFUSED)
def test_ovc_refuses_broken_mean_and_scale(arg, said):
    text = check_dry_run("onnx", ["--input_model=$dl_dir/m1.onnx", arg])
    assert said in text and text.count(said) <= 2, text  # the error line and the summary's


@pytest.mark.parametrize("arg,said", [r for r in REFUSED if r[0] != "--scale_values=-inf"])
def test_caffe_refuses_broken_mean_and_scale(arg, said):
    with pytest.raises(caffe_mo_args.UnsupportedArgumentError) as info:
        caffe_mo_args.parse(["--input_model=/m.caffemodel", arg])
    assert said in str(info.value)


@pytest.mark.parametrize("arg,said", [r for r in REFUSED if r[0] != "--scale_values=-inf"])
def test_a_native_dry_run_refuses_what_the_conversion_would(arg, said):
    """The native dry run parses the arguments as the conversion does, so it cannot plan what fails."""
    text = check_dry_run("caffe", ["--input_model=$dl_dir/m1.caffemodel", "--input_proto=$dl_dir/m1.prototxt", arg])
    assert said in text and "(DRY RUN) FP32" not in text, text


def test_fine_mean_and_scale_still_planned():
    text = check_dry_run("onnx", ["--input_model=$dl_dir/m1.onnx", "--mean_values=data[0,-1,1e30]",
                                  "--scale_values=data[-1,1e-30,255]"])
    assert "preprocess().scale([-1.0, 1e-30, 255.0])" in text and "mean([0.0, -1.0, 1e+30])" in text, text
    assert caffe_mo_args.parse(["--input_model=/m.caffemodel", "--scale=-2", "--mean_values=[0]"]).scale == -2


def test_cli_real_runs(tmp_path):
    """The installed omz-converter, as a user runs it, on the cases found by hand."""
    for arg, said in (("--scale=", "--scale: expected at least one number"), ("--scale=0", "--scale: a scale of 0")):
        registry = write_registry(tmp_path / arg, "onnx", ["--input_model=$dl_dir/m1.onnx", arg])
        done = subprocess.run([sys.executable, "-m", "omz_tools.cli.converter", "--registry", str(registry),
                               "--name", "m1", "--dry_run", "--backend", "ovc", "-d", str(tmp_path / "dl"),
                               "-o", str(tmp_path / "out")], capture_output=True, text=True,
                              env={**{k: v for k, v in os.environ.items() if not k.startswith("OMZ_")},
                                   "CI": "true"}, timeout=120)
        text = done.stdout + done.stderr
        assert done.returncode == 1 and said in text, text
        assert "Traceback" not in text and "this is a bug" not in text, text


ONE_INPUT = '''name: "one"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 4 kernel_size: 3 } }
'''


def test_caffe_unnamed_layout_on_the_only_input(tmp_path):
    """'--layout=NCHW' on a one-input network was an UnboundLocalError; it is the only input's layout."""
    ov = pytest.importorskip("openvino")
    from helpers_caffe import image_like, write_caffemodel
    from omz_tools.convert import caffe
    proto = tmp_path / "one.prototxt"
    proto.write_text(ONE_INPUT)
    weights = write_caffemodel(proto, tmp_path / "one.caffemodel", seed=3)
    base = [f"--input_model={weights}", f"--input_proto={proto}"]
    plain = caffe.convert(base)
    prepared = caffe.convert(base + ["--layout=NCHW", "--mean_values=[10,20,30]", "--scale=2"])
    assert prepared.get_parameters()[0].get_layout().to_string() == "[N,C,H,W]"
    pixels = image_like([1, 3, 8, 8], 5)
    core = ov.Core()
    got = core.compile_model(prepared, "CPU")(pixels)[0]
    want = core.compile_model(plain, "CPU")((pixels - np.array([10, 20, 30], np.float32).reshape(1, 3, 1, 1)) / 2)[0]
    assert float(np.std(want)) > 1e-3
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


@pytest.fixture(scope="module")
def one_input(tmp_path_factory):
    from helpers_caffe import write_caffemodel
    root = tmp_path_factory.mktemp("argfuzz")
    proto = root / "one.prototxt"
    proto.write_text(ONE_INPUT)
    return [f"--input_model={write_caffemodel(proto, root / 'one.caffemodel', seed=3)}", f"--input_proto={proto}"]


def small_model():
    """data [1,3,8,8] -> a 1x1 convolution, built with OpenVINO's opset (no file, no framework)."""
    import openvino as ov
    from omz_tools.convert.caffe.opset import ops  # opset 13 of any openvino release
    data = ops.parameter([1, 3, 8, 8], np.float32, name="data")
    data.output(0).get_tensor().set_names({"data"})
    conv = ops.convolution(data, ops.constant(np.ones([2, 3, 1, 1], np.float32)), [1, 1], [0, 0], [0, 0], [1, 1])
    conv.output(0).get_tensor().set_names({"out"})
    return ov.Model([conv], [data], "small")


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(focused_lists(PREPROCESSING + ["batch"]))
@example(["--source_layout=[٣]"])
@example(["--layout=data(٣)"])
@example(["--source_layout=\ud800"])
@example(["--target_layout=\ud800"])
def test_fuzzed_caffe_conversion(one_input, args):
    """The native front end on a real network: an openvino.Model or one OmzError (never OpenVINO's own)."""
    pytest.importorskip("openvino")
    from omz_tools.convert import caffe
    try:
        caffe.convert(one_input + args)
    except OmzError as exc:
        assert str(exc).strip(), repr(exc)  # control characters of the user's value: the CLI escapes them


@settings(FUZZ, max_examples=max(1, EXAMPLES // 2))
@given(focused_lists())
@example(["--source_layout=٣"])
@example(["--target_layout=["])
@example(["--target_layout=\ud800"])
@example(["--layout=data(NC)"])
@example(["--reverse_input_channels", "--source_layout=??????C"])
def test_fuzzed_ovc_preprocessing(args):
    """The ovc backend's preprocessing on a real model: a model or one MOArgumentError."""
    pytest.importorskip("openvino")
    from omz_tools.convert import ovc_preprocess
    try:
        parsed = mo_cli_args.parse(args)
        ovc_preprocess.describe(parsed)
        ovc_preprocess.apply(small_model(), parsed)
    except OmzError as exc:
        assert str(exc).strip(), repr(exc)


@pytest.mark.parametrize("args, said", [
    (["--source_layout=["], "--layout for the input: '[' is not a layout OpenVINO understands"),
    (["--target_layout=٣"], "--layout for the input: '٣' is not a layout OpenVINO understands"),
    (["--layout=data(NC)"], "the inputs' preprocessing (layout, reverse, mean, scale) failed in OpenVINO"),
    (["--reverse_input_channels", "--source_layout=??????C"], "--reverse_input_channels: no input has 3 channels"),
])
def test_ovc_preprocessing_refusals(args, said):
    """OpenVINO's RuntimeError (or UnicodeDecodeError) on a layout was an "unexpected error"."""
    pytest.importorskip("openvino")
    from omz_tools.convert import ovc_preprocess
    with pytest.raises(mo_cli_args.MOArgumentError) as info:
        ovc_preprocess.apply(small_model(), mo_cli_args.parse(args))
    assert said in str(info.value) and "\n" not in str(info.value), str(info.value)
