"""Moving the stride of 1x1 convolutions up the graph, as Model Optimizer's ResNet optimization does.

A 1x1 convolution with stride s and no padding reads every s-th pixel of its input: it equals the
same convolution with stride 1 applied to the input subsampled by s. When every reader of a blob
subsamples it by the same s, the subsampling moves to the blob's producer: a per-pixel layer (ReLU,
Eltwise, Dropout, Split) then works on subsampled inputs, and a convolution takes s into its own
stride (stride t then subsampling by s is stride t * s, with Caffe's floor rounding). Where the
subsampling cannot move further, a MaxPool with a 1x1 kernel and stride s (floor rounding) does it
on that edge. Nothing is computed differently, only less: in a ResNet stage's last block the sum
and its ReLU run on a quarter of the pixels.

The layers the subsampling moves through are Model Optimizer's (``resnet_optimization.py``: ReLU,
Add, Mul, Maximum, Convolution; Dropout and Split are gone by then), so the IR has the shapes of
Model Optimizer's and the same GFLOPs (which the model card's figure comes from). Axpy is
Model Optimizer's ScaleShift(x, a) then Add(., y): the sum moves the subsampling to ``y``, the
product is subsampled in place (here on ``x``, before the per-channel multiply: the same values).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Set, Tuple

from .reader import Net, Version
from .translate_base import _spatial

Stride = Tuple[int, int]

PASS_THROUGH = ("ReLU", "Eltwise", "Dropout", "Split")


def conv_strides(layer) -> List[int]:
    """The convolution's (h, w) stride: as the pass left it, else the prototxt's."""
    strides = getattr(layer, "strides", None)
    if strides is not None:
        return list(strides)
    return _spatial(layer.proto.convolution_param, "stride", "stride_h", "stride_w", 1)


def _pointwise_1x1(layer) -> bool:
    """A convolution whose stride is a plain subsampling of its input (1x1 kernel, no padding)."""
    p = layer.proto.convolution_param
    return (layer.type == "Convolution" and len(layer.inputs) == 1
            and _spatial(p, "kernel_size", "kernel_h", "kernel_w", 1) == [1, 1]
            and _spatial(p, "pad", "pad_h", "pad_w", 0) == [0, 0])


def _offered(layer, index: int) -> Optional[Stride]:
    """The subsampling a strided 1x1 convolution would drop if its input came subsampled."""
    if index != 0 or not _pointwise_1x1(layer):
        return None
    strides = tuple(conv_strides(layer))
    return strides if strides != (1, 1) else None


def _passes(layer) -> bool:
    if layer.type == "ReLU":
        return not (layer.proto.HasField("relu_param") and layer.proto.relu_param.negative_slope)
    return layer.type in PASS_THROUGH or (layer.type == "Convolution" and len(layer.inputs) == 1) or \
        (layer.type == "Axpy" and len(layer.inputs) == 3)


def optimize_strides(net: Net, keep: Iterable[Version]) -> None:
    """Sets ``layer.strides`` on convolutions whose stride changes and ``layer.subsample``
    (input index -> stride) where a 1x1 MaxPool goes; read by the translators and the builder."""
    keep: Set[Version] = set(keep)
    readers: Dict[Version, list] = {}
    for layer in net.layers:
        layer.subsample = {}
        for index, version in enumerate(layer.inputs):
            readers.setdefault(version, []).append((layer, index))
    demand: Dict[Tuple[int, int], Stride] = {}  # (id(reader), input index) -> subsampling it needs
    for layer in reversed(net.layers):
        edges = [edge for version in layer.outputs for edge in readers.get(version, [])]
        wanted = [demand.get((id(reader), index)) or _offered(reader, index) for reader, index in edges]
        if (not edges or any(v in keep for v in layer.outputs) or wanted[0] is None
                or any(w != wanted[0] for w in wanted) or not _passes(layer)):
            continue
        stride = wanted[0]
        for reader, index in edges:
            if demand.pop((id(reader), index), None) is None:
                reader.strides = [1, 1]  # a strided 1x1 convolution whose input now comes subsampled
        if layer.type == "Convolution":
            layer.strides = [a * b for a, b in zip(conv_strides(layer), stride)]
        elif layer.type == "Axpy":
            layer.subsample[1] = stride
            demand[(id(layer), 2)] = stride
        else:
            for index in range(len(layer.inputs)):
                demand[(id(layer), index)] = stride
    by_id = {id(layer): layer for layer in net.layers}
    for (layer_id, index), stride in demand.items():  # no producer took it: subsample on the edge
        by_id[layer_id].subsample[index] = stride


def subsampled(layer, inputs: list, ops) -> list:
    """The layer's inputs with the pass's 1x1 MaxPools applied."""
    plan = getattr(layer, "subsample", None)
    if not plan:
        return inputs
    result = list(inputs)
    for index, stride in sorted(plan.items()):
        result[index] = ops.max_pool(result[index], list(stride), [1, 1], [0, 0], [0, 0], [1, 1], "floor",
                                     "explicit").output(0)
    return result
