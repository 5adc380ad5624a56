"""Caffe layers beyond layers.py's, one translator each, merged into ``layers.TRANSLATORS``.

Semantics are Caffe's; Model Optimizer's Caffe extractors agree where it has one:
ReLU6 min(max(x, 0), 6) (MO's Clamp); ELU x for x > 0 else alpha * (exp(x) - 1); AbsVal |x|; BNLL
log(1 + exp(x)) (SoftPlus); Exp base^(shift + scale x) and Log log_base(shift + scale x) (base -1: e);
Bias x + b over ``num_axes`` axes from ``axis``, b a blob or the second bottom (MO reads only the blob
and ignores ``num_axes``); Tile ``tiles`` copies along ``axis``; Reduction SUM/ASUM/SUMSQ/MEAN over
every axis from ``axis`` on, times ``coeff``; ShuffleChannel (ShuffleChannels, axis 1); Crop to the
second bottom's shape from ``axis`` on, at ``offset`` (one for all axes or one per axis); ArgMax
(TopK; along ``axis``, or over each item's flattened values as [N, 1 or 2, top_k] with the indices,
then the values where ``out_max_val``; the k largest in order of value, as Caffe: MO 2024.6 orders
them by index and drops the values); Interp (bilinear,
corners aligned, Caffe's output size rules; MO's Interpolate). Model Optimizer 2024.6 has no
extractor for AbsVal, BNLL, Exp, Log and Reduction (it calls them custom layers): the numpy
reference is their oracle.
"""

from __future__ import annotations

import math
from typing import Callable, Dict

import numpy as np

from .opset import ops
from .translate_base import blob_at_axis, bottom_at_axis, const, shape_of


def relu6(ctx, layer, inputs):
    return [ops.clamp(inputs[0], 0.0, 6.0)]


def elu(ctx, layer, inputs):
    alpha = float(layer.proto.elu_param.alpha) if layer.proto.HasField("elu_param") else 1.0
    return [ops.elu(inputs[0], alpha)]


def abs_val(ctx, layer, inputs):
    return [ops.abs(inputs[0])]


def bnll(ctx, layer, inputs):
    return [ops.softplus(inputs[0])]


def _affine_in(x, scale: float, shift: float):
    y = x if scale == 1 else ops.multiply(x, const([scale]))
    return y if shift == 0 else ops.add(y, const([shift]))


def exp(ctx, layer, inputs):
    p = layer.proto.exp_param
    if p.base != -1 and p.base <= 0:
        raise ctx.fail(layer, f"expected a positive base (or -1 for e), found {p.base}")
    ln_base = 1.0 if p.base == -1 else math.log(p.base)
    return [ops.exp(_affine_in(inputs[0], float(p.scale) * ln_base, float(p.shift) * ln_base))]


def log(ctx, layer, inputs):
    p = layer.proto.log_param
    if p.base != -1 and (p.base <= 0 or p.base == 1):
        raise ctx.fail(layer, f"expected a positive base other than 1 (or -1 for e), found {p.base}")
    y = ops.log(_affine_in(inputs[0], float(p.scale), float(p.shift)))
    return [y if p.base == -1 else ops.multiply(y, const([1.0 / math.log(p.base)]))]


def bias(ctx, layer, inputs):
    p = layer.proto.bias_param
    x = inputs[0]
    dims = shape_of(x)
    axis = ctx.axis(layer, p.axis, len(dims))
    if len(inputs) == 2:
        return [ops.add(x, bottom_at_axis(ctx, layer, inputs[1], dims, axis, "the bias"))]
    span = dims[axis:] if p.num_axes == -1 else dims[axis:axis + p.num_axes]
    return [ops.add(x, blob_at_axis(ctx, layer, 0, span, len(dims), axis, "the bias"))]


def tile(ctx, layer, inputs):
    p = layer.proto.tile_param
    dims = shape_of(inputs[0])
    if p.tiles < 1:
        raise ctx.fail(layer, f"expected tiles >= 1, found {p.tiles}")
    repeats = [1] * len(dims)
    repeats[ctx.axis(layer, p.axis, len(dims))] = int(p.tiles)
    return [ops.tile(inputs[0], const(repeats, np.int64))]


def reduction(ctx, layer, inputs):
    p = layer.proto.reduction_param
    x = inputs[0]
    dims = shape_of(x)
    axis = ctx.axis(layer, p.axis, len(dims))
    axes = const(list(range(axis, len(dims))), np.int64)
    if p.operation == 2:
        x = ops.abs(x)
    elif p.operation == 3:
        x = ops.multiply(x, x)
    y = ops.reduce_mean(x, axes, False) if p.operation == 4 else ops.reduce_sum(x, axes, False)
    return [y if p.coeff == 1 else ops.multiply(y, const(float(p.coeff)))]


def shuffle_channel(ctx, layer, inputs):
    group = int(layer.proto.shuffle_channel_param.group)
    channels = shape_of(inputs[0])[1]
    if group < 1 or channels % group:
        raise ctx.fail(layer, f"group {group} does not divide the {channels} channels")
    return [ops.shuffle_channels(inputs[0], 1, group)]


def crop(ctx, layer, inputs):
    if len(inputs) != 2:
        raise ctx.fail(layer, f"expected two bottoms (the input and the shape to crop to), found {len(inputs)}")
    p = layer.proto.crop_param
    dims, ref = shape_of(inputs[0]), shape_of(inputs[1])
    axis = ctx.axis(layer, p.axis, len(dims))
    offsets = [int(v) for v in p.offset]
    count = len(dims) - axis
    if len(offsets) not in (0, 1, count):
        raise ctx.fail(layer, f"expected 0, 1 or {count} offsets, found {len(offsets)}")
    offsets = offsets * count if len(offsets) == 1 else offsets or [0] * count
    axes = list(range(axis, len(dims)))
    for a, off in zip(axes, offsets):
        if off + ref[a] > dims[a]:
            raise ctx.fail(layer, f"axis {a}: offset {off} + size {ref[a]} exceeds the input's {dims[a]}")
    stop = [off + ref[a] for a, off in zip(axes, offsets)]
    return [ops.slice(inputs[0], const(offsets, np.int64), const(stop, np.int64), const([1] * count, np.int64),
                      const(axes, np.int64))]


def argmax(ctx, layer, inputs):
    p = layer.proto.argmax_param
    x = inputs[0]
    dims = shape_of(x)
    if p.HasField("axis"):
        axis = ctx.axis(layer, p.axis, len(dims))
        top = ops.topk(x, ops.constant(np.int64(p.top_k)), axis, "max", "value", "i32")
        return [top.output(0) if p.out_max_val else ops.convert(top.output(1), "f32")]
    flat = ops.reshape(x, const([dims[0], 1, -1], np.int64), False)
    top = ops.topk(flat, ops.constant(np.int64(p.top_k)), 2, "max", "value", "i32")
    index = ops.convert(top.output(1), "f32")
    return [ops.concat([index, top.output(0)], 1) if p.out_max_val else index]


def _interp_size(ctx, layer, dims, inputs):
    """Caffe's (PSPNet/DeepLab) rules, in its order; MO 2024.6 zooms to h * zoom_factor instead, and
    says in its own code that deeplab-caffe's rule is h + (h - 1) * (zoom_factor - 1)."""
    p = layer.proto.interp_param
    if p.pad_beg or p.pad_end:
        raise ctx.fail(layer, f"pad_beg {p.pad_beg} / pad_end {p.pad_end}: only 0 is supported")
    if p.shrink_factor < 1 or p.zoom_factor < 1:
        raise ctx.fail(layer, "expected shrink_factor and zoom_factor >= 1")
    shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
    h, w = dims[2], dims[3]
    if shrink:
        h, w = (h - 1) // p.shrink_factor + 1, (w - 1) // p.shrink_factor + 1
    if zoom:
        h, w = h + (h - 1) * (p.zoom_factor - 1), w + (w - 1) * (p.zoom_factor - 1)
    sized = p.HasField("height") and p.HasField("width")
    if shrink != zoom or (shrink and zoom and not sized):
        return [h, w]
    if sized:
        return [int(p.height), int(p.width)]
    if shrink and zoom:
        return [h, w]
    if len(inputs) == 2:
        return shape_of(inputs[1])[2:4]
    raise ctx.fail(layer, "expected zoom_factor, shrink_factor, height and width, or a second bottom")


def interp(ctx, layer, inputs):
    dims = shape_of(inputs[0])
    size = _interp_size(ctx, layer, dims, inputs)
    return [ops.interpolate(inputs[0], const(size, np.int64), "linear", "sizes",
                            coordinate_transformation_mode="align_corners", axes=const([2, 3], np.int64))]


TRANSLATORS: Dict[str, Callable] = {
    "ReLU6": relu6, "ELU": elu, "AbsVal": abs_val, "BNLL": bnll, "Exp": exp, "Log": log, "Bias": bias,
    "Tile": tile, "Reduction": reduction, "ShuffleChannel": shuffle_channel, "Crop": crop, "ArgMax": argmax,
    "Interp": interp,
}
