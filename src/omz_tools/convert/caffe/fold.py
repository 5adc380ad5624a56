"""Folding per-channel BatchNorm/Scale layers, as Model Optimizer does.

A BatchNorm or a one-bottom per-channel Scale whose input is produced by a Convolution or an
InnerProduct, and read by nothing else, is folded into that layer's weights and bias (exact up to
float rounding: a * (W x + c) + b = (a W) x + (a c + b)). A run of them with no such producer
becomes one Multiply and one Add. This keeps the IR's operations and parameter count equal to
Model Optimizer's (a conv + BatchNorm + Scale costs its weights plus one bias per channel).
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, List, Set

from .layers import is_channel_affine
from .reader import Layer, Net, Version

FOLD_INTO = ("Convolution", "InnerProduct")


def fold(net: Net, keep: Iterable[Version]) -> None:
    """Fold in place (structure only; the translators compute the merged weights).
    ``keep``: versions that must stay visible (requested outputs)."""
    keep: Set[Version] = set(keep)
    readers = Counter(v for layer in net.layers for v in layer.inputs)
    by_input = {}
    for layer in net.layers:
        for v in layer.inputs:
            by_input.setdefault(v, []).append(layer)
    removed = set()
    result: List[Layer] = []
    for layer in net.layers:
        if id(layer) in removed:
            continue
        weighted = layer.type in FOLD_INTO and len(layer.outputs) == 1
        if not weighted and not is_channel_affine(layer):
            result.append(layer)
            continue
        chain = [] if weighted else [layer]
        tail = layer
        while True:
            out = tail.outputs[0]
            followers = by_input.get(out, [])
            if out in keep or readers[out] != 1 or len(followers) != 1 or not is_channel_affine(followers[0]):
                break
            tail = followers[0]
            chain.append(tail)
            removed.add(id(tail))
        if weighted and not chain:
            result.append(layer)
            continue
        merged = layer if weighted else Layer(name=tail.name, type="ChannelAffine", bottoms=layer.bottoms,
                                              tops=tail.tops, proto=layer.proto, inputs=layer.inputs)
        merged.fold_chain = chain
        merged.outputs = list(tail.outputs)
        merged.tops = list(tail.tops)
        result.append(merged)
    net.layers = result
