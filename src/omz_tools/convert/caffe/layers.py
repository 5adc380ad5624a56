"""One translator per Caffe layer type: ``TRANSLATORS[type](ctx, layer, inputs) -> outputs``.

``inputs`` are the OpenVINO outputs feeding the layer's bottoms, in order; a translator returns one
output per top. Semantics follow Caffe (and Model Optimizer's reading of it, the oracle the tests
compare against). Weights are checked against the shapes the layer's parameters imply.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .opset import ops
from .strides import conv_strides
from .translate_base import (  # noqa: F401 - build.py and fold.py import some of these from here
    Context, _apply_affine, _dilation, _spatial, as_output, batchnorm_affine, blob_at_axis, bottom_at_axis,
    chain_affine, const, is_channel_affine, shape_of,
)


# -- translators ------------------------------------------------------------------------------------

def convolution(ctx, layer, inputs):
    x, = inputs
    n, c = shape_of(x)[:2]
    p = layer.proto.convolution_param
    if p.axis not in (1, -3) or len(shape_of(x)) != 4:
        raise ctx.fail(layer, f"expected a 4-D input with channels on axis 1, found shape {shape_of(x)}, axis {p.axis}")
    kernel = _spatial(p, "kernel_size", "kernel_h", "kernel_w", 1)
    stride = conv_strides(layer)  # the prototxt's, or as strides.optimize_strides moved them
    pad = _spatial(p, "pad", "pad_h", "pad_w", 0)
    dilation = _dilation(p)
    group, out = int(p.group or 1), int(p.num_output)
    if c % group or out % group:
        raise ctx.fail(layer, f"group {group} does not divide the {c} input and {out} output channels")
    weights = ctx.blob(layer, 0, [out, c // group] + kernel, "the weights").astype(np.float32, copy=False)
    bias = ctx.blob(layer, 1, [out], "the bias").astype(np.float64) if p.bias_term else None
    chain = getattr(layer, "fold_chain", None)
    if chain:  # following BatchNorm/Scale layers: y = a * conv(x) + b
        a, b = chain_affine(ctx, chain, out)
        weights = (weights.astype(np.float64) * a.reshape(-1, 1, 1, 1)).astype(np.float32)
        bias = (bias * a if bias is not None else 0) + b
    if group == 1:
        y = ops.convolution(x, const(weights), stride, pad, pad, dilation)
    else:
        grouped = weights.reshape([group, out // group, c // group] + kernel)
        y = ops.group_convolution(x, const(grouped), stride, pad, pad, dilation)
    if bias is not None:
        y = ops.add(y, const(bias.reshape(1, out, 1, 1)))
    return [y]


def deconvolution(ctx, layer, inputs):
    x, = inputs
    n, c = shape_of(x)[:2]
    p = layer.proto.convolution_param
    kernel = _spatial(p, "kernel_size", "kernel_h", "kernel_w", 1)
    stride = _spatial(p, "stride", "stride_h", "stride_w", 1)
    pad = _spatial(p, "pad", "pad_h", "pad_w", 0)
    dilation = _dilation(p)
    group, out = int(p.group or 1), int(p.num_output)
    if c % group or out % group:
        raise ctx.fail(layer, f"group {group} does not divide the {c} input and {out} output channels")
    # Caffe stores deconvolution weights as [C_in, C_out / group, kh, kw].
    weights = ctx.blob(layer, 0, [c, out // group] + kernel, "the weights")
    if group == 1:
        y = ops.convolution_backprop_data(x, const(weights), strides=stride, pads_begin=pad, pads_end=pad,
                                          dilations=dilation)
    else:
        grouped = weights.reshape([group, c // group, out // group] + kernel)
        y = ops.group_convolution_backprop_data(x, const(grouped), strides=stride, pads_begin=pad, pads_end=pad,
                                                dilations=dilation)
    if p.bias_term:
        y = ops.add(y, const(ctx.blob(layer, 1, [out], "the bias").reshape(1, out, 1, 1)))
    return [y]


def inner_product(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.inner_product_param
    dims = shape_of(x)
    axis = ctx.axis(layer, p.axis, len(dims))
    features = int(np.prod(dims[axis:], dtype=np.int64))
    out = int(p.num_output)
    if len(dims) != axis + 1:
        x = ops.reshape(x, const([0] * axis + [-1], np.int64), special_zero=True)
    shape = [features, out] if p.transpose else [out, features]
    weights = ctx.blob(layer, 0, shape, "the weights").astype(np.float32, copy=False)
    bias = ctx.blob(layer, 1, [out], "the bias").astype(np.float64) if p.bias_term else None
    chain = getattr(layer, "fold_chain", None)
    if chain:
        a, b = chain_affine(ctx, chain, out)
        scale = a.reshape(1, -1) if p.transpose else a.reshape(-1, 1)
        weights = (weights.astype(np.float64) * scale).astype(np.float32)
        bias = (bias * a if bias is not None else 0) + b
    y = ops.matmul(x, const(weights), False, not p.transpose)
    if bias is not None:
        y = ops.add(y, const(bias.reshape(1, out)))
    return [y]


def batch_norm(ctx, layer, inputs):
    x, = inputs
    a, b = batchnorm_affine(ctx, layer, shape_of(x)[1])
    return [_apply_affine(x, a, b)]


def channel_affine(ctx, layer, inputs):
    """BatchNorm/Scale layers merged by the folding pass where no convolution precedes them."""
    x, = inputs
    a, b = chain_affine(ctx, layer.fold_chain, shape_of(x)[1])
    return [_apply_affine(x, a, b)]


def scale(ctx, layer, inputs):
    p = layer.proto.scale_param
    x = inputs[0]
    dims = shape_of(x)
    axis = ctx.axis(layer, p.axis, len(dims))
    if len(inputs) == 2:
        span = shape_of(inputs[1])
        y = ops.multiply(x, bottom_at_axis(ctx, layer, inputs[1], dims, axis, "the scale",
                                                ones_broadcast=True))
        bias_index = 0
    else:
        span = dims[axis:] if p.num_axes == -1 else dims[axis:axis + p.num_axes]
        y = ops.multiply(x, blob_at_axis(ctx, layer, 0, span, len(dims), axis, "the scale"))
        bias_index = 1
    if p.bias_term:
        y = ops.add(y, blob_at_axis(ctx, layer, bias_index, span, len(dims), axis, "the bias"))
    return [y]


def relu(ctx, layer, inputs):
    x, = inputs
    slope = float(layer.proto.relu_param.negative_slope) if layer.proto.HasField("relu_param") else 0.0
    if slope == 0:
        return [ops.relu(x)]
    return [ops.prelu(x, const([slope]))]


def prelu(ctx, layer, inputs):
    x, = inputs
    channels = shape_of(x)[1]
    shared = layer.proto.prelu_param.channel_shared
    slope = ctx.blob(layer, 0, [1] if shared else [channels], "the slopes")
    return [ops.prelu(x, const(slope))]


def pooling(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.pooling_param
    dims = shape_of(x)
    if p.pool not in (0, 1):
        raise ctx.fail(layer, "expected pool MAX or AVE, found STOCHASTIC (a training-time method)")
    if p.global_pooling:
        axes = const(list(range(2, len(dims))), np.int64)
        return [ops.reduce_max(x, axes, True) if p.pool == 0 else ops.reduce_mean(x, axes, True)]
    kernel = _spatial(p, "kernel_size", "kernel_h", "kernel_w", 1)
    stride = _spatial(p, "stride", "stride_h", "stride_w", 1)
    pad = _spatial(p, "pad", "pad_h", "pad_w", 0)
    floor = (p.HasField("ceil_mode") and not p.ceil_mode) or p.round_mode == 1
    rounding = "floor" if floor else "ceil"
    if p.pool == 0:
        y = ops.max_pool(x, stride, [1, 1], pad, pad, kernel, rounding, "explicit").output(0)
    else:
        y = ops.avg_pool(x, stride, pad, pad, kernel, False, rounding, "explicit")
    return [y]


def softmax(ctx, layer, inputs):
    x, = inputs
    axis = layer.proto.softmax_param.axis if layer.proto.HasField("softmax_param") else 1
    return [ops.softmax(x, ctx.axis(layer, axis, len(shape_of(x))))]


def eltwise(ctx, layer, inputs):
    p = layer.proto.eltwise_param
    if p.operation == 1:  # SUM (coefficients for any number of bottoms, as Caffe; MO 2024.6 drops them past two)
        coeffs = list(p.coeff) or [1.0] * len(inputs)
        if len(coeffs) != len(inputs):
            raise ctx.fail(layer, f"expected one coeff per bottom ({len(inputs)}), found {len(coeffs)}")
        terms = [x if c == 1 else ops.multiply(x, const([c])) for x, c in zip(inputs, coeffs)]
        y = terms[0]
        for term in terms[1:]:
            y = ops.add(y, term)
        return [y]
    combine = ops.multiply if p.operation == 0 else ops.maximum
    y = inputs[0]
    for x in inputs[1:]:
        y = combine(y, x)
    return [y]


def concat(ctx, layer, inputs):
    p = layer.proto.concat_param
    axis = p.concat_dim if p.HasField("concat_dim") and not p.HasField("axis") else p.axis
    if len(inputs) == 1:  # an identity, as Model Optimizer makes it (its top names its bottom's tensor)
        return [inputs[0]]
    return [ops.concat(list(inputs), int(axis))]


def identity(ctx, layer, inputs):
    return [inputs[0]] * len(layer.tops)


def lrn(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.lrn_param
    if p.norm_region == 0:  # ACROSS_CHANNELS: x / (k + alpha / n * sum x^2) ^ beta
        return [ops.lrn(x, const([1], np.int64), float(p.alpha), float(p.beta), float(p.k), int(p.local_size))]
    # WITHIN_CHANNEL: Caffe computes x * (1 + alpha * mean of x^2 over local_size^2) ^ -beta (k unused)
    return [ops.lrn(x, const([2, 3], np.int64), float(p.alpha), float(p.beta), 1.0, int(p.local_size))]


def power(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.power_param
    y = x
    if p.scale != 1:
        y = ops.multiply(y, const([p.scale]))
    if p.shift != 0:
        y = ops.add(y, const([p.shift]))
    if p.power != 1:
        y = ops.power(y, const([p.power]))
    return [y]


def sigmoid(ctx, layer, inputs):
    return [ops.sigmoid(inputs[0])]


def tanh(ctx, layer, inputs):
    return [ops.tanh(inputs[0])]


def flatten(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.flatten_param
    dims = shape_of(x)
    start, end = ctx.axis(layer, p.axis, len(dims)), ctx.axis(layer, p.end_axis, len(dims), "end_axis")
    shape = dims[:start] + [int(np.prod(dims[start:end + 1], dtype=np.int64))] + dims[end + 1:]
    return [ops.reshape(x, const(shape, np.int64), False)]


def reshape(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.reshape_param
    dims = shape_of(x)
    axis = p.axis % (len(dims) + 1) if p.axis < 0 else p.axis
    end = len(dims) if p.num_axes == -1 else axis + p.num_axes
    if p.axis < 0:  # Caffe: axis -1 means after the last axis
        axis = len(dims) + 1 + p.axis
        end = len(dims) if p.num_axes == -1 else axis + p.num_axes
    middle = [int(d) for d in p.shape.dim]
    replaced = dims[axis:end]
    for i, d in enumerate(middle):
        if d == 0:
            if i >= len(replaced):
                raise ctx.fail(layer, f"shape dim {i} is 0 (copy) but the input {dims} has no such axis")
            middle[i] = replaced[i]
    if middle.count(-1) > 1:
        raise ctx.fail(layer, f"expected at most one -1 in the shape, found {middle}")
    if -1 in middle:
        known = int(np.prod([d for d in middle if d != -1], dtype=np.int64))
        middle[middle.index(-1)] = int(np.prod(replaced, dtype=np.int64)) // max(known, 1)
    shape = dims[:axis] + middle + dims[end:]
    if int(np.prod(shape, dtype=np.int64)) != int(np.prod(dims, dtype=np.int64)):
        raise ctx.fail(layer, f"cannot reshape {dims} to {shape}")
    return [ops.reshape(x, const(shape, np.int64), False)]


def slice_layer(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.slice_param
    axis = p.slice_dim if p.HasField("slice_dim") and not p.HasField("axis") else p.axis
    dims = shape_of(x)
    axis = ctx.axis(layer, axis, len(dims))
    size = dims[axis]
    points = [int(v) for v in p.slice_point]
    if points:
        if len(points) != len(layer.tops) - 1:
            raise ctx.fail(layer, f"expected {len(layer.tops) - 1} slice points for {len(layer.tops)} tops, "
                                  f"found {len(points)}")
        bounds = [0] + points + [size]
        lengths = [b - a for a, b in zip(bounds, bounds[1:])]
    else:
        if size % len(layer.tops):
            raise ctx.fail(layer, f"cannot split axis {axis} of size {size} into {len(layer.tops)} equal parts")
        lengths = [size // len(layer.tops)] * len(layer.tops)
    split = ops.variadic_split(x, const(axis, np.int64), const(lengths, np.int64))
    return [split.output(i) for i in range(len(lengths))]


def permute(ctx, layer, inputs):
    x, = inputs
    rank = len(shape_of(x))
    order = [int(v) for v in layer.proto.permute_param.order]
    order += [axis for axis in range(rank) if axis not in order]
    return [ops.transpose(x, const(order, np.int64))]


def axpy(ctx, layer, inputs):
    a, x, y = inputs  # the SENet layer: a * x + y, a per channel ([N, C, 1, 1])
    return [ops.add(ops.multiply(x, a), y)]


TRANSLATORS: Dict[str, Callable] = {
    "Convolution": convolution, "Deconvolution": deconvolution, "InnerProduct": inner_product,
    "BatchNorm": batch_norm, "Scale": scale, "ReLU": relu, "PReLU": prelu, "Pooling": pooling,
    "Softmax": softmax, "Eltwise": eltwise, "Concat": concat, "Dropout": identity, "Split": identity,
    "LRN": lrn, "Power": power, "Sigmoid": sigmoid, "TanH": tanh, "Flatten": flatten, "Reshape": reshape,
    "Slice": slice_layer, "Permute": permute, "Axpy": axpy,
}
from .layers_ssd import TRANSLATORS as _SSD_TRANSLATORS  # noqa: E402  (the SSD fork's layers)
TRANSLATORS.update(_SSD_TRANSLATORS)
from .layers_extra import TRANSLATORS as _EXTRA_TRANSLATORS  # noqa: E402  (more element-wise activations)
TRANSLATORS.update(_EXTRA_TRANSLATORS)
INTERNAL = {"ChannelAffine": channel_affine}  # produced by the folding pass only
SUPPORTED_LAYER_TYPES = frozenset(TRANSLATORS) | {"Input"}
