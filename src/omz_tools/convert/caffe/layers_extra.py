"""Element-wise activations beyond layers.py's, one translator each, merged into ``layers.TRANSLATORS``.

Semantics are Caffe's (and Model Optimizer's Caffe extractors agree): ReLU6 is min(max(x, 0), 6)
(MO's Clamp), ELU is x for x > 0 else alpha * (exp(x) - 1) (``elu_param.alpha``, default 1), AbsVal
is |x|, BNLL is log(1 + exp(x)) (SoftPlus). Model Optimizer 2024.6 has no extractor for AbsVal and
BNLL (it calls them custom layers); the numpy reference is their oracle.
"""

from __future__ import annotations

from typing import Callable, Dict

from .opset import ops


def relu6(ctx, layer, inputs):
    return [ops.clamp(inputs[0], 0.0, 6.0)]


def elu(ctx, layer, inputs):
    alpha = float(layer.proto.elu_param.alpha) if layer.proto.HasField("elu_param") else 1.0
    return [ops.elu(inputs[0], alpha)]


def abs_val(ctx, layer, inputs):
    return [ops.abs(inputs[0])]


def bnll(ctx, layer, inputs):
    return [ops.softplus(inputs[0])]


TRANSLATORS: Dict[str, Callable] = {"ReLU6": relu6, "ELU": elu, "AbsVal": abs_val, "BNLL": bnll}
