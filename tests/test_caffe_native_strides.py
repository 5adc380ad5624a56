"""The native front end moves the stride of 1x1 convolutions up the graph as Model Optimizer's
ResNet optimization does (``convert/caffe/strides.py``): the same outputs, and the IR has MO's
convolution strides, MaxPools and shapes (so the same GFLOPs and about its latency)."""

from __future__ import annotations

import re
import zlib

import numpy as np
import pytest

from helpers_caffe import _conv, _bn_scale, _se_block, _simple, assert_not_saturated, image_like, parse_prototxt, \
    reference, write_caffemodel
from omz_tools.convert import caffe
from omz_tools.convert.caffe.reader import read_net
from test_caffe_native_layers import _args, _head, _input, _layer, assert_close, infer, run_mo

ov = pytest.importorskip("openvino")


def _strided(text: str, names) -> str:
    """``text`` with the convolutions ``names`` given stride 2."""
    for name in names:
        text = re.sub(r'(name: "%s"\n  type: "Convolution".*?stride: )1' % re.escape(name), r"\g<1>2", text,
                      count=1, flags=re.S)
    return text


def resnet_transitions() -> str:
    """An SE block (Axpy) read by two strided 1x1 convolutions, then a plain residual block
    (Eltwise) read by two more: the second stride moves into the SE block, the projection gets 4."""
    text = _conv("conv1", "data", 16, 3, pad=1) + _bn_scale("conv1", "conv1") + _simple("conv1/relu", "ReLU", "conv1")
    text += _se_block("s1", "conv1", 8, 16, 4, project=False)
    text += _strided(_se_block("s2", "s1", 8, 32, 4, project=True), ["s2_1x1_reduce", "s2_1x1_proj"])
    text += _conv("p_conv", "s2", 32, 1) + _bn_scale("p_conv", "p_conv")
    text += _layer("p", "Eltwise", ["p_conv", "s2"], ["p"]) + _simple("p/relu", "ReLU", "p")
    text += _strided(_conv("q_a", "p", 32, 1) + _conv("q_b", "p", 32, 1), ["q_a", "q_b"])
    text += _layer("q", "Eltwise", ["q_a", "q_b"], ["q"]) + _simple("q/relu", "ReLU", "q")
    return 'name: "transitions"\n' + _input() + text + _head("q")


def se_transition() -> str:
    """SE-ResNet's stage transition (Model Optimizer 2024.6 under protobuf >= 5 reads no Eltwise)."""
    text = _conv("conv1", "data", 16, 3, pad=1) + _bn_scale("conv1", "conv1") + _simple("conv1/relu", "ReLU", "conv1")
    text += _se_block("s1", "conv1", 8, 16, 4, project=False)
    text += _strided(_se_block("s2", "s1", 8, 32, 4, project=True), ["s2_1x1_reduce", "s2_1x1_proj"])
    return 'name: "se_transition"\n' + _input() + text + _head("s2")


def padded_strided() -> str:
    """A padded 1x1 convolution with stride 2 is not a subsampling of its input: nothing moves.
    (Only its structure is checked: OpenVINO 2024.6's CPU plugin miscomputes this net's shapes itself.)"""
    text = _conv("c", "data", 16, 3, pad=1) + _simple("c/relu", "ReLU", "c")
    text += _layer("d", "Convolution", ["c"], ["d"], "convolution_param { num_output: 16 kernel_size: 1 stride: 2 "
                                                      "pad: 1 }")
    text += _layer("e", "Convolution", ["c"], ["e"], "convolution_param { num_output: 16 kernel_size: 1 stride: 2 "
                                                      "pad: 1 }")
    text += _layer("f", "Eltwise", ["d", "e"], ["f"])
    return 'name: "padded"\n' + _input() + text + _head("f")


NETS = {"transitions": resnet_transitions, "se_transition": se_transition, "padded": padded_strided}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("caffe_strides")
    made = {}
    for name, make in NETS.items():
        proto = root / f"{name}.prototxt"
        proto.write_text(make())
        made[name] = (proto, write_caffemodel(proto, root / f"{name}.caffemodel", seed=zlib.crc32(name.encode())))
    return made


def _structure(model) -> list:
    """(type, strides, output shape) of every Convolution and MaxPool, sorted."""
    return sorted((op.get_type_name(), tuple(op.get_attributes()["strides"]), tuple(op.get_output_shape(0)))
                  for op in model.get_ops() if op.get_type_name() in ("Convolution", "MaxPool"))


@pytest.mark.native
@pytest.mark.parametrize("name", ["transitions", "se_transition"])
def test_strides_keep_the_numpy_reference(name, files):
    proto, model = files[name]
    native = caffe.convert(_args(proto, model))
    x = image_like((1, 8, 12, 12), seed=3) / 64.0
    want = reference(parse_prototxt(proto.read_text()),
                     {layer.name: layer.blobs for layer in read_net(proto, model).layers if layer.blobs},
                     {"data": x.astype(np.float64)})["prob"]
    assert_not_saturated(want)
    assert_close(infer(native, x), want)


@pytest.mark.native
def test_strides_move_as_planned(files):
    structure = _structure(caffe.convert(_args(*files["transitions"])))
    pools = [s for s in structure if s[0] == "MaxPool"]
    # q's stride moves through q/relu, the sum p, p_conv (its only reader) and s2/relu into s2's sum:
    # its per-channel product comes through a 1x1 MaxPool, its projection takes stride 2 x 2 from s1;
    # s1/relu is read with two strides (2 by s2's reduce, 4): nothing moves further.
    assert pools == [("MaxPool", (2, 2), (1, 32, 3, 3))]
    assert ("Convolution", (4, 4), (1, 32, 3, 3)) in structure
    assert [s[1:] for s in structure if s[0] == "Convolution" and s[1] != (1, 1)] == [((2, 2), (1, 8, 6, 6)),
                                                                                      ((4, 4), (1, 32, 3, 3))]
    padded = _structure(caffe.convert(_args(*files["padded"])))
    assert not [s for s in padded if s[0] == "MaxPool"]
    assert [s[1] for s in padded if s[0] == "Convolution"].count((2, 2)) == 2


def test_strides_match_model_optimizer(files, tmp_path):
    proto, model = files["se_transition"]
    mo_model = ov.Core().read_model(str(run_mo(tmp_path, _args(proto, model), tmp_path / "cache")))
    native = caffe.convert(_args(proto, model))
    structure = _structure(native)
    assert structure == _structure(mo_model)
    assert [s for s in structure if s[0] == "MaxPool"] == [("MaxPool", (2, 2), (1, 16, 6, 6))] * 2
    for seed in (1, 2):
        x = image_like((1, 8, 12, 12), seed=seed) / 64.0
        want = infer(mo_model, x)
        assert_not_saturated(want)
        assert_close(infer(native, x), want)
