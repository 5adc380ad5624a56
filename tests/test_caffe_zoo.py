"""Open Model Zoo's upstream Caffe prototxts (../shared/fixtures/caffe_zoo, sha256 equal to the
registry's) through the native front end and through Model Optimizer, with the registry's MO
arguments and postprocessing: random weights of sensible scale for the inputs as MO's mean/scale
values prepare them, both IRs run by the OpenVINO runtime in FP32 on the same raw images.
Agreement: max abs difference <= 1e-4 x the largest magnitude of MO's output (each output), the
top-5 classes equal, the same input name/shape and output names in the same order. One MO run per
model; the detectors (mobilenet-ssd) are proven in the SSD tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import SHARED_DIR
from helpers_caffe import (assert_not_saturated, image_like, make_weights_for_inputs, parse_prototxt,
                           write_caffemodel)
from test_caffe_native_layers import F32, run_mo

ov = pytest.importorskip("openvino")
ZOO = SHARED_DIR / "fixtures" / "caffe_zoo"
BIG = pytest.mark.slow  # caffemodels of 30 to 110 MB: one MO run of 10-40 s each

# model -> (residual-branch layers damped as make_weights_damped explains, (a convolution classifier, the
# blob of its logits, a std): the classifier's weights rescaled so the logits have that std)
MODELS = {
    "mtcnn-p": ((), None),
    "squeezenet1.1": ((), ("conv10", "pool10", 0.5)),  # ReLU'd logits: a long upper tail
    "densenet-121": ((), ("fc6", "fc6", 2.0)),
    "googlenet-v1": ((), None),
    "se-resnext-50": (("_1x1_increase/bn/scale",), None),
    "Sphereface": ((), None),
}
CLASSIFIERS = {"squeezenet1.1": "prob", "densenet-121": "fc6", "googlenet-v1": "prob", "se-resnext-50": "prob"}


def _entry(name):
    if not (ZOO / "manifest.json").is_file():
        pytest.skip(f"needs Open Model Zoo's Caffe prototxts in {ZOO} (../shared is absent)")
    return json.loads((ZOO / "manifest.json").read_text())[name]


def _postprocessed(name, entry) -> str:
    """The prototxt after the entry's regex_replace steps (as the downloader runs them)."""
    proto = next(f["name"] for f in entry["files"] if f["name"].endswith(".prototxt"))
    text = (ZOO / name / proto).read_text()
    for step in entry["postprocessing"]:
        assert step["$type"] == "regex_replace" and step["file"] == proto
        text = re.sub(step["pattern"], step["replacement"], text, count=step.get("count", 0))
    post = ZOO / name / (proto + ".post")
    if post.is_file():
        assert text == post.read_text(), f"{post} differs from the manifest's postprocessing"
    return text


def _prepared(args, raw: np.ndarray) -> np.ndarray:
    """MO's mean/scale values applied to an NCHW image (what the weights are drawn for)."""
    from omz_tools.convert.caffe import mo_args
    o = mo_args.parse(["--input_model=x"] + [a for a in args if not a.startswith("--input_")])
    x = raw.astype(np.float64)
    for table in (o.mean_values, o.scale_values):
        values = table.get("data")
        if values is not None:
            x = x - np.reshape(values, (1, -1, 1, 1)) if table is o.mean_values else x / np.reshape(values, (1, -1, 1, 1))
    return x


def _weights(net, name, args, shape, folder: Path, proto: Path) -> Path:
    suffixes, rescale = MODELS[name]
    raw = image_like([1] + shape[1:], 1000)
    gains = {layer.name: 0.2 for layer in net.layer if any(layer.name.endswith(s) for s in suffixes)}
    blobs, values = make_weights_for_inputs(net, 7, {"data": _prepared(args, raw)}, gains=gains, classifier_std=1.0)
    if rescale:  # scaling a convolution (+ ReLU, average pooling) scales its logits alike
        layer, logits, std = rescale
        gain = std / float(values[logits].std())
        blobs[layer] = [b * gain for b in blobs[layer]]
    return write_caffemodel(proto, folder / f"{name}.caffemodel", blobs=blobs)


def _check_spread(name, outputs: dict) -> None:
    """Outputs that prove something: softmaxes far from one-hot, an embedding not constant."""
    if name in CLASSIFIERS:
        logits = outputs[CLASSIFIERS[name]].reshape(1, -1)
        prob = logits if name != "densenet-121" else np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        assert_not_saturated(prob)
    elif name == "mtcnn-p":
        face = outputs["prob1"][:, 1]
        assert 0.02 < float(face.std()) and float((np.abs(face - 0.5) > 0.49).mean()) < 0.5, "prob1 saturated"
    else:
        embedding = outputs["fc5"].ravel()
        assert float(embedding.std()) > 1e-3 * float(np.abs(embedding).max())


@pytest.mark.parametrize("name", [pytest.param(n, marks=BIG) if n not in ("mtcnn-p", "squeezenet1.1") else n
                                  for n in MODELS])
def test_native_matches_model_optimizer(name, tmp_path):
    entry = _entry(name)
    proto = tmp_path / f"{name}.prototxt"
    proto.write_text(_postprocessed(name, entry))
    net = parse_prototxt(proto.read_text())
    shape = [int(d) for d in re.search(r"\[([\d,]+)\]", next(a for a in entry["model_optimizer_args"]
                                                            if a.startswith("--input_shape="))).group(1).split(",")]
    args = [a for a in entry["model_optimizer_args"] if not a.startswith(("--input_model=", "--input_proto="))]
    model = _weights(net, name, args, shape, tmp_path, proto)
    args += [f"--input_model={model}", f"--input_proto={proto}"]
    from omz_tools.convert import caffe
    native = caffe.convert(args)
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, args, tmp_path / "cache")))
    assert [(p.get_any_name(), list(p.get_shape())) for p in native.inputs] == \
        [(p.get_any_name(), list(p.get_shape())) for p in mo_model.inputs] == [("data", shape)]
    names = [o.get_any_name() for o in mo_model.outputs]
    assert [o.get_any_name() for o in native.outputs] == names
    assert [o.get_names() for o in native.outputs] == [o.get_names() for o in mo_model.outputs]
    assert names == next(a for a in args if a.startswith("--output=")).split("=", 1)[1].split(",")
    core = ov.Core()
    got_model, want_model = core.compile_model(native, "CPU", F32), core.compile_model(mo_model, "CPU", F32)
    for seed in (1, 2):
        x = image_like(shape, seed)
        got = {o.get_any_name(): r for o, r in zip(got_model.outputs, got_model({"data": x}).values())}
        want = {o.get_any_name(): r for o, r in zip(want_model.outputs, want_model({"data": x}).values())}
        _check_spread(name, want)
        for out in names:
            scale = float(np.abs(want[out]).max())
            diff = float(np.abs(got[out].astype(np.float64) - want[out]).max())
            print(f"{name} {out} seed {seed}: max abs diff {diff:.3g}, relative {diff / scale:.3g}")
            assert diff <= 1e-4 * scale, f"{name} {out}: max abs difference {diff:.3g} > 1e-4 x {scale:.3g}"
        if name in CLASSIFIERS:
            top = lambda r: list(np.argsort(-r[CLASSIFIERS[name]].ravel())[:5])  # noqa: E731
            assert top(got) == top(want)
