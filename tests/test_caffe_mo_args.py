"""Model Optimizer's arguments in the native Caffe front end: every form an Open Model Zoo Caffe entry
uses (and the rest of MO's input/output/preprocessing arguments), against a numpy reference of MO's
documented meaning (marked ``native``) and against Model Optimizer itself (three MO runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from helpers_caffe import assert_not_saturated, image_like, parse_prototxt, reference, write_caffemodel
from omz_tools.convert import caffe
from omz_tools.convert.caffe import mo_args
from omz_tools.convert.caffe.reader import read_net
from test_caffe_native_layers import F32, run_mo

ov = pytest.importorskip("openvino")

SHAPE = [1, 3, 12, 12]
NET = '''name: "two_inputs"
input: "data"
input_shape { dim: 1 dim: 3 dim: 12 dim: 12 }
input: "aux"
input_shape { dim: 1 dim: 3 dim: 12 dim: 12 }
layer { name: "a" type: "Convolution" bottom: "data" top: "a" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "b" type: "Convolution" bottom: "aux" top: "b" convolution_param { num_output: 6 kernel_size: 3 pad: 1 } }
layer { name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "e" }
layer { name: "sl" type: "Slice" bottom: "e" top: "s1" top: "s2" slice_param { axis: 1 slice_point: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "s2" top: "fc" inner_product_param { num_output: 10 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
'''
MEAN_D, MEAN_A = np.array([100.0, 120.0, 140.0]), np.array([124.0, 116.0, 104.0])


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("mo_args")
    proto = root / "net.prototxt"
    proto.write_text(NET)
    return proto, write_caffemodel(proto, root / "net.caffemodel", seed=17)


def _base(net):
    proto, model = net
    return [f"--input_model={model}", f"--input_proto={proto}"]


def _inputs(seed):
    return {"data": image_like(SHAPE, seed), "aux": image_like(SHAPE, seed + 1)}


def _ref(net, prepared: dict) -> dict:
    proto, model = net
    blobs = {layer.name: layer.blobs for layer in read_net(proto, model).layers if layer.blobs}
    return reference(parse_prototxt(Path(proto).read_text()), blobs,
                     {k: np.asarray(v, np.float64) for k, v in prepared.items()})


def _run(model, feeds: dict) -> dict:
    compiled = ov.Core().compile_model(model, "CPU", F32)
    results = compiled({name: value for name, value in feeds.items()})
    return {out.get_any_name(): results[out] for out in compiled.outputs}


def _close(got, want, tol=1e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    assert float(np.abs(got - want).max()) <= tol * max(float(np.abs(want).max()), 1e-12)


def _layout(param) -> str:
    return "" if param.get_layout().empty else param.get_layout().to_string()


def _col(values):
    return np.asarray(values, np.float64).reshape(1, -1, 1, 1)


# -- parsing (no OpenVINO needed) -----------------------------------------------------------------

@pytest.mark.native
def test_every_form_open_model_zoo_caffe_entries_use():
    """The arguments of every Caffe model.yml of every Open Model Zoo release (2018_R4..2023.3), as
    written there, including 2018's '--name value' pairs and 2019's --data_type/--framework."""
    o = mo_args.parse(["--framework", "caffe", "--data_type", "FP32", "--input_shape", "[1,3,224,224]",
                       "--input", "data", "--mean_values", "data[103.939,116.779,123.68]", "--scale_values",
                       "data[58.8235294117647]", "--output", "conv6-2,conv6-3,prob1", "--input_model", "m.caffemodel",
                       "--input_proto", "m.prototxt", "--reverse_input_channels"])
    assert (o.inputs, o.shape_list, o.outputs) == (["data"], [[1, 3, 224, 224]], ["conv6-2", "conv6-3", "prob1"])
    assert o.mean_values == {"data": [103.939, 116.779, 123.68]} and o.scale_values == {"data": [58.8235294117647]}
    assert o.reverse_input_channels and o.input_proto == "m.prototxt"
    assert len(o.notes) == 1 and o.notes[0].startswith("--data_type=FP32: no effect")
    o = mo_args.parse(["--input_model=m", "--scale=58.8235", "--mean_values=data_l[50]", "--input=data_l"])
    assert o.scale == 58.8235 and o.mean_values == {"data_l": [50.0]}


@pytest.mark.native
def test_value_list_forms():
    o = mo_args.parse(["--input_model=m", "--mean_values=(1,2,3),[4,5,6]", "--scale_values=a(2),b[3, 4, 5]"])
    assert o.mean_list == [[1, 2, 3], [4, 5, 6]] and o.mean_values == {}
    assert o.scale_values == {"a": [2.0], "b": [3.0, 4.0, 5.0]}
    o = mo_args.parse(["--input_model=m", "--input=a,b:0{f32}", "--layout=a(nchw->nhwc),b(NCHW)",
                       "--output=sl:1,0:fc", "-b", "2"])
    assert o.inputs == ["a", "b:0"] and o.input_shapes == {}
    assert o.layouts == {"a": ("nchw", "nhwc"), "b": ("NCHW", None)} and o.outputs == ["sl:1", "0:fc"]
    assert o.batch == 2


@pytest.mark.native
@pytest.mark.parametrize("flag", ["--disable_fusing", "--disable_gfusing", "--disable_resnet_optimization",
                                  "--static_shape", "--silent", "--log_level=DEBUG", "--use_legacy_frontend"])
def test_model_optimizers_own_switches_are_noted(net, flag):
    notes = []
    model = caffe.convert(_base(net) + ["--output=prob", flag], notes)
    assert [o.get_any_name() for o in model.outputs] == ["prob"]
    assert len(notes) == 1 and notes[0].startswith(flag) and "no effect" in notes[0] and "\n" not in notes[0]


@pytest.mark.native
@pytest.mark.parametrize("args, words", [
    (["--scale=2", "--scale_values=[2]"], ["both --scale and --scale_values"]),
    (["--input=data[1,3,12,12]", "--input_shape=[1,3,12,12]"], ["both in --input and in --input_shape"]),
    (["--batch=2", "--input_shape=[1,3,12,12],[1,3,12,12]"], ["--batch"]),
    (["--batch=two"], ["--batch", "'two'"]),
    (["--mean_values=data[1,2,3],[4,5,6]"], ["name every input's values or none"]),
    (["--mean_values=data"], ["expected values in brackets"]),
    (["--input=data->[1,2]"], ["freezing"]),
    (["--input=data{i8}"], ["{i8}", "f32"]),
    (["--input=data", "--mean_values=aux[1,2,3]"], ["'aux' is not one of the --input names"]),
    (["--reverse_input_channels=yes"], ["takes no value"]),
    (["--scale=big"], ["--scale", "'big'"]),
])
def test_argument_refusals(net, args, words):
    with pytest.raises(caffe.UnsupportedArgumentError) as info:
        caffe.convert(_base(net) + args)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.native
@pytest.mark.parametrize("args, words", [
    (["--input=conv1"], ["no input named 'conv1'", "data, aux", "--backend mo"]),
    (["--input=data:1"], ["no input named 'data:1'"]),
    (["--output=nothing"], ["no layer or blob named 'nothing'"]),
    (["--output=sl:2"], ["'sl' has 2 top(s)", "output port 2"]),
    (["--mean_values=[1,2,3]"], ["1 unnamed list(s) for 2 input(s)"]),
    (["--mean_values=data[1,2]"], ["cannot tell the channel axis", "[1, 3, 12, 12]", "--layout=data(NCHW)"]),
    (["--mean_values=data[1,2]", "--layout=data(NCHW)"], ["2 values for input 'data' with 3 channels"]),
    (["--layout=NCHW"], ["--layout=NCHW: a layout without an input name", "2 (aux, data)"]),
    (["--layout=data(NCDHW)", "--mean_values=data[1,2,3]"], ["5 dimensions", "[1, 3, 12, 12]"]),
    (["--layout=data(NNCH)"], ["not a layout OpenVINO understands", "each at most once"]),
    (["--input_shape=[1,3,12,12]"], ["1 shape(s) for 2 input(s)"]),
])
def test_conversion_refusals(net, args, words):
    with pytest.raises(caffe.CaffeConversionError) as info:
        caffe.convert(_base(net) + args)
    assert all(w in str(info.value) for w in words), str(info.value)
    assert "\n" not in str(info.value)


# -- meaning, against numpy -------------------------------------------------------------------------

@pytest.mark.native
def test_reverse_then_mean_then_scale_on_two_inputs(net):
    """MO's order whatever the command line's: reverse, mean, scale; named values per input."""
    model = caffe.convert(_base(net) + ["--scale_values=data[2],aux[4,5,6]", "--input=data,aux",
                                        "--mean_values=data[100,120,140],aux[124,116,104]", "--reverse_input_channels",
                                        "--output=prob,sl:0"])
    feeds = _inputs(3)
    want = _ref(net, {"data": (feeds["data"][:, ::-1] - _col(MEAN_D)) / 2.0,
                      "aux": (feeds["aux"][:, ::-1] - _col(MEAN_A)) / _col([4, 5, 6])})
    got = _run(model, feeds)
    assert [o.get_any_name() for o in model.outputs] == ["s1", "prob"]  # MO's order: ports first
    assert_not_saturated(want["prob"])
    _close(got["prob"], want["prob"])
    _close(got["s1"], want["s1"])


@pytest.mark.native
def test_input_port_form_with_named_values(net):
    model = caffe.convert(_base(net) + ["--input=data:0,aux", "--mean_values=data[100,120,140]", "--output=a"])
    feeds = _inputs(9)
    want = _ref(net, {"data": feeds["data"] - _col(MEAN_D), "aux": feeds["aux"]})
    assert [p.get_any_name() for p in model.inputs] == ["data", "aux"]
    _close(_run(model, feeds)["a"], want["a"])


@pytest.mark.native
def test_global_scale_unnamed_lists_and_output_ports(net):
    model = caffe.convert(_base(net) + ["--input=aux,data", "--mean_values=[124,116,104],(100,120,140)", "--scale=8",
                                        "--output=sl:1,0:fc,e"])
    feeds = _inputs(5)
    want = _ref(net, {"data": (feeds["data"] - _col(MEAN_D)) / 8, "aux": (feeds["aux"] - _col(MEAN_A)) / 8})
    got = _run(model, feeds)
    _close(got["s2"], want["s2"])
    _close(got["e"], want["e"])
    assert [o.get_any_name() for o in model.outputs] == ["s2", "s2", "e"]  # one tensor, named twice


@pytest.mark.native
def test_target_layout_and_batch(net):
    model = caffe.convert(_base(net) + ["--layout=data(nchw->nhwc)", "--batch=2", "--mean_values=data[100,120,140]",
                                        "--output=prob"])
    shapes = {p.get_any_name(): list(p.get_shape()) for p in model.inputs}
    assert shapes == {"data": [2, 12, 12, 3], "aux": [2, 3, 12, 12]}
    layouts = {p.output(0).get_any_name(): _layout(p) for p in model.get_parameters()}
    assert layouts == {"data": "[N,H,W,C]", "aux": ""}
    x, aux = image_like([2, 3, 12, 12], 8), image_like([2, 3, 12, 12], 9)
    got = _run(model, {"data": x.transpose(0, 2, 3, 1), "aux": aux})["prob"]
    want = _ref(net, {"data": x - _col(MEAN_D), "aux": aux})["prob"]
    _close(got, want)


@pytest.mark.native
def test_guessed_layout_is_not_kept_and_given_layout_is(net):
    guessed = caffe.convert(_base(net) + ["--mean_values=data[1,2,3]", "--output=prob"])
    given = caffe.convert(_base(net) + ["--mean_values=data[1,2,3]", "--source_layout=data(NCHW)", "--output=prob"])
    assert {p.output(0).get_any_name(): _layout(p) for p in guessed.get_parameters()} == {"data": "", "aux": ""}
    assert {p.output(0).get_any_name(): _layout(p) for p in given.get_parameters()} == {"data": "[N,C,H,W]", "aux": ""}


# -- against Model Optimizer --------------------------------------------------------------------------

MO_CASES = {
    "two-inputs": ["--input=data,aux", "--input_shape=[1,3,12,12],[1,3,12,12]", "--reverse_input_channels",
                   "--mean_values=data[100,120,140],aux[124,116,104]", "--scale_values=data[2],aux[4,5,6]",
                   "--output=prob,sl:0,e", "--source_layout=aux(NCHW)"],
    "scale-and-ports": ["--input=aux[1,3,12,12],data[1,3,12,12]", "--mean_values=aux[124,116,104],data[100,120,140]",
                        "--scale=8", "--output=sl:1,0:fc"],
    "target-layout": ["--layout=data(nchw->nhwc)", "--mean_values=data[100,120,140],aux[124,116,104]", "--batch=2",
                      "--output=prob"],
}


@pytest.mark.parametrize("case", sorted(MO_CASES))
def test_arguments_match_model_optimizer(case, net, tmp_path):
    args = _base(net) + MO_CASES[case]
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, args, tmp_path / "cache")))
    native = caffe.convert(args)
    assert [o.get_any_name() for o in native.outputs] == [o.get_any_name() for o in mo_model.outputs]
    inputs = [(p.get_any_name(), list(p.get_shape())) for p in native.inputs]
    mo_inputs = [(p.get_any_name(), list(p.get_shape())) for p in mo_model.inputs]
    # in --input's order where given; MO's own order otherwise depends on more than the names (not matched)
    assert inputs == mo_inputs if any(a.startswith("--input=") for a in args) else sorted(inputs) == sorted(mo_inputs)
    # (MO 2024.6's IR keeps no layout on its inputs, given or not; the native model keeps the given ones)
    feeds = {p.get_any_name(): image_like(list(p.get_shape()), 21 + i) for i, p in enumerate(native.inputs)}
    got, want = _run(native, feeds), _run(mo_model, feeds)
    if "prob" in want:
        assert_not_saturated(want["prob"])
    for name in want:
        _close(got[name], want[name])
