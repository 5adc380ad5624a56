"""Caffe fixtures for the converter tests: caffemodels with random weights for a prototxt, and an
independent numpy implementation of Caffe's forward pass (the reference for numeric tests).

Messages come from the native front end's own schema (omz_tools.convert.caffe.schema): no Model
Optimizer, no Caffe, no protoc. Weights have sensible scales, set while a numpy forward pass runs
through the network on image-like inputs: He-initialised convolutions, BatchNorm statistics taken
from the actual activations (so they normalise), and the last InnerProduct rescaled so the logits
have a standard deviation of 2. The softmax is then far from one-hot, and a comparison of outputs
means something; ``assert_not_saturated`` checks it. A seed makes every file reproducible.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np


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


# -- a numpy Caffe: the reference forward pass ------------------------------------------------------

IMAGE_MEAN = np.array([104.0, 117.0, 123.0])


def image_like(shape, seed: int) -> np.ndarray:
    """Random pixels in 0..255 (what a classifier's input sees before mean subtraction)."""
    return np.random.default_rng(seed).uniform(0, 255, shape).astype(np.float32)


def parse_prototxt(text: str):
    from google.protobuf import text_format
    from omz_tools.convert.caffe.schema import schema
    net = schema().NetParameter()
    text_format.Merge(text, net, allow_unknown_field=True)
    return net


def _layers(net):
    """(name, type, bottoms, tops, layer message) for V2 and V1 networks."""
    from omz_tools.convert.caffe.reader import _layer_type
    v1 = not len(net.layer) and len(net.layers)
    for layer in (net.layers if v1 else net.layer):
        yield layer.name, _layer_type(layer, v1), list(layer.bottom), list(layer.top), layer


def _pair(param, many, h, w, default):
    if param.HasField(h) or param.HasField(w):
        return int(getattr(param, h)), int(getattr(param, w))
    values = getattr(param, many)
    if isinstance(values, int):
        return (values, values) if values or param.HasField(many) else (default, default)
    values = list(values) or [default]
    return (values[0], values[1]) if len(values) > 1 else (values[0], values[0])


def _np_conv(x, w, stride, pad, dilation, group):
    n, c, h, wd = x.shape
    out, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[0]), (pad[1], pad[1])))
    ho = (h + 2 * pad[0] - (dilation[0] * (kh - 1) + 1)) // stride[0] + 1
    wo = (wd + 2 * pad[1] - (dilation[1] * (kw - 1) + 1)) // stride[1] + 1
    og = out // group
    # every group at once: (1, g, og, cg) @ (n, g, cg, ho * wo) per kernel tap (BLAS, not one einsum per group)
    xg = xp.reshape(n, group, cg, xp.shape[2], xp.shape[3])
    wg = w.reshape(group, og, cg, kh, kw)
    y = np.zeros((n, group, og, ho * wo))
    for i in range(kh):
        for j in range(kw):
            patch = xg[:, :, :, i * dilation[0]: i * dilation[0] + stride[0] * (ho - 1) + 1: stride[0],
                       j * dilation[1]: j * dilation[1] + stride[1] * (wo - 1) + 1: stride[1]]
            y += np.matmul(wg[None, :, :, :, i, j], patch.reshape(n, group, cg, ho * wo))
    return y.reshape(n, out, ho, wo)


def _np_deconv(x, w, stride, pad, dilation, group):
    n, c, h, wd = x.shape
    cin, og, kh, kw = w.shape
    cg = c // group
    full_h = stride[0] * (h - 1) + dilation[0] * (kh - 1) + 1
    full_w = stride[1] * (wd - 1) + dilation[1] * (kw - 1) + 1
    y = np.zeros((n, og * group, full_h, full_w))
    for g in range(group):
        xs = x[:, g * cg:(g + 1) * cg]
        for i in range(kh):
            for j in range(kw):
                contrib = np.einsum("nchw,co->nohw", xs, w[g * cg:(g + 1) * cg, :, i, j])
                y[:, g * og:(g + 1) * og, i * dilation[0]: i * dilation[0] + stride[0] * (h - 1) + 1: stride[0],
                  j * dilation[1]: j * dilation[1] + stride[1] * (wd - 1) + 1: stride[1]] += contrib
    return y[:, :, pad[0]: full_h - pad[0], pad[1]: full_w - pad[1]]


def _pool_size(size, kernel, stride, pad, ceil):
    rounding = math.ceil if ceil else math.floor
    out = int(rounding((size + 2 * pad - kernel) / stride)) + 1
    if pad and (out - 1) * stride >= size + pad:
        out -= 1  # Caffe: the last window must start inside the image
    return out


def _pool(x, method, kernel, stride, pad, ceil=True):
    n, c, h, w = x.shape
    ho = _pool_size(h, kernel[0], stride[0], pad[0], ceil)
    wo = _pool_size(w, kernel[1], stride[1], pad[1], ceil)
    y = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            hs, ws = i * stride[0] - pad[0], j * stride[1] - pad[1]
            he, we = min(hs + kernel[0], h + pad[0]), min(ws + kernel[1], w + pad[1])
            area = (he - hs) * (we - ws)
            hs, ws, he, we = max(hs, 0), max(ws, 0), min(he, h), min(we, w)
            window = x[:, :, hs:he, ws:we]
            y[:, :, i, j] = window.max(axis=(2, 3)) if method == 0 else window.sum(axis=(2, 3)) / area
    return y


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _along(values, rank, axis):
    values = np.asarray(values)
    return values.reshape([1] * axis + list(values.shape) + [1] * (rank - axis - values.ndim))


_ACTIVATIONS = {  # Caffe's definitions (relu6 as the Caffe forks that have it)
    "ReLU6": lambda x, layer: np.clip(x, 0.0, 6.0),
    "ELU": lambda x, layer: np.where(x > 0, x, (layer.elu_param.alpha if layer.HasField("elu_param") else 1.0)
                                     * (np.exp(np.minimum(x, 0)) - 1)),
    "AbsVal": lambda x, layer: np.abs(x),
    "BNLL": lambda x, layer: np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(x))),
}


def _np_reduction(x, p):
    axis = p.axis % x.ndim if x.ndim else 0
    axes = tuple(range(axis, x.ndim))
    op = {1: np.sum, 2: lambda v, axis: np.abs(v).sum(axis=axis), 3: lambda v, axis: (v * v).sum(axis=axis),
          4: np.mean}[p.operation]
    return op(x, axis=axes) * p.coeff


def _np_crop(xs, p):
    x, ref = xs
    axis = p.axis % x.ndim
    offsets = list(p.offset) or [0]
    offsets = offsets * (x.ndim - axis) if len(offsets) == 1 else offsets
    index = [slice(None)] * axis + [slice(o, o + ref.shape[a]) for a, o in zip(range(axis, x.ndim), offsets)]
    return x[tuple(index)]


def _np_argmax(x, p):
    if p.HasField("axis"):
        order = np.argsort(-x, axis=p.axis, kind="stable")
        index = np.take(order, range(p.top_k), axis=p.axis)
        return np.take_along_axis(x, index, axis=p.axis) if p.out_max_val else index.astype(np.float64)
    flat = x.reshape(x.shape[0], 1, -1)
    index = np.argsort(-flat, axis=2, kind="stable")[:, :, :p.top_k]
    values = np.take_along_axis(flat, index, axis=2)
    return np.concatenate([index, values], axis=1) if p.out_max_val else index.astype(np.float64)


def _np_interp(xs, p):
    """Caffe's Interp: bilinear with the corners aligned, Caffe's output size rules (no padding)."""
    x = xs[0]
    h, w = x.shape[2:]
    shrink, zoom, sized = p.HasField("shrink_factor"), p.HasField("zoom_factor"), p.HasField("height")
    if shrink or zoom:  # (when both are given with height/width, Caffe takes height/width; not tested)
        ho, wo = (h - 1) // p.shrink_factor + 1, (w - 1) // p.shrink_factor + 1
        ho, wo = ho + (ho - 1) * (p.zoom_factor - 1), wo + (wo - 1) * (p.zoom_factor - 1)
    elif sized:
        ho, wo = p.height, p.width
    else:
        ho, wo = xs[1].shape[2:]

    def grid(n_in, n_out):
        pos = np.arange(n_out) * ((n_in - 1) / (n_out - 1) if n_out > 1 else 0.0)
        low = np.minimum(np.floor(pos).astype(int), n_in - 1)
        return low, np.minimum(low + 1, n_in - 1), pos - low
    y0, y1, fy = grid(h, ho)
    x0, x1, fx = grid(w, wo)
    top = x[:, :, y0][:, :, :, x0] * (1 - fx) + x[:, :, y0][:, :, :, x1] * fx
    bottom = x[:, :, y1][:, :, :, x0] * (1 - fx) + x[:, :, y1][:, :, :, x1] * fx
    return top * (1 - fy)[:, None] + bottom * fy[:, None]


def _np_shuffle(x, group):
    n, c = x.shape[:2]
    return x.reshape((n, group, c // group) + x.shape[2:]).swapaxes(1, 2).reshape(x.shape)


_EXTRA_LAYERS = {  # Caffe's definitions of layers_extra's multi-parameter layers
    "Exp": lambda xs, l: [(np.e if l.exp_param.base == -1 else l.exp_param.base)
                          ** (l.exp_param.shift + l.exp_param.scale * xs[0])],
    "Log": lambda xs, l: [np.log(l.log_param.shift + l.log_param.scale * xs[0])
                          / (1.0 if l.log_param.base == -1 else np.log(l.log_param.base))],
    "Tile": lambda xs, l: [np.tile(xs[0], [l.tile_param.tiles if a == l.tile_param.axis % xs[0].ndim else 1
                                           for a in range(xs[0].ndim)])],
    "Reduction": lambda xs, l: [_np_reduction(xs[0], l.reduction_param)],
    "ShuffleChannel": lambda xs, l: [_np_shuffle(xs[0], l.shuffle_channel_param.group)],
    "Crop": lambda xs, l: [_np_crop(xs, l.crop_param)],
    "ArgMax": lambda xs, l: [_np_argmax(xs[0], l.argmax_param)],
    "Interp": lambda xs, l: [_np_interp(xs, l.interp_param)],
}


class _Weights:
    """Blobs per layer: drawn while the forward pass meets each layer (``rng`` given) or read back."""

    def __init__(self, rng=None, given=None):
        self.rng = rng
        self.blobs = {} if given is None else given

    def get(self, name, make):
        if name not in self.blobs:
            if self.rng is None:
                return []  # a layer without weights in this configuration (e.g. Scale by a bottom)
            self.blobs[name] = [np.asarray(b, dtype=np.float64) for b in make()]
        return [np.asarray(b, dtype=np.float64) for b in self.blobs[name]]


# kind -> f(layer, bottoms, get_blobs(make), rng) -> tops: numpy references registered by other helpers
EXTRA_FORWARD: dict = {}


def forward(net, inputs: dict, weights: _Weights, *, classifier_std: float = 2.0) -> dict:
    """Caffe's forward pass in numpy (float64). ``inputs``: blob name -> array. Returns every blob
    (last write). Drawing weights (``weights.rng``), BatchNorm takes its input's statistics and the
    last InnerProduct is rescaled so its outputs have std ``classifier_std``."""
    rng = weights.rng
    blobs = {k: np.asarray(v, dtype=np.float64) for k, v in inputs.items()}
    layer_list = [l for l in _layers(net) if l[1] != "Input"]
    last_ip = max((i for i, l in enumerate(layer_list) if l[1] == "InnerProduct"), default=None)
    for index, (name, kind, bottoms, tops, layer) in enumerate(layer_list):
        xs = [blobs[b] for b in bottoms]
        x = xs[0] if xs else None
        if kind == "Convolution" or kind == "Deconvolution":
            p = layer.convolution_param
            kernel = _pair(p, "kernel_size", "kernel_h", "kernel_w", 1)
            stride = _pair(p, "stride", "stride_h", "stride_w", 1)
            pad = _pair(p, "pad", "pad_h", "pad_w", 0)
            dilation = tuple(list(p.dilation) * 2)[:2] if len(p.dilation) == 1 else tuple(p.dilation) or (1, 1)
            group, c = p.group or 1, x.shape[1]
            if kind == "Convolution":
                fan_in = c // group * kernel[0] * kernel[1]
                shape = (p.num_output, c // group) + kernel
            else:
                fan_in = c // group * kernel[0] * kernel[1] / (stride[0] * stride[1])
                shape = (c, p.num_output // group) + kernel
            blobs_ = weights.get(name, lambda: [rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)] + (
                [rng.standard_normal(p.num_output) * 0.1] if p.bias_term else []))
            y = (_np_conv if kind == "Convolution" else _np_deconv)(x, blobs_[0], stride, pad, dilation, group)
            if p.bias_term:
                y = y + blobs_[1].reshape(1, -1, 1, 1)
            outs = [y]
        elif kind == "InnerProduct":
            p = layer.inner_product_param
            axis = p.axis % x.ndim
            flat = x.reshape(int(np.prod(x.shape[:axis])), -1)

            def make():
                w = rng.standard_normal((p.num_output, flat.shape[1])) * math.sqrt(1.0 / flat.shape[1])
                b = rng.standard_normal(p.num_output) * 0.1
                if index == last_ip:  # logits with std classifier_std (a quarter of it for a handful of
                    # classes: with 10 logits of std 1, a top probability above 0.5 is a common draw)
                    std = classifier_std if p.num_output >= 100 else classifier_std / 4
                    w = w * std / max(float((flat @ w.T).std()), 1e-12)
                    b = b * std
                w = w.T if p.transpose else w
                return [w] + ([b] if p.bias_term else [])
            blobs_ = weights.get(name, make)
            w = blobs_[0].T if p.transpose else blobs_[0]
            y = flat @ w.T + (blobs_[1] if p.bias_term else 0)
            outs = [y.reshape(list(x.shape[:axis]) + [p.num_output])]
        elif kind == "BatchNorm":
            p = layer.batch_norm_param
            axes = tuple(i for i in range(x.ndim) if i != 1)

            def make():
                factor = rng.uniform(0.5, 2.0)  # Caffe divides both statistics by this third blob
                mean = x.mean(axis=axes) * rng.uniform(0.9, 1.1, x.shape[1])
                variance = x.var(axis=axes) * rng.uniform(0.8, 1.2, x.shape[1]) + 1e-3
                return [mean * factor, variance * factor, np.array([factor])]
            mean, variance, factor = weights.get(name, make)
            f = 0.0 if factor[0] == 0 else 1.0 / factor[0]
            eps = p.eps if layer.HasField("batch_norm_param") else 1e-5
            outs = [(x - _along(mean * f, x.ndim, 1)) / np.sqrt(_along(variance * f, x.ndim, 1) + eps)]
        elif kind == "Scale":
            p = layer.scale_param
            axis = p.axis % x.ndim
            if len(xs) == 2:
                span = xs[1].shape
                blobs_ = weights.get(name, lambda: [rng.standard_normal(span) * 0.1] if p.bias_term else [])
                y = x * _along(xs[1], x.ndim, axis)
                bias = blobs_[0] if p.bias_term else None
            else:
                num_axes = x.ndim - axis if p.num_axes == -1 else p.num_axes
                span = x.shape[axis:axis + num_axes]
                blobs_ = weights.get(name, lambda: [rng.uniform(0.5, 1.5, span)] + (
                    [rng.standard_normal(span) * 0.1] if p.bias_term else []))
                y = x * _along(blobs_[0], x.ndim, axis)
                bias = blobs_[1] if p.bias_term else None
            outs = [y + _along(bias, x.ndim, axis) if bias is not None else y]
        elif kind == "ReLU":
            slope = layer.relu_param.negative_slope
            outs = [np.where(x > 0, x, x * slope)]
        elif kind == "PReLU":
            shared = layer.prelu_param.channel_shared
            blobs_ = weights.get(name, lambda: [rng.uniform(0.05, 0.5, 1 if shared else x.shape[1])])
            outs = [np.where(x > 0, x, x * _along(blobs_[0], x.ndim, 1))]
        elif kind == "Pooling":
            p = layer.pooling_param
            if p.global_pooling:
                outs = [x.max(axis=(2, 3), keepdims=True) if p.pool == 0 else x.mean(axis=(2, 3), keepdims=True)]
            else:
                ceil = not (p.HasField("ceil_mode") and not p.ceil_mode) and p.round_mode == 0
                outs = [_pool(x, p.pool, _pair(p, "kernel_size", "kernel_h", "kernel_w", 1),
                              _pair(p, "stride", "stride_h", "stride_w", 1), _pair(p, "pad", "pad_h", "pad_w", 0), ceil)]
        elif kind == "Softmax":
            outs = [_softmax(x, layer.softmax_param.axis)]
        elif kind == "Sigmoid":
            outs = [1 / (1 + np.exp(-x))]
        elif kind == "TanH":
            outs = [np.tanh(x)]
        elif kind == "Axpy":
            outs = [xs[0] * xs[1] + xs[2]]
        elif kind == "Eltwise":
            p = layer.eltwise_param
            if p.operation == 1:
                coeffs = list(p.coeff) or [1.0] * len(xs)
                outs = [sum(c * v for c, v in zip(coeffs, xs))]
            else:
                outs = [np.prod(xs, axis=0) if p.operation == 0 else np.max(xs, axis=0)]
        elif kind == "Concat":
            p = layer.concat_param
            axis = p.concat_dim if p.HasField("concat_dim") and not p.HasField("axis") else p.axis
            outs = [np.concatenate(xs, axis=axis)]
        elif kind in ("Dropout", "Split"):
            outs = [x] * len(tops)
        elif kind == "LRN":
            p = layer.lrn_param
            size = p.local_size
            if p.norm_region == 0:
                pre = (size - 1) // 2
                sq = np.pad(x * x, ((0, 0), (pre, size - 1 - pre), (0, 0), (0, 0)))
                window = sum(sq[:, i:i + x.shape[1]] for i in range(size))
                outs = [x * (p.k + p.alpha / size * window) ** -p.beta]
            else:
                pad = (size - 1) // 2
                avg = _pool(x * x, 1, (size, size), (1, 1), (pad, pad))
                outs = [x * (1 + p.alpha * avg) ** -p.beta]
        elif kind == "Power":
            p = layer.power_param
            outs = [(p.shift + p.scale * x) ** p.power]
        elif kind == "Flatten":
            p = layer.flatten_param
            start, end = p.axis % x.ndim, p.end_axis % x.ndim
            outs = [x.reshape(list(x.shape[:start]) + [-1] + list(x.shape[end + 1:]))]
        elif kind == "Reshape":  # Caffe: shape replaces axes [axis, axis + num_axes); 0 copies, -1 infers
            p = layer.reshape_param
            start = p.axis if p.axis >= 0 else x.ndim + 1 + p.axis
            end = x.ndim if p.num_axes == -1 else start + p.num_axes
            middle = [x.shape[start + i] if d == 0 else d for i, d in enumerate(p.shape.dim)]
            outs = [x.reshape(list(x.shape[:start]) + middle + list(x.shape[end:]))]
        elif kind == "Slice":
            p = layer.slice_param
            axis = p.slice_dim if p.HasField("slice_dim") and not p.HasField("axis") else p.axis
            points = list(p.slice_point) or [x.shape[axis] // len(tops) * i for i in range(1, len(tops))]
            outs = np.split(x, points, axis=axis)
        elif kind == "Permute":
            order = list(layer.permute_param.order)
            outs = [x.transpose(order + [a for a in range(x.ndim) if a not in order])]
        elif kind in EXTRA_FORWARD:  # layer types other helpers add (helpers_caffe_ssd: the SSD fork)
            outs = EXTRA_FORWARD[kind](layer, xs, lambda make: weights.get(name, make), rng)
        elif kind in _ACTIVATIONS:
            outs = [_ACTIVATIONS[kind](x, layer)]
        elif kind == "Bias":
            p = layer.bias_param
            axis = p.axis % x.ndim
            if len(xs) == 2:
                b = xs[1]
            else:
                span = x.shape[axis:] if p.num_axes == -1 else x.shape[axis:axis + p.num_axes]
                b, = weights.get(name, lambda: [rng.standard_normal(span) * 0.5])
            outs = [x + _along(b, x.ndim, axis)]
        elif kind in _EXTRA_LAYERS:
            outs = _EXTRA_LAYERS[kind](xs, layer)
        else:
            raise ValueError(f"helpers_caffe: no numpy reference for layer type {kind!r} (layer {name!r})")
        for top, value in zip(tops, outs):
            blobs[top] = value
    return blobs


def net_inputs(net) -> dict:
    """Input blob name -> shape (Input layers, input + input_shape/input_dim)."""
    shapes = {}
    names = list(net.input)
    if names:
        if len(net.input_shape):
            shapes = {n: list(s.dim) for n, s in zip(names, net.input_shape)}
        else:
            dims = list(net.input_dim)
            step = len(dims) // len(names)
            shapes = {n: dims[i * step:(i + 1) * step] for i, n in enumerate(names)}
    for name, kind, bottoms, tops, layer in _layers(net):
        if kind == "Input":
            for i, top in enumerate(tops):
                shapes[top] = list(layer.input_param.shape[min(i, len(layer.input_param.shape) - 1)].dim)
    return shapes


def make_weights(net, seed: int, *, mean=IMAGE_MEAN, batch: int = 2) -> dict:
    """Blobs per layer with sensible scales (see the module docstring), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    weights = _Weights(rng=rng)
    forward(net, _calibration_inputs(net, seed, mean, batch), weights)
    return weights.blobs


def _calibration_inputs(net, seed: int, mean, batch: int) -> dict:
    """Image-like inputs (mean subtracted) for the pass that sets the BatchNorm statistics."""
    inputs = {}
    for i, (name, shape) in enumerate(net_inputs(net).items()):
        shape = [batch] + list(shape[1:])
        x = image_like(shape, seed + 1000 + i).astype(np.float64)
        if len(shape) == 4 and shape[1] == len(mean):
            x = x - np.asarray(mean).reshape(1, -1, 1, 1)
        inputs[name] = x
    return inputs


class _DampedWeights(_Weights):
    """_Weights whose named layers get every drawn blob multiplied by a gain."""

    def __init__(self, rng, gains: dict):
        super().__init__(rng=rng)
        self.gains = gains

    def get(self, name, make):
        gain = self.gains.get(name)
        if gain is not None and name not in self.blobs:
            draw = make
            make = lambda: [b * gain for b in draw()]  # noqa: E731
        return super().get(name, make)


def make_weights_damped(net, seed: int, *, branch_gain: float = 0.2,
                        branch_suffix: str = "_1x1_increase/bn/scale", mean=IMAGE_MEAN, batch: int = 2) -> dict:
    """``make_weights`` with the last Scale of every residual branch (the layers whose names end with
    ``branch_suffix``) multiplied by ``branch_gain``, while the pass runs, so the BatchNorm statistics
    downstream still fit. Why: a random deep residual net whose branches are as strong as its trunk
    is chaotic. With ``make_weights``, +-2 grey levels of input noise changed SE-ResNet-101's pooled
    features by ~50 % (correlation 0.78, as much as another image of the same kind), so any
    quantization noise changes its decisions. Trained ResNets have weak branches; small-initialised
    residual branches (zero-init-residual, SkipInit) are the usual way to get that at random. With a
    gain of 0.2 the same noise changes the pooled features by ~1 %."""
    rng = np.random.default_rng(seed)
    inputs = _calibration_inputs(net, seed, mean, batch)
    gains = {name: branch_gain for name, *_ in _layers(net) if name.endswith(branch_suffix)}
    if not gains:
        raise ValueError(f"helpers_caffe: no layer name ends with {branch_suffix!r}")
    weights = _DampedWeights(rng, gains)
    forward(net, inputs, weights)
    return weights.blobs


def reference(net, blobs: dict, inputs: dict) -> dict:
    """Every blob of the network for ``inputs`` (preprocessed already), with the given weights."""
    return forward(net, inputs, _Weights(given=blobs))


def assert_not_saturated(prob: np.ndarray, axis: int = -1) -> None:
    """A softmax output that proves something: top probability < 0.5, entropy well above 0."""
    prob = np.asarray(prob, dtype=np.float64)
    top = float(prob.max(axis=axis).max())
    entropy = float((-(prob * np.log(np.clip(prob, 1e-30, None))).sum(axis=axis)).min())
    assert top < 0.5, f"softmax saturated: top probability {top:.4f} (expected < 0.5)"
    assert entropy > 0.5, f"softmax nearly one-hot: entropy {entropy:.4f} nats (expected > 0.5)"


# -- caffemodel writing -----------------------------------------------------------------------------

def _fill_blob(message, array, *, legacy_shape=False, unpacked=False, double=False):
    array = np.asarray(array)
    if legacy_shape:
        dims = [1] * (4 - array.ndim) + list(array.shape)
        message.num, message.channels, message.height, message.width = dims
    else:
        message.shape.dim.extend(int(d) for d in array.shape)
    if double:
        message.double_data = np.ascontiguousarray(array, dtype="<f8").tobytes()
    elif not unpacked:
        message.data = np.ascontiguousarray(array, dtype="<f4").tobytes()


def _unpacked_floats(values) -> bytes:
    """BlobProto.data written unpacked: one fixed32 field (tag 5, wire type 5) per value."""
    tag = bytes([5 << 3 | 5])
    return b"".join(tag + np.float32(v).tobytes() for v in np.ravel(values))


def write_caffemodel(prototxt: Path, caffemodel: Path, cache_root: Path = None, seed: int = 0, *,
                     blobs: dict = None, legacy_shape: bool = False, unpacked: bool = False,
                     double: bool = False) -> Path:
    """Write a caffemodel with random, well-scaled weights for every parametrised layer of ``prototxt``
    (``blobs``: use these instead). The layers keep the prototxt's form (V2 ``layer`` or V1 ``layers``).
    ``cache_root`` is unused (kept for callers of the former MO-based helper)."""
    from omz_tools.convert.caffe.schema import schema
    net = parse_prototxt(Path(prototxt).read_text(encoding="utf-8"))
    if blobs is None:
        blobs = make_weights(net, seed)
    classes = schema()
    model = classes.NetParameter(name=net.name)
    v1 = not len(net.layer) and len(net.layers)
    for name, kind, bottoms, tops, layer in _layers(net):
        target = model.layers.add() if v1 else model.layer.add()
        target.name = name
        if v1:
            target.type = layer.type
        else:
            target.type = kind
        target.bottom.extend(bottoms)
        target.top.extend(tops)
        for array in blobs.get(name, []):
            _fill_blob(target.blobs.add(), array, legacy_shape=legacy_shape, unpacked=unpacked, double=double)
    data = model.SerializeToString()
    if unpacked:  # rebuild with unpacked data: parse back with the fallback schema is not needed
        data = _with_unpacked(model, blobs, v1)
    caffemodel = Path(caffemodel)
    caffemodel.parent.mkdir(parents=True, exist_ok=True)
    caffemodel.write_bytes(data)
    return caffemodel


def _with_unpacked(model, blobs, v1) -> bytes:
    pieces = [_field(1, model.name.encode())]
    for layer in (model.layers if v1 else model.layer):
        head = type(layer)(name=layer.name, type=layer.type, bottom=layer.bottom, top=layer.top).SerializeToString()
        body = b""
        for blob, array in zip(layer.blobs, blobs.get(layer.name, [])):
            body += _field(6 if v1 else 7, blob.SerializeToString() + _unpacked_floats(array))
        pieces.append(_field(2 if v1 else 100, head + body))
    return b"".join(pieces)


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

def conv_fc_gflops(prototxt_text: str, cache_root: Path = None) -> float:
    """2 x multiply-adds of the Convolution and InnerProduct layers (what ircheck estimates), batch 1."""
    net = parse_prototxt(prototxt_text)
    blobs = make_weights(net, 0, batch=1)
    inputs = {n: np.zeros([1] + list(s[1:])) for n, s in net_inputs(net).items()}
    values = reference(net, blobs, inputs)
    macs = 0
    for name, kind, bottoms, tops, layer in _layers(net):
        if kind == "Convolution":
            macs += int(np.prod(values[tops[0]].shape)) * int(np.prod(blobs[name][0].shape[1:]))
        elif kind == "InnerProduct":
            macs += int(np.prod(blobs[name][0].shape))
    return 2 * macs / 1e9


def register_se_resnet(files: Path, registry: Path, *, sources: dict = None,
                       accuracy_check: bool = False) -> Path:
    """The project's own se-resnet-101 model.yml, with the size and sha256 of the files in the folder
    ``files`` (the real prototxt and a generated caffemodel), written to registry/public/se-resnet-101/.
    ``sources``: file name -> URL in place of the upstream one; ``accuracy_check``: copy the model's
    accuracy-check.yml beside it. Returns the model.yml."""
    import shutil

    import yaml
    name = "se-resnet-101"
    builtin = Path(__file__).resolve().parent.parent / "models" / "public" / name
    entry = yaml.safe_load((builtin / "model.yml").read_text())
    for file in entry["files"]:
        file["size"], file["sha256"] = file_digest(Path(files) / file["name"])
        if sources:
            file["source"] = sources[file["name"]]
    folder = Path(registry) / "public" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.yml").write_text(yaml.safe_dump(entry, sort_keys=False))
    if accuracy_check:
        shutil.copyfile(builtin / "accuracy-check.yml", folder / "accuracy-check.yml")
    return folder / "model.yml"


def write_model_yml(registry: Path, name: str, files: list, *, input_shape: list, outputs: dict,
                    mean: bool = True, card_extra: str = "", extra_mo_args: list = (),
                    top_extra: str = "") -> Path:
    """A caffe model entry like se-resnet-101's. ``files``: (file name, size, sha256, url)."""
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
    from conftest import write_registry_files
    write_registry_files(registry, {f"public/{name}": (
        f"description: test model {name}\ntask_type: classification\nfiles:\n{file_lines}"
        f"model_optimizer_args:\n{arg_lines}framework: caffe\nlicense: https://example.com/license\n{top_extra}"
        f"model_card:\n  inputs:\n    - name: data\n      shape: {input_shape}\n"
        f"  outputs:\n{out_lines}{card_extra}")})
    return registry / "public" / name / "model.yml"


def make_weights_for_inputs(net, seed: int, inputs: dict, *, gains: dict = None, classifier_std: float = 2.0) -> tuple:
    """(blobs per layer, every blob's value) with sensible scales for these inputs (already preprocessed as
    the converter will, e.g. with MO's mean and scale values), the named layers' blobs multiplied by
    ``gains`` while the pass runs (see ``make_weights_damped``)."""
    rng = np.random.default_rng(seed)
    weights = _DampedWeights(rng, gains or {})
    values = forward(net, {k: np.asarray(v, np.float64) for k, v in inputs.items()}, weights,
                     classifier_std=classifier_std)
    return weights.blobs, values
