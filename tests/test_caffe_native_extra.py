"""layers_extra's translators (ReLU6, ELU, AbsVal, BNLL): each in a small random net against the numpy
reference of Caffe's definition (``native``), and the ones Model Optimizer 2024.6 converts batched
into one net compared with its IR (one MO run)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from helpers_caffe import assert_not_saturated, image_like, parse_prototxt, reference, write_caffemodel
from omz_tools.convert import caffe
from omz_tools.convert.caffe.reader import read_net
from test_caffe_native_layers import _args, _conv, _head, _input, _layer, assert_close, infer, run_mo

ov = pytest.importorskip("openvino")

# conv (so the activation sees negative and positive values), the layer under test, the classifier
CASES = {
    "ReLU6": _layer("act", "ReLU6", ["c1"], ["act"]),
    "ELU": _layer("act", "ELU", ["c1"], ["act"], "elu_param { alpha: 0.5 }"),
    "ELU-default": _layer("act", "ELU", ["c1"], ["act"]),
    "AbsVal": _layer("act", "AbsVal", ["c1"], ["act"]),
    "BNLL": _layer("act", "BNLL", ["c1"], ["act"]),
}
# Both MO converts, in one net: ReLU6 on one branch, ELU on another, summed.
MO_NET = (_conv("c1", "data", 8) + _layer("r6", "ReLU6", ["c1"], ["r6"]) + _conv("c2", "data", 8)
          + _layer("elu", "ELU", ["c2"], ["elu"], "elu_param { alpha: 0.7 }")
          + _layer("sum", "Eltwise", ["r6", "elu"], ["sum"]))


def _write(folder, name, body, top):
    proto = folder / "net.prototxt"
    proto.write_text(f'name: "{name}"\n' + _input() + body + _head(top))
    return proto, write_caffemodel(proto, folder / "net.caffemodel", seed=zlib.crc32(name.encode()))


def _x(seed):
    return image_like((1, 8, 12, 12), seed=seed) / 64.0


@pytest.mark.native
@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_matches_numpy_reference(case, tmp_path):
    proto, model = _write(tmp_path, case, _conv("c1", "data", 8) + CASES[case], "act")
    native = caffe.convert(_args(proto, model))
    blobs = {layer.name: layer.blobs for layer in read_net(proto, model).layers if layer.blobs}
    x = _x(7)
    values = reference(parse_prototxt(proto.read_text()), blobs, {"data": x.astype(np.float64)})
    assert (values["c1"] < 0).any() and (values["c1"] > 0).any()
    if case == "ReLU6":
        assert (values["c1"] > 6).any(), "the clamp at 6 is not exercised"
    assert_not_saturated(values["prob"])
    assert_close(infer(native, x), values["prob"])


def test_relu6_and_elu_match_model_optimizer(tmp_path):
    proto, model = _write(tmp_path, "mo-extra", MO_NET, "sum")
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, _args(proto, model), tmp_path / "cache")))
    native = caffe.convert(_args(proto, model))
    for seed in (1, 2):
        want = infer(mo_model, _x(seed))
        assert_not_saturated(want)
        assert_close(infer(native, _x(seed)), want)
