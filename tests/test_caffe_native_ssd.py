"""The native Caffe front end on the SSD family (``PriorBox``, ``PriorBoxClustered``, ``DetectionOutput``,
``Normalize``, and the Permute/Flatten/Reshape/Concat/Softmax plumbing around them).

Each net is converted natively and by Model Optimizer (the oracle; one MO run per net) and both IRs
run on the same inputs with the OpenVINO runtime: priors and normalised maps compared elementwise,
detections as sets (same count, labels, boxes and scores within 1e-4), on weights whose heads give
a spread of scores with several boxes above the confidence threshold. The ``native`` tests compare
with numpy references written from Caffe's definitions (helpers_caffe_ssd) instead, so they run in
the venv without Model Optimizer too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import helpers_caffe_ssd as ssd
from helpers_caffe import parse_prototxt, reference, write_caffemodel
from omz_tools.convert import caffe
from omz_tools.convert.caffe.reader import read_net
from test_caffe_native_layers import run_mo

ov = pytest.importorskip("openvino")

F32 = {"INFERENCE_PRECISION_HINT": "f32"}
ZOO = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "caffe_zoo"


def _layer(name, kind, bottoms, tops, params=""):
    b = "".join(f' bottom: "{x}"' for x in bottoms)
    t = "".join(f' top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}"{b}{t} {params} }}\n'


def _conv(name, bottom, out, kernel=3, stride=1, pad=1):
    return _layer(name, "Convolution", [bottom], [name], "convolution_param { num_output: %d kernel_size: %d "
                  "stride: %d pad: %d }" % (out, kernel, stride, pad))


def _input(shape):
    return 'input: "data"\ninput_shape { %s }\n' % " ".join(f"dim: {d}" for d in shape)


def _run(model, inputs: dict) -> dict:
    """Every output of ``model`` by each of its tensor names, in FP32 on the CPU."""
    compiled = ov.Core().compile_model(model, "CPU", F32)
    result = compiled(inputs)
    return {name: np.asarray(result[out], np.float64) for out in compiled.outputs for name in out.get_names()}


def _close(got, want, tol: float) -> None:
    """Elementwise within ``tol`` (shown with -s)."""
    diff = _max_diff(got, want)
    print(f"max abs difference {diff:.3g} (scale {float(np.abs(want).max()):.3g})")
    assert diff <= tol, f"max abs difference {diff:.3g} > {tol:.3g}"


def _report(worst: float) -> None:
    """The largest difference of matched detections (shown with -s), within 1e-4."""
    print(f"detections match; largest difference {worst:.3g}")
    assert worst <= 1e-4


def _outputs_as(native, mo_model, names):
    """The native model's outputs are the requested ones, in order, with MO's shapes and MO's names
    (a one-input Concat's top joins its bottom's names)."""
    assert len(native.outputs) == len(mo_model.outputs) == len(names)
    for ours, theirs, name in zip(native.outputs, mo_model.outputs, names):
        assert name in ours.get_names() and ours.get_names() == theirs.get_names(), (ours.get_names(),
                                                                                     theirs.get_names())
        assert list(ours.get_shape()) == list(theirs.get_shape()), name


def _max_diff(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert a.shape == b.shape, f"shape {list(a.shape)}, expected {list(b.shape)}"
    return float(np.abs(a - b).max())


def _write(folder: Path, text: str, blobs: dict = None, seed: int = 0):
    folder.mkdir(parents=True, exist_ok=True)
    proto = folder / "net.prototxt"
    proto.write_text(text)
    model = write_caffemodel(proto, folder / "net.caffemodel", seed=seed, blobs=blobs)
    return proto, model


def _blobs(proto, model) -> dict:
    return {layer.name: layer.blobs for layer in read_net(proto, model).layers if layer.blobs}


# -- Normalize (ssd300's conv4_3_norm, and its other forms) ---------------------------------------

NORMALIZE_SHAPE = [1, 8, 12, 12]
NORMALIZE_NET = "name: \"normalize\"\n" + _input(NORMALIZE_SHAPE) + _conv("c1", "data", 16) + "".join(
    _layer(name, "Normalize", ["c1"], [name], "norm_param { across_spatial: %s channel_shared: %s %s }" % params)
    for name, params in {"n_channels": ("false", "false", "scale_filler { type: \"constant\" value: 20 }"),
                         "n_shared": ("false", "true", ""),
                         "n_spatial": ("true", "false", "eps: 0.0001")}.items())
NORMALIZE_OUTPUTS = ["n_channels", "n_shared", "n_spatial"]


@pytest.fixture(scope="module")
def normalize_net(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("ssd_normalize"), NORMALIZE_NET, seed=11)


def _normalize_args(proto, model):
    return [f"--input_model={model}", f"--input_proto={proto}", "--input=data",
            f"--output={','.join(NORMALIZE_OUTPUTS)}"]


def _normalize_input(seed):
    return ssd.helpers_caffe.image_like(NORMALIZE_SHAPE, seed) / 64.0 - 2.0


@pytest.mark.native
def test_normalize_matches_numpy_reference(normalize_net):
    proto, model = normalize_net
    native = caffe.convert(_normalize_args(proto, model))
    assert [o.get_any_name() for o in native.outputs] == NORMALIZE_OUTPUTS
    x = _normalize_input(3)
    got = _run(native, {"data": x})
    want = reference(parse_prototxt(NORMALIZE_NET), _blobs(proto, model), {"data": x.astype(np.float64)})
    blobs = _blobs(proto, model)
    assert blobs["n_channels"][0].size == 16 and blobs["n_shared"][0].size == 1
    assert np.ptp(blobs["n_channels"][0]) > 1  # per-channel scales that differ
    for name in NORMALIZE_OUTPUTS:
        scale = float(np.abs(want[name]).max())
        _close(got[name], want[name], 1e-5 * scale)
        assert float(want[name].std()) > 0.01 * scale  # not a constant map


def test_normalize_matches_model_optimizer(normalize_net, tmp_path):
    proto, model = normalize_net
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, _normalize_args(proto, model), tmp_path / "cache")))
    native = caffe.convert(_normalize_args(proto, model))
    _outputs_as(native, mo_model, NORMALIZE_OUTPUTS)
    x = _normalize_input(4)
    got, want = _run(native, {"data": x}), _run(mo_model, {"data": x})
    for name in NORMALIZE_OUTPUTS:
        _close(got[name], want[name], 1e-5 * float(np.abs(want[name]).max()))


# -- mobilenet-ssd (the real prototxt; random weights) ---------------------------------------------

MOBILENET = ZOO / "mobilenet-ssd" / "mobilenet-ssd.prototxt"
MOBILENET_THRESHOLD = 0.25  # the prototxt's confidence_threshold


@pytest.fixture(scope="module")
def mobilenet_ssd(tmp_path_factory):
    """(prototxt, caffemodel, MO arguments, preprocessed input, raw input, numpy blobs)."""
    if not MOBILENET.is_file():
        pytest.skip(f"the upstream fixture {MOBILENET} is absent (../shared/fixtures/caffe_zoo)")
    entry = json.loads((ZOO / "manifest.json").read_text())["mobilenet-ssd"]
    net = parse_prototxt(MOBILENET.read_text())
    inputs = ssd.preprocessed(net, 5, 127.5, 127.5)
    # conf logits with std 0.6: 41 boxes of 9 classes pass the 0.25 threshold, top score ~0.4
    blobs = ssd.ssd_weights(net, 1, inputs, conf_std=0.6)
    folder = tmp_path_factory.mktemp("mobilenet_ssd")
    model = write_caffemodel(MOBILENET, folder / "mobilenet-ssd.caffemodel", blobs=blobs)
    args = [a.replace("$dl_dir/mobilenet-ssd.caffemodel", str(model)).replace("$dl_dir/mobilenet-ssd.prototxt",
                                                                              str(MOBILENET))
            for a in entry["model_optimizer_args"]]
    raw = inputs["data"] * 127.5 + 127.5
    return MOBILENET, model, args, inputs, raw.astype(np.float32), reference(net, blobs, inputs)


@pytest.mark.native
def test_mobilenet_ssd_matches_numpy_reference(mobilenet_ssd):
    proto, model, args, inputs, raw, want = mobilenet_ssd
    native = caffe.convert(args)
    assert [(o.get_any_name(), list(o.get_shape())) for o in native.outputs] == [("detection_out", [1, 1, 100, 7])]
    ssd.assert_scores_spread(want["detection_out"], MOBILENET_THRESHOLD)
    got = _run(caffe.convert(_with_priors(args)), {"data": raw})
    _close(got["mbox_priorbox"], want["mbox_priorbox"], 1e-6)
    _report(ssd.assert_same_detections(got["detection_out"], want["detection_out"]))


def _with_priors(args):
    """The MO arguments with the concatenated priors as a second output."""
    return [a + ",mbox_priorbox" if a.startswith("--output=") else a for a in args]


def test_mobilenet_ssd_matches_model_optimizer(mobilenet_ssd, tmp_path):
    proto, model, args, inputs, raw, want = mobilenet_ssd
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, _with_priors(args), tmp_path / "cache")))
    native = caffe.convert(_with_priors(args))
    _outputs_as(native, mo_model, ["detection_out", "mbox_priorbox"])
    got, expected = _run(native, {"data": raw}), _run(mo_model, {"data": raw})
    ssd.assert_scores_spread(expected["detection_out"], MOBILENET_THRESHOLD)
    _close(got["mbox_priorbox"], expected["mbox_priorbox"], 1e-6)
    _report(ssd.assert_same_detections(got["detection_out"], expected["detection_out"]))


# -- own nets: PriorBoxClustered (face-detection-retail-0044's head), an ssd300-style head ----------

# name -> (prototxt text, conf_std, confidence threshold, classes expected among the detections,
# outputs besides detection_out)
OWN_NETS = {
    "clustered": (ssd.clustered_net(), 0.6, ssd.CLUSTERED_THRESHOLD, 1, ["mbox_priorbox"]),
    "ssd300_head": (ssd.ssd300_head_net(), 0.8, ssd.SSD300_THRESHOLD, 3, ["mbox_priorbox", "c2_norm"]),
}


@pytest.fixture(scope="module")
def own_nets(tmp_path_factory):
    made = {}

    def make(name):
        if name not in made:
            text, conf_std, threshold, classes, extra = OWN_NETS[name]
            net = parse_prototxt(text)
            inputs = ssd.preprocessed(net, 5, 127.5, 127.5)
            blobs = ssd.ssd_weights(net, 1, inputs, conf_std=conf_std)
            proto, model = _write(tmp_path_factory.mktemp(name), text, blobs=blobs)
            args = [f"--input_model={model}", f"--input_proto={proto}", "--input=data",
                    "--mean_values=data[127.5,127.5,127.5]", "--scale_values=data[127.5]",
                    f"--output={','.join(['detection_out'] + extra)}"]
            raw = (inputs["data"] * 127.5 + 127.5).astype(np.float32)
            made[name] = (args, raw, reference(net, blobs, inputs), threshold, classes, ["detection_out"] + extra)
        return made[name]
    return make


@pytest.mark.native
@pytest.mark.parametrize("name", sorted(OWN_NETS))
def test_own_ssd_net_matches_numpy_reference(name, own_nets):
    args, raw, want, threshold, classes, outputs = own_nets(name)
    ssd.assert_scores_spread(want["detection_out"], threshold, classes=classes)
    native = caffe.convert(args)
    assert all(name in o.get_names() for o, name in zip(native.outputs, outputs)) and \
        len(native.outputs) == len(outputs), [o.get_names() for o in native.outputs]
    got = _run(native, {"data": raw})
    for output in outputs[1:]:
        _close(got[output], want[output], 1e-5 * float(np.abs(want[output]).max()))
    _report(ssd.assert_same_detections(got["detection_out"], want["detection_out"]))


@pytest.mark.parametrize("name", sorted(OWN_NETS))
def test_own_ssd_net_matches_model_optimizer(name, own_nets, tmp_path):
    args, raw, want, threshold, classes, outputs = own_nets(name)
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, args, tmp_path / "cache")))
    native = caffe.convert(args)
    _outputs_as(native, mo_model, outputs)
    got, expected = _run(native, {"data": raw}), _run(mo_model, {"data": raw})
    ssd.assert_scores_spread(expected["detection_out"], threshold, classes=classes)
    for output in outputs[1:]:
        _close(got[output], expected[output], 1e-5 * float(np.abs(expected[output]).max()))
    _report(ssd.assert_same_detections(got["detection_out"], expected["detection_out"]))


# -- what OpenVINO's operations cannot say: one message naming the layer ---------------------------

REFUSED = {
    "different steps": ("step: 4 offset", "step_h: 4 step_w: 8 offset", "step_h 4 differs from step_w 8"),
    "adaptive NMS": ("top_k: 400 }", "top_k: 400 eta: 0.9 }", "nms_param.eta 0.9 (adaptive NMS)"),
    "3 variances": ("variance: 0.2 variance: 0.2 step: 4", "variance: 0.2 step: 4", "expected 1 or 4 variance"),
    "wrong num_classes": ("num_classes: 5", "num_classes: 6", "num_classes 6, found"),
}


@pytest.mark.native
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsupported_ssd_parameters_are_one_message(case, own_nets, tmp_path):
    args = own_nets("ssd300_head")[0]
    old, new, expected = REFUSED[case]
    text = ssd.ssd300_head_net()
    assert old in text
    proto = tmp_path / "net.prototxt"
    proto.write_text(text.replace(old, new, 1))
    with pytest.raises(caffe.CaffeConversionError) as info:
        caffe.convert([a if not a.startswith("--input_proto=") else f"--input_proto={proto}" for a in args])
    message = str(info.value)
    assert message.startswith('layer "') and expected in message and "\n" not in message, message


# -- PriorBox / PriorBoxClustered variants, elementwise ---------------------------------------------

PRIOR_SHAPE = [1, 3, 40, 75]  # a 10 x 19 map: image / map is 4 vertically, 75 / 19 horizontally
PRIOR_VARIANTS = {
    "pb_default_step": ("PriorBox", "min_size: 8 aspect_ratio: 2 variance: 0.1"),
    "pb_two_sizes": ("PriorBox", "min_size: 6 min_size: 12 max_size: 12 max_size: 20 aspect_ratio: 2 "
                                 "aspect_ratio: 3 aspect_ratio: 2 flip: false clip: true variance: 0.1 variance: 0.1 "
                                 "variance: 0.2 variance: 0.2 step: 4"),
    "pb_offset_step": ("PriorBox", "min_size: 10 max_size: 30 aspect_ratio: 0.5 step: 4.5 offset: 0.25"),
    "pb_img_size": ("PriorBox", "min_size: 10 img_size: 100 step: 8"),
    "pbc_steps": ("PriorBoxClustered", "width: 5 width: 12.5 height: 9 height: 7 step_h: 4 step_w: 3.5 clip: true "
                                       "variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2"),
    "pbc_default_step": ("PriorBoxClustered", "width: 20 height: 30 offset: 0.3 variance: 0.2"),
}
# Model Optimizer gives PriorBox the input image's size whatever img_size says (Caffe takes img_size).
MO_DIFFERS = {"pb_img_size"}


@pytest.fixture(scope="module")
def prior_net(tmp_path_factory):
    text = 'name: "priors"\n' + _input(PRIOR_SHAPE) + _conv("c1", "data", 4, stride=4) + "".join(
        _layer(name, kind, ["c1", "data"], [name], "prior_box_param { %s }" % param)
        for name, (kind, param) in PRIOR_VARIANTS.items())
    proto, model = _write(tmp_path_factory.mktemp("priors"), text, seed=3)
    args = [f"--input_model={model}", f"--input_proto={proto}", "--input=data", f"--output={','.join(PRIOR_VARIANTS)}"]
    x = ssd.helpers_caffe.image_like(PRIOR_SHAPE, 1)
    return args, x, reference(parse_prototxt(text), _blobs(proto, model), {"data": x.astype(np.float64)})


@pytest.mark.native
def test_prior_variants_match_numpy_reference(prior_net):
    args, x, want = prior_net
    got = _run(caffe.convert(args), {"data": x})
    for name in PRIOR_VARIANTS:
        assert got[name].shape[:2] == (1, 2) and got[name].shape[2] > 0, name
        _close(got[name], want[name], 1e-6)


def test_prior_variants_match_model_optimizer(prior_net, tmp_path):
    args, x, want = prior_net
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, args, tmp_path / "cache")))
    got, expected = _run(caffe.convert(args), {"data": x}), _run(mo_model, {"data": x})
    for name in PRIOR_VARIANTS:
        if name in MO_DIFFERS:
            assert _max_diff(expected[name], want[name]) > 1e-3  # MO's is not Caffe's here; ours is
        else:
            _close(got[name], expected[name], 1e-6)
