"""Full-size SE-ResNet-101 through the native Caffe front end and through Model Optimizer: the real
prototxt from ../shared, one generated 198 MB caffemodel of sensible scale per session, one MO run."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SE_RESNET_PROTOTXT
from helpers_caffe import IMAGE_MEAN, assert_not_saturated, image_like, write_caffemodel
from test_caffe_native_layers import F32, run_mo

pytestmark = pytest.mark.slow
ov = pytest.importorskip("openvino")

ARGS = ["--framework=caffe", "--input=data", "--input_shape=[1,3,224,224]", "--mean_values=data[104.0,117.0,123.0]",
        "--output=prob"]


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    if not SE_RESNET_PROTOTXT.exists():
        pytest.skip(f"needs the real SE-ResNet-101 prototxt at {SE_RESNET_PROTOTXT} (../shared is absent)")
    root = tmp_path_factory.mktemp("native_full")
    model = write_caffemodel(SE_RESNET_PROTOTXT, root / "se-resnet-101.caffemodel", seed=101)
    args = ARGS + [f"--input_model={model}", f"--input_proto={SE_RESNET_PROTOTXT}"]
    from omz_tools.convert import caffe
    return {"root": root, "args": args, "native": caffe.convert(args)}


def _count(model) -> int:
    return sum(int(np.prod(list(op.get_output_shape(0)), dtype=np.int64))
               for op in model.get_ops() if op.get_type_name() == "Constant")


@pytest.mark.native
def test_parameter_count_is_the_cards(full):
    assert round(_count(full["native"]) / 1e6, 3) == 49.274


def test_native_and_mo_agree_on_three_inputs(full):
    mo_xml = run_mo(full["root"], full["args"][1:], full["root"] / "cache")
    core = ov.Core()
    mo_model = core.read_model(str(mo_xml))
    assert _count(mo_model) == _count(full["native"])
    native = core.compile_model(full["native"], "CPU", F32)
    oracle = core.compile_model(mo_model, "CPU", F32)
    for seed in (1, 2, 3):
        x = image_like((1, 3, 224, 224), seed)
        want = oracle({"data": x})[oracle.output(0)][0]
        got = native({"data": x})[native.output(0)][0]
        assert_not_saturated(want)
        assert list(np.argsort(-got)[:5]) == list(np.argsort(-want)[:5])
        assert float(np.abs(got - want).max()) <= 1e-4 * float(np.abs(want).max())
