"""The native Caffe front end's API: MO arguments, input forms, the file forms of blobs, names, and
every failure as one CaffeConversionError message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers_caffe import (IMAGE_MEAN, SMALL_INPUT_SHAPE, assert_not_saturated, image_like, parse_prototxt,
                           reference, small_se_resnet_prototxt, write_caffemodel)
from omz_tools.convert import caffe
from omz_tools.convert.caffe.reader import read_net

# Needs no Model Optimizer: CI runs these again beside the newest openvino and numpy 2.
pytestmark = pytest.mark.native
ov = pytest.importorskip("openvino")
F32 = {"INFERENCE_PRECISION_HINT": "f32"}

V1_NET = '''name: "v1"
input: "data"
input_dim: 1
input_dim: 3
input_dim: 16
input_dim: 16
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         convolution_param { num_output: 8 kernel_size: 3 stride: 2 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "fc" type: INNER_PRODUCT bottom: "pool" top: "fc" inner_product_param { num_output: 10 } }
layers { name: "prob" type: SOFTMAX bottom: "fc" top: "prob" }
'''


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("native_small")
    proto = root / "net.prototxt"
    proto.write_text(small_se_resnet_prototxt())
    model = write_caffemodel(proto, root / "net.caffemodel", seed=3)
    return proto, model


def _args(proto, model, *extra):
    return [f"--input_model={model}", f"--input_proto={proto}", *extra]


def _run(model, x):
    compiled = ov.Core().compile_model(model, "CPU", F32)
    return compiled({compiled.input(0): x})[compiled.output(0)]


def _ref(proto, model, x):
    net = parse_prototxt(Path(proto).read_text())
    blobs = {layer.name: layer.blobs for layer in read_net(proto, model).layers if layer.blobs}
    return reference(net, blobs, {"data": np.asarray(x, np.float64)})["prob"]


def _close(got, want, tol=1e-5):
    scale = float(np.abs(want).max())
    assert float(np.abs(np.asarray(got, np.float64) - want).max()) <= tol * scale


def test_importing_the_api_imports_neither_openvino_nor_protobuf():
    code = ("import sys, omz_tools.convert.caffe as c; c.SUPPORTED_LAYER_TYPES; "
            "print(any(m.startswith(('openvino', 'google.protobuf')) for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.stdout.strip() == "False", out.stderr


def test_mo_arguments_names_and_mean(small):
    proto, model = small
    args = ["--framework=caffe", "--output_dir=/nonexistent/mo", "--model_name=se-small", "--input=data",
            f"--input_shape=[{','.join(map(str, SMALL_INPUT_SHAPE))}]", "--mean_values=data[104.0,117.0,123.0]",
            "--output=prob", f"--input_model={model}", f"--input_proto={proto}", "--compress_to_fp16=False",
            "--caffe_parser_path", "/nonexistent"]
    m = caffe.convert(args)
    assert m.get_friendly_name() == "se-small"
    assert [(p.get_any_name(), p.get_node().get_friendly_name(), list(p.get_shape())) for p in m.inputs] == \
        [("data", "data", SMALL_INPUT_SHAPE)]
    assert [o.get_names() for o in m.outputs] == [{"prob"}]
    x = image_like(SMALL_INPUT_SHAPE, 11)
    want = _ref(proto, model, x - IMAGE_MEAN.reshape(1, 3, 1, 1))
    assert_not_saturated(want)
    _close(_run(m, x), want)


def test_scale_values_and_reverse_input_channels(small):
    proto, model = small
    m = caffe.convert(_args(proto, model, "--input", "data", "--mean_values", "[104,117,123]",
                            "--scale_values=data[2,4,8]", "--reverse_input_channels"))
    mean, scale = IMAGE_MEAN.reshape(1, 3, 1, 1), np.array([2, 4, 8.0]).reshape(1, 3, 1, 1)
    u = image_like(SMALL_INPUT_SHAPE, 12) - mean  # what the weights were drawn for
    x = (mean + scale * u)[:, ::-1].astype(np.float32)  # an RGB input that becomes u after MO's order:
    prepared = (x[:, ::-1] - mean) / scale  # reverse the channels, subtract the mean, divide by the scale
    want = _ref(proto, model, prepared)
    assert_not_saturated(want)
    _close(_run(m, x), want)


def test_input_shape_override_and_layout(small):
    proto, model = small
    m = caffe.convert(_args(proto, model, "--input_shape=[2,3,64,64]", "--layout=data(NCHW)"))
    assert list(m.input(0).get_shape()) == [2, 3, 64, 64] and m.output(0).get_shape()[0] == 2
    assert m.get_parameters()[0].get_layout().to_string() == "[N,C,H,W]"


def test_v1_layers_and_input_dim(tmp_path):
    proto = tmp_path / "v1.prototxt"
    proto.write_text(V1_NET)
    model = write_caffemodel(proto, tmp_path / "v1.caffemodel", seed=4, legacy_shape=True)  # num/channels/...
    shaped = write_caffemodel(proto, tmp_path / "v1-shaped.caffemodel", seed=4)  # same weights, BlobShape
    m = caffe.convert(_args(proto, model))
    x = image_like((1, 3, 16, 16), 5) - IMAGE_MEAN.reshape(1, 3, 1, 1)
    want = _ref(proto, shaped, x)
    assert_not_saturated(want)
    _close(_run(m, x.astype(np.float32)), want)
    assert [o.get_names() for o in m.outputs] == [{"prob"}]


@pytest.mark.parametrize("form", ["unpacked", "double"])
def test_blob_forms(small, tmp_path, form):
    proto, packed = small
    model = write_caffemodel(proto, tmp_path / "net.caffemodel", seed=3, **{form: True})
    assert model.read_bytes() != packed.read_bytes()
    x = image_like(SMALL_INPUT_SHAPE, 6)
    a = _run(caffe.convert(_args(proto, model)), x)
    b = _run(caffe.convert(_args(proto, packed)), x)
    np.testing.assert_array_equal(a, b)


def test_real_se_resnet_prototxt_parses(se_resnet_prototxt):
    from omz_tools.convert.caffe.reader import read_net as read
    net = read(se_resnet_prototxt, None)
    assert net.inputs == {"data": [1, 3, 224, 224]} and len(net.layers) == 614
    assert {layer.type for layer in net.layers} <= caffe.SUPPORTED_LAYER_TYPES


def test_unsupported_layer_message(tmp_path):
    proto = tmp_path / "net.prototxt"
    proto.write_text('input: "data"\ninput_shape { dim: 1 dim: 3 dim: 8 dim: 8 }\n'
                     'layer { name: "odd" type: "SPP" bottom: "data" top: "odd" }\n')
    (tmp_path / "net.caffemodel").write_bytes(b"")
    with pytest.raises(caffe.UnsupportedLayerError) as info:
        caffe.convert(_args(proto, tmp_path / "net.caffemodel"))
    message = str(info.value)
    assert 'layer "odd" has type "SPP"' in message and "Convolution" in message and "--backend mo" in message
    assert isinstance(info.value, caffe.CaffeConversionError)


@pytest.mark.parametrize("arg", ["--transform=LowLatency2", "--extensions=/opt/ext", "--example_input=x"])
def test_unknown_mo_argument_message(small, arg):
    proto, model = small
    with pytest.raises(caffe.UnsupportedArgumentError) as info:
        caffe.convert(_args(proto, model, arg))
    assert arg.split("=")[0] in str(info.value) and "native Caffe front end" in str(info.value)


def test_truncated_caffemodel_message(small, tmp_path):
    proto, model = small
    data = model.read_bytes()
    for cut in (len(data) // 2 + 3, len(data) - 1):
        broken = tmp_path / f"cut{cut}.caffemodel"
        broken.write_bytes(data[:cut])
        with pytest.raises(caffe.CaffeConversionError) as info:
            caffe.convert(_args(proto, broken))
        message = str(info.value)
        assert str(broken) in message and ("truncated" in message or "corrupt" in message), message
        assert "\n" not in message


def test_blob_of_wrong_size_message(small, tmp_path):
    proto, model = small
    other = tmp_path / "other.prototxt"
    other.write_text(proto.read_text().replace("num_output: 16", "num_output: 24", 1))
    with pytest.raises(caffe.CaffeConversionError) as info:
        caffe.convert(_args(other, model))
    message = str(info.value)
    assert 'layer "conv1/7x7_s2" (Convolution)' in message and "[24, 3, 7, 7]" in message and "[16, 3, 7, 7]" in message


def test_prototxt_that_does_not_parse(small, tmp_path):
    _, model = small
    bad = tmp_path / "bad.prototxt"
    bad.write_text("<html><body>Not Found</body></html>\n")
    with pytest.raises(caffe.CaffeConversionError) as info:
        caffe.convert(_args(bad, model))
    assert str(bad) in str(info.value) and "cannot parse" in str(info.value)


def test_versions_name_the_protobuf_backend():
    info = caffe.versions()
    assert set(info) >= {"native_caffe", "openvino", "protobuf", "protobuf_backend"}
    assert info["protobuf_backend"] in ("upb", "python", "cpp")
