"""What the translators share: the weight checks and constant naming (``Context``), constants and
shapes, parameter reading, and the per-channel affine (BatchNorm, Scale) that the folding pass and
the translators both build."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np

from .errors import CaffeConversionError
from .opset import ops


class Context:
    """What a translator may use besides its layer: the weight checks and constant naming."""

    def __init__(self, model_path: str):
        self.model_path = model_path

    def fail(self, layer, what: str) -> CaffeConversionError:
        return CaffeConversionError(f"layer \"{layer.name}\" ({layer.type}): {what}")

    def axis(self, layer, axis: int, rank: int, what: str = "axis") -> int:
        """Caffe's CanonicalAxisIndex: ``axis`` in [-rank, rank) counted from the end when negative; any
        other value (or a 0-d blob, which has no axis) is the layer's error, not a silent wrap."""
        if not -rank <= int(axis) < rank:
            raise self.fail(layer, f"{what} {axis} is out of range for its {rank}-D input (expected "
                                   f"{-rank} to {rank - 1})" if rank else f"{what} {axis} on a 0-D input")
        return int(axis) % rank

    def blob(self, layer, index: int, shape: Sequence[int], what: str) -> np.ndarray:
        """Blob ``index`` of ``layer`` reshaped to ``shape``, or a clear error if absent or the wrong size."""
        shape = [int(d) for d in shape]
        if len(layer.blobs) <= index:
            raise self.fail(layer, f"expected {what} (blob {index}, shape {shape}) in the caffemodel "
                                   f"{self.model_path or '(none given)'}, found {len(layer.blobs)} blob(s); the "
                                   "caffemodel does not belong to this prototxt or lacks this layer")
        array = layer.blobs[index]
        if array.size != int(np.prod(shape, dtype=np.int64)):
            raise self.fail(layer, f"{what} (blob {index}) has shape {list(array.shape)} ({array.size} values), "
                                   f"expected {shape} ({int(np.prod(shape, dtype=np.int64))} values) from the "
                                   "layer's parameters and input shape; the caffemodel does not match the prototxt")
        return array.reshape(shape)


def const(array, dtype=np.float32):
    return ops.constant(np.ascontiguousarray(np.asarray(array, dtype=dtype)))


def as_output(value):
    """An op's first output; opset functions return nodes, graphs are wired with outputs."""
    return value if hasattr(value, "get_partial_shape") else value.output(0)


def shape_of(output) -> List[int]:
    partial = as_output(output).get_partial_shape()
    if not partial.is_static:
        raise CaffeConversionError(f"expected static shapes, found {partial}")
    return [int(d) for d in partial.to_shape()]


def channel_shape(values: np.ndarray, rank: int, axis: int = 1) -> np.ndarray:
    """A blob shaped to broadcast along ``axis`` of a rank-``rank`` tensor (trailing ones)."""
    values = np.asarray(values)
    return values.reshape(list(values.shape) + [1] * max(0, rank - axis - values.ndim))


def blob_at_axis(ctx: Context, layer, index: int, span: List[int], rank: int, axis: int, what: str):
    """Scale's and Bias's parameter blob ``index`` (shape ``span``, from ``axis``) as a constant that
    broadcasts against a rank-``rank`` input."""
    return const(channel_shape(ctx.blob(layer, index, span, what), rank, axis))


def bottom_at_axis(ctx, layer, operand, dims: List[int], axis: int, what: str, ones_broadcast: bool = False):
    """Scale's and Bias's second bottom (the input's axes from ``axis``) with trailing ones to broadcast.

    Caffe requires its shape to equal those axes of the input (``dims``). With ``ones_broadcast``
    a 1 also matches any size, as Model Optimizer reads Scale (SE blocks' [N, C, 1, 1] gates at
    axis 0). Any other shape is refused here: broadcasting would accept some (a [1, 8] bottom at
    axis 2 of [1, 8, 8, 8]) and compute what the model never meant."""
    bdims = shape_of(operand)
    span = dims[axis:axis + len(bdims)]
    if len(span) != len(bdims) or any(b != d and not (ones_broadcast and b == 1) for b, d in zip(bdims, span)):
        rule = "equal them or be 1" if ones_broadcast else "equal them"
        raise ctx.fail(layer, f"{what} bottom's shape {bdims} does not match the input's axes {axis}.."
                              f"{axis + len(bdims) - 1} of {dims} (its sizes must {rule})")
    if len(dims) - axis - len(bdims) > 0:
        return ops.reshape(operand, const(bdims + [1] * (len(dims) - axis - len(bdims)), np.int64), False)
    return operand


def _spatial(param, many: str, one_h: str, one_w: str, default: int) -> List[int]:
    """(h, w) of a Caffe conv/pool attribute given as ``x_h``/``x_w`` or as ``x`` (one value or two)."""
    if param.HasField(one_h) or param.HasField(one_w):
        return [int(getattr(param, one_h)), int(getattr(param, one_w))]
    values = getattr(param, many)
    if isinstance(values, int):  # pooling's scalar fields
        return [int(values)] * 2 if param.HasField(many) or values else [default] * 2
    values = [int(v) for v in values]
    if not values:
        return [default] * 2
    return values[:2] if len(values) >= 2 else values * 2


def _dilation(param) -> List[int]:
    values = [int(v) for v in param.dilation] or [1]
    return values[:2] if len(values) >= 2 else values * 2


# -- per-channel affine (BatchNorm, Scale) used by the folding pass and the translators --------------

def batchnorm_affine(ctx: Context, layer, channels: int):
    """(a, b) with BatchNorm(x) = a * x + b per channel, from mean, variance and the scale factor."""
    param = layer.proto.batch_norm_param
    mean = ctx.blob(layer, 0, [channels], "the mean").astype(np.float64)
    variance = ctx.blob(layer, 1, [channels], "the variance").astype(np.float64)
    factor = float(ctx.blob(layer, 2, [1], "the moving-average factor")[0]) if len(layer.blobs) > 2 else 1.0
    factor = 0.0 if factor == 0 else 1.0 / factor  # Caffe divides both statistics by the third blob
    a = 1.0 / np.sqrt(variance * factor + float(param.eps))
    return a, -mean * factor * a


def scale_affine(ctx: Context, layer, channels: int):
    param = layer.proto.scale_param
    a = ctx.blob(layer, 0, [channels], "the scale").astype(np.float64)
    b = ctx.blob(layer, 1, [channels], "the bias").astype(np.float64) if param.bias_term else np.zeros(channels)
    return a, b


def is_channel_affine(layer) -> bool:
    """Whether the layer is a per-channel a * x + b (foldable into a preceding convolution)."""
    if layer.type == "BatchNorm":
        return len(layer.inputs) == 1
    if layer.type == "Scale":
        p = layer.proto.scale_param
        return len(layer.inputs) == 1 and p.axis in (1, -3) and p.num_axes == 1 and \
            bool(layer.blobs) and layer.blobs[0].size == layer.blobs[0].shape[-1]
    return False


def chain_affine(ctx: Context, chain, channels: int):
    """(a, b) of a run of per-channel BatchNorm/Scale layers applied in order."""
    a, b = np.ones(channels), np.zeros(channels)
    for layer in chain:
        na, nb = batchnorm_affine(ctx, layer, channels) if layer.type == "BatchNorm" else \
            scale_affine(ctx, layer, channels)
        a, b = na * a, na * b + nb
    return a, b


def _apply_affine(x, a, b):
    rank = len(shape_of(x))
    out = x
    if not np.all(a == 1):
        out = ops.multiply(out, const(channel_shape(a, rank)[None]))
    if b is not None and np.any(b != 0):
        out = ops.add(out, const(channel_shape(b, rank)[None]))
    return out
