"""Caffe fixtures for the converter tests: caffemodels with random weights for a prototxt.

Messages come from the caffe_pb2 module the converter builds from Model Optimizer's own schema
(omz_tools.convert.caffe_parser), so the helper needs no Caffe and no protoc. Weights are drawn so
that activations stay sane through a deep network (He-style scaling, positive BatchNorm variance),
and a seed makes every file reproducible.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np

from omz_tools.convert import caffe_parser

# A small SE-ResNet with the layer types of SE-ResNet-101 (Convolution, BatchNorm, Scale, ReLU,
# Pooling, Axpy, Sigmoid, InnerProduct, Softmax): converts in a few seconds.
SMALL_INPUT_SHAPE = [1, 3, 64, 64]
SMALL_CLASSES = 10


def _conv(name, bottom, num_output, kernel, stride=1, pad=0, bias=False, top=None):
    top = top or name
    bias_line = "" if bias else "\n    bias_term: false"
    return f'''layer {{
  name: "{name}"
  type: "Convolution"
  bottom: "{bottom}"
  top: "{top}"
  convolution_param {{
    num_output: {num_output}{bias_line}
    pad: {pad}
    kernel_size: {kernel}
    stride: {stride}
  }}
}}
'''


def _bn_scale(name, blob):
    return f'''layer {{
  name: "{name}/bn"
  type: "BatchNorm"
  bottom: "{blob}"
  top: "{blob}"
  batch_norm_param {{ use_global_stats: true }}
}}
layer {{
  name: "{name}/bn/scale"
  type: "Scale"
  bottom: "{blob}"
  top: "{blob}"
  scale_param {{ bias_term: true }}
}}
'''


def _simple(name, kind, bottom, top=None):
    return f'layer {{\n  name: "{name}"\n  type: "{kind}"\n  bottom: "{bottom}"\n  top: "{top or bottom}"\n}}\n'


def _se_block(prefix, bottom, mid, out, reduced, project):
    text = _conv(f"{prefix}_1x1_reduce", bottom, mid, 1) + _bn_scale(f"{prefix}_1x1_reduce", f"{prefix}_1x1_reduce")
    text += _simple(f"{prefix}_1x1_reduce/relu", "ReLU", f"{prefix}_1x1_reduce")
    text += _conv(f"{prefix}_3x3", f"{prefix}_1x1_reduce", mid, 3, pad=1) + _bn_scale(f"{prefix}_3x3", f"{prefix}_3x3")
    text += _simple(f"{prefix}_3x3/relu", "ReLU", f"{prefix}_3x3")
    text += _conv(f"{prefix}_1x1_increase", f"{prefix}_3x3", out, 1)
    text += _bn_scale(f"{prefix}_1x1_increase", f"{prefix}_1x1_increase")
    text += f'''layer {{
  name: "{prefix}_global_pool"
  type: "Pooling"
  bottom: "{prefix}_1x1_increase"
  top: "{prefix}_global_pool"
  pooling_param {{ pool: AVE engine: CAFFE global_pooling: true }}
}}
'''
    text += _conv(f"{prefix}_1x1_down", f"{prefix}_global_pool", reduced, 1, bias=True)
    text += _simple(f"{prefix}_1x1_down/relu", "ReLU", f"{prefix}_1x1_down")
    text += _conv(f"{prefix}_1x1_up", f"{prefix}_1x1_down", out, 1, bias=True)
    text += _simple(f"{prefix}_prob", "Sigmoid", f"{prefix}_1x1_up")
    shortcut = bottom
    if project:
        text += _conv(f"{prefix}_1x1_proj", bottom, out, 1) + _bn_scale(f"{prefix}_1x1_proj", f"{prefix}_1x1_proj")
        shortcut = f"{prefix}_1x1_proj"
    text += f'''layer {{
  name: "{prefix}"
  type: "Axpy"
  bottom: "{prefix}_1x1_up"
  bottom: "{prefix}_1x1_increase"
  bottom: "{shortcut}"
  top: "{prefix}"
}}
'''
    text += _simple(f"{prefix}/relu", "ReLU", prefix)
    return text


def small_se_resnet_prototxt() -> str:
    n, c, h, w = SMALL_INPUT_SHAPE
    text = f'''name: "SE-ResNet-small"
layer {{
  name: "data"
  type: "Input"
  top: "data"
  input_param {{ shape {{ dim: {n} dim: {c} dim: {h} dim: {w} }} }}
}}
'''
    text += _conv("conv1/7x7_s2", "data", 16, 7, stride=2, pad=3) + _bn_scale("conv1/7x7_s2", "conv1/7x7_s2")
    text += _simple("conv1/relu_7x7_s2", "ReLU", "conv1/7x7_s2")
    text += '''layer {
  name: "pool1/3x3_s2"
  type: "Pooling"
  bottom: "conv1/7x7_s2"
  top: "pool1/3x3_s2"
  pooling_param { pool: MAX kernel_size: 3 stride: 2 }
}
'''
    text += _se_block("conv2_1", "pool1/3x3_s2", 8, 32, 2, project=True)
    text += _se_block("conv2_2", "conv2_1", 8, 32, 2, project=False)
    text += f'''layer {{
  name: "pool5"
  type: "Pooling"
  bottom: "conv2_2"
  top: "pool5"
  pooling_param {{ pool: AVE kernel_size: 16 stride: 1 }}
}}
layer {{
  name: "classifier"
  type: "InnerProduct"
  bottom: "pool5"
  top: "classifier"
  inner_product_param {{ num_output: {SMALL_CLASSES} }}
}}
layer {{
  name: "prob"
  type: "Softmax"
  bottom: "classifier"
  top: "prob"
}}
'''
    return text


# -- caffemodel building -------------------------------------------------------------------------

def caffe_pb2_module(cache_root: Path):
    """The converter's caffe_pb2 for the installed MO, loaded under a private name."""
    from omz_tools.convert.mo import find_mo
    mo = find_mo()
    folder = caffe_parser.ensure_parser(mo.mo_dir, mo.mo_version, cache_root)
    existing = __import__("sys").modules.get("_omz_test_caffe_pb2")
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location("_omz_test_caffe_pb2", folder / "caffe_pb2.py")
    module = importlib.util.module_from_spec(spec)
    __import__("sys").modules["_omz_test_caffe_pb2"] = module
    spec.loader.exec_module(module)
    return module


def _pooled(size, kernel, stride, pad):
    # Caffe rounds pooling output up, then drops a window that would start in the padding.
    out = int(math.ceil((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _first(values, default):
    return values[0] if len(values) else default


def _blob_bytes(array: np.ndarray) -> bytes:
    """A serialized BlobProto: shape (field 7) then packed float data (field 5), built directly
    because filling 49 M floats through the message API is slow."""
    dims = b"".join(_varint(d) for d in array.shape)
    shape = b"\x0a" + _len(dims)  # BlobShape.dim, packed int64
    data = np.ascontiguousarray(array, dtype="<f4").tobytes()
    return b"\x3a" + _len(shape) + b"\x2a" + _len(data)


def random_blobs(net, rng: np.random.Generator) -> dict:
    """Blob arrays per layer name for a parsed prototxt, following blob shapes through the net."""
    shapes: dict = {}
    blobs: dict = {}
    for layer in net.layer:
        kind = layer.type
        bottoms = [shapes[b] for b in layer.bottom]
        if kind == "Input":
            for top, shape in zip(layer.top, layer.input_param.shape):
                shapes[top] = list(shape.dim)
            continue
        if kind == "Convolution":
            p = layer.convolution_param
            n, c, h, w = bottoms[0]
            k, s, pad = _first(p.kernel_size, 1), _first(p.stride, 1), _first(p.pad, 0)
            group = p.group or 1
            fan_in = c // group * k * k
            weights = rng.standard_normal((p.num_output, c // group, k, k)) * math.sqrt(2.0 / fan_in)
            blobs[layer.name] = [weights] + ([rng.standard_normal(p.num_output) * 0.01] if p.bias_term else [])
            out = [n, p.num_output, (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1]
        elif kind == "BatchNorm":
            channels = bottoms[0][1]
            # mean, variance (positive), scale factor (Caffe divides the first two by it).
            blobs[layer.name] = [rng.standard_normal(channels) * 0.1, rng.uniform(0.5, 1.5, channels),
                                 np.array([1.0])]
            out = bottoms[0]
        elif kind == "Scale":
            channels = bottoms[0][1]
            blobs[layer.name] = [rng.uniform(0.5, 1.5, channels)] + (
                [rng.standard_normal(channels) * 0.1] if layer.scale_param.bias_term else [])
            out = bottoms[0]
        elif kind == "Pooling":
            p = layer.pooling_param
            n, c, h, w = bottoms[0]
            if p.global_pooling:
                out = [n, c, 1, 1]
            else:
                out = [n, c, _pooled(h, p.kernel_size, p.stride or 1, p.pad),
                       _pooled(w, p.kernel_size, p.stride or 1, p.pad)]
        elif kind == "InnerProduct":
            p = layer.inner_product_param
            fan_in = int(np.prod(bottoms[0][1:]))
            blobs[layer.name] = [rng.standard_normal((p.num_output, fan_in)) * math.sqrt(1.0 / fan_in)] + (
                [rng.standard_normal(p.num_output) * 0.01] if p.bias_term else [])
            out = [bottoms[0][0], p.num_output]
        elif kind == "Axpy":
            out = bottoms[1]
        elif kind in ("ReLU", "Sigmoid", "Softmax"):
            out = bottoms[0]
        else:
            raise ValueError(f"helpers_caffe: unsupported layer type {kind!r} in layer {layer.name!r}")
        for top in layer.top:
            shapes[top] = list(out)
    return blobs


def write_caffemodel(prototxt: Path, caffemodel: Path, cache_root: Path, seed: int = 0) -> Path:
    """Write a caffemodel with random weights for every parametrised layer of ``prototxt``."""
    from google.protobuf import text_format
    caffe_pb2 = caffe_pb2_module(cache_root)
    net = caffe_pb2._NetParameterMessage()
    text_format.Merge(Path(prototxt).read_text(encoding="utf-8"), net)
    rng = np.random.default_rng(seed)
    pieces = [caffe_pb2._NetParameterMessage(name=net.name).SerializeToString()]
    blobs = random_blobs(net, rng)
    # Layers are appended as serialized bytes (a repeated field concatenates), blobs included.
    for layer in net.layer:
        head = caffe_pb2.LayerParameter(name=layer.name, type=layer.type, bottom=layer.bottom,
                                        top=layer.top).SerializeToString()
        body = b"".join(b"\x3a" + _len(_blob_bytes(a)) for a in blobs.get(layer.name, []))  # blobs = 7
        pieces.append(_field(100, head + body))  # NetParameter.layer = 100
    caffemodel = Path(caffemodel)
    caffemodel.parent.mkdir(parents=True, exist_ok=True)
    caffemodel.write_bytes(b"".join(pieces))
    return caffemodel


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _len(payload: bytes) -> bytes:
    return _varint(len(payload)) + payload


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _len(payload)


def file_digest(path: Path) -> tuple:
    """(size, sha256 hex) of a file."""
    hasher = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            hasher.update(chunk)
    return Path(path).stat().st_size, hasher.hexdigest()


# -- test registries ------------------------------------------------------------------------------

def conv_fc_gflops(prototxt_text: str, cache_root: Path) -> float:
    """2 x multiply-adds of the Convolution and InnerProduct layers (what ircheck estimates)."""
    from google.protobuf import text_format
    caffe_pb2 = caffe_pb2_module(cache_root)
    net = caffe_pb2._NetParameterMessage()
    text_format.Merge(prototxt_text, net)
    blobs = random_blobs(net, np.random.default_rng(0))
    shapes = _output_shapes(net)
    macs = 0
    for layer in net.layer:
        if layer.type == "Convolution":
            out = shapes[layer.top[0], layer.name]
            macs += int(np.prod(out)) * int(np.prod(blobs[layer.name][0].shape[1:]))
        elif layer.type == "InnerProduct":
            macs += int(np.prod(blobs[layer.name][0].shape))
    return 2 * macs / 1e9


def _output_shapes(net) -> dict:
    """(top, layer name) -> output shape, for Convolution layers (same rules as random_blobs)."""
    shapes, result = {}, {}
    for layer in net.layer:
        bottoms = [shapes[b] for b in layer.bottom]
        if layer.type == "Input":
            for top, shape in zip(layer.top, layer.input_param.shape):
                shapes[top] = list(shape.dim)
            continue
        if layer.type == "Convolution":
            p = layer.convolution_param
            n, c, h, w = bottoms[0]
            k, s, pad = _first(p.kernel_size, 1), _first(p.stride, 1), _first(p.pad, 0)
            out = [n, p.num_output, (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1]
            result[layer.top[0], layer.name] = out
        elif layer.type == "Pooling":
            p = layer.pooling_param
            n, c, h, w = bottoms[0]
            out = [n, c, 1, 1] if p.global_pooling else [
                n, c, _pooled(h, p.kernel_size, p.stride or 1, p.pad), _pooled(w, p.kernel_size, p.stride or 1, p.pad)]
        elif layer.type == "InnerProduct":
            out = [bottoms[0][0], layer.inner_product_param.num_output]
        elif layer.type == "Axpy":
            out = bottoms[1]
        else:
            out = bottoms[0]
        for top in layer.top:
            shapes[top] = list(out)
    return result


def write_model_yml(registry: Path, name: str, files: list, *, input_shape: list, outputs: dict,
                    mean: bool = True, card_extra: str = "", extra_mo_args: list = (),
                    top_extra: str = "") -> Path:
    """A caffe model entry like se-resnet-101's. ``files``: (file name, size, sha256, url)."""
    folder = registry / "public" / name
    folder.mkdir(parents=True, exist_ok=True)
    file_lines = "".join(f"  - name: {f}\n    size: {size}\n    sha256: {digest}\n    source: {url}\n"
                         for f, size, digest, url in files)
    proto = next(f for f, *_ in files if f.endswith(".prototxt"))
    weights = next(f for f, *_ in files if f.endswith(".caffemodel"))
    args = [f"--input_shape={input_shape}".replace(" ", ""), "--input=data"]
    if mean:
        args.append("--mean_values=data[104.0,117.0,123.0]")
    args += ["--output=prob", f"--input_model=$dl_dir/{weights}", f"--input_proto=$dl_dir/{proto}", *extra_mo_args]
    arg_lines = "".join(f"  - {a}\n" for a in args)
    out_lines = "".join(f"    - name: {o}\n      shape: {shape}\n      kind: probabilities\n"
                        for o, shape in outputs.items())
    (folder / "model.yml").write_text(
        f"description: test model {name}\ntask_type: classification\nfiles:\n{file_lines}"
        f"model_optimizer_args:\n{arg_lines}framework: caffe\nlicense: https://example.com/license\n{top_extra}"
        f"model_card:\n  inputs:\n    - name: data\n      shape: {input_shape}\n"
        f"  outputs:\n{out_lines}{card_extra}", encoding="utf-8")
    return folder / "model.yml"
