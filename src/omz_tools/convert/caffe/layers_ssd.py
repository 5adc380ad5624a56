"""Translators of the SSD fork's layers: ``PriorBox``, ``PriorBoxClustered``, ``DetectionOutput``, ``Normalize``.

Semantics are Caffe's (the SSD fork, and Intel's fork for ``PriorBoxClustered``), in the form Model
Optimizer gives them: a prior-box layer becomes OpenVINO's PriorBox-8 / PriorBoxClustered-1 on the
feature map's and the image's spatial sizes (constants here: shapes are static), unsqueezed to
Caffe's ``[1, 2, 4 * priors]``; ``DetectionOutput`` becomes DetectionOutput-8 on the flattened
locations and confidences and those priors; ``Normalize`` becomes NormalizeL2 (eps added, as Caffe
does) times its scale blob. Where Caffe means something OpenVINO's operation cannot say (different
vertical and horizontal steps, adaptive NMS), the layer is refused in one message.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from .opset import ops
from .translate_base import const, shape_of

CODE_TYPES = {1: "CORNER", 2: "CENTER_SIZE", 3: "CORNER_SIZE"}


def _spatial_sizes(ctx, layer, inputs, param):
    """(feature map [h, w], image [h, w]): the image's from img_size/img_h/img_w if given, as Caffe does."""
    if len(inputs) != 2:
        raise ctx.fail(layer, f"expected 2 bottoms (the feature map and the image), found {len(inputs)}")
    feature, image = shape_of(inputs[0]), shape_of(inputs[1])
    if len(feature) != 4 or len(image) != 4:
        raise ctx.fail(layer, f"expected 4-D bottoms, found shapes {feature} and {image}")
    if param.HasField("img_h") or param.HasField("img_w"):
        image_hw = [int(param.img_h), int(param.img_w)]
    elif param.HasField("img_size"):
        image_hw = [int(param.img_size)] * 2
    else:
        image_hw = image[2:]
    if min(image_hw) <= 0:
        raise ctx.fail(layer, f"expected a positive image size, found img_h {image_hw[0]}, img_w {image_hw[1]}")
    return feature[2:], image_hw


def _step(ctx, layer, param):
    """The one step OpenVINO's PriorBox takes (0: image size / feature map size, per axis)."""
    if param.HasField("step_h") or param.HasField("step_w"):
        if param.step_h != param.step_w:
            raise ctx.fail(layer, f"step_h {param.step_h:g} differs from step_w {param.step_w:g}; OpenVINO's "
                                  "PriorBox takes one step for both axes")
        return float(param.step_h)
    return float(param.step)


def _variance(ctx, layer, param):
    variance = [float(v) for v in param.variance] or [0.1]  # Caffe's default
    if len(variance) not in (1, 4):
        raise ctx.fail(layer, f"expected 1 or 4 variance values, found {len(variance)}")
    return variance


def _unsqueezed(priors):
    """Caffe's prior blob is [1, 2, 4 * priors]: OpenVINO's [2, 4 * priors] with a leading axis."""
    return ops.unsqueeze(priors, const([0], np.int64))


def prior_box(ctx, layer, inputs):
    p = layer.proto.prior_box_param
    layer_hw, image_hw = _spatial_sizes(ctx, layer, inputs, p)
    step = _step(ctx, layer, p)
    if not len(p.min_size) and not len(p.fixed_size):
        raise ctx.fail(layer, "expected at least one min_size (or fixed_size), found none")
    if len(p.max_size) and len(p.max_size) != len(p.min_size):
        raise ctx.fail(layer, f"expected one max_size per min_size ({len(p.min_size)}), found {len(p.max_size)}")
    if step == 0 and p.offset != 0.5:
        # OpenVINO places centres at (i + 0.5) * (image / map) when no step is given; Caffe at
        # (i + offset) * step: say the step, then the offset counts.
        steps = {image_hw[0] / layer_hw[0], image_hw[1] / layer_hw[1]}
        if len(steps) != 1:
            raise ctx.fail(layer, f"offset {p.offset:g} with different vertical and horizontal steps "
                                  f"({sorted(steps)}) from image {image_hw} and map {layer_hw}")
        step = steps.pop()
    attrs = {
        "min_size": [float(v) for v in p.min_size], "max_size": [float(v) for v in p.max_size],
        "aspect_ratio": [float(v) for v in p.aspect_ratio], "flip": bool(p.flip), "clip": bool(p.clip),
        "step": step, "offset": float(p.offset), "variance": _variance(ctx, layer, p), "scale_all_sizes": True,
    }
    for name in ("density", "fixed_size", "fixed_ratio"):
        if len(getattr(p, name)):
            attrs[name] = [float(v) for v in getattr(p, name)]
    priors = ops.prior_box(const(layer_hw, np.int64), const(image_hw, np.int64), attrs)
    return [_unsqueezed(priors)]


def prior_box_clustered(ctx, layer, inputs):
    p = layer.proto.prior_box_param
    layer_hw, image_hw = _spatial_sizes(ctx, layer, inputs, p)
    if len(p.width) != len(p.height) or not len(p.width):
        raise ctx.fail(layer, f"expected as many widths as heights (at least one), found {len(p.width)} "
                              f"width(s) and {len(p.height)} height(s)")
    if p.HasField("step_h") or p.HasField("step_w"):
        step_h, step_w = float(p.step_h), float(p.step_w)
    else:
        step_h = step_w = float(p.step)
    # The IR's attribute names (the node factory reads those, not the Python docstring's widths/heights)
    attrs = {
        "width": [float(v) for v in p.width], "height": [float(v) for v in p.height], "clip": bool(p.clip),
        "step_w": step_w, "step_h": step_h, "offset": float(p.offset), "variance": _variance(ctx, layer, p),
    }
    priors = ops.prior_box_clustered(const(layer_hw, np.int64), const(image_hw, np.int64), attrs)
    return [_unsqueezed(priors)]


def _detection_attrs(ctx, layer, num_priors: int) -> dict:
    p = layer.proto.detection_output_param
    nms = p.nms_param
    if nms.eta != 1:
        raise ctx.fail(layer, f"nms_param.eta {nms.eta:g} (adaptive NMS): OpenVINO's DetectionOutput has a fixed "
                              "NMS threshold (eta 1)")
    if p.code_type not in CODE_TYPES:
        raise ctx.fail(layer, f"code_type {p.code_type}: expected CORNER, CENTER_SIZE or CORNER_SIZE")
    attrs = {
        "num_classes": int(p.num_classes), "background_label_id": int(p.background_label_id),
        "top_k": int(nms.top_k) if nms.top_k else -1,
        "variance_encoded_in_target": bool(p.variance_encoded_in_target),
        # Caffe's -1 (keep all) as Model Optimizer writes it: every prior
        "keep_top_k": [int(p.keep_top_k) if p.keep_top_k != -1 else num_priors],
        "code_type": f"caffe.PriorBoxParameter.{CODE_TYPES[p.code_type]}",
        "share_location": bool(p.share_location), "nms_threshold": float(nms.nms_threshold),
        "confidence_threshold": float(p.confidence_threshold), "clip_after_nms": False, "clip_before_nms": False,
        "decrease_label_id": False, "normalized": bool(p.normalized),
        "input_height": int(p.input_height) if p.HasField("input_height") else 1,
        "input_width": int(p.input_width) if p.HasField("input_width") else 1,
        "objectness_score": float(p.objectness_score),
    }
    return attrs


def detection_output(ctx, layer, inputs):
    if len(inputs) not in (3, 5):
        raise ctx.fail(layer, f"expected 3 bottoms (locations, confidences, priors) or 5 (and the ARM's "
                              f"confidences and locations), found {len(inputs)}")
    loc, conf, priors = inputs[:3]
    prior_dims = shape_of(priors)
    size = 4 if layer.proto.detection_output_param.normalized else 5
    if len(prior_dims) != 3 or prior_dims[-1] % size:
        raise ctx.fail(layer, f"expected priors of shape [N, 1 or 2, {size} * priors], found {prior_dims}")
    num_priors = prior_dims[-1] // size
    attrs = _detection_attrs(ctx, layer, num_priors)
    classes = attrs["num_classes"]
    loc_width = 4 * (1 if attrs["share_location"] else classes)
    for what, x, width in (("locations", loc, loc_width), ("confidences", conf, classes)):
        count = int(np.prod(shape_of(x)[1:], dtype=np.int64))
        if count != num_priors * width:
            raise ctx.fail(layer, f"expected {num_priors} x {width} {what} per image for {num_priors} priors and "
                                  f"num_classes {classes}, found {count} (shape {shape_of(x)})")
    inputs = [ops.reshape(x, const([0, -1], np.int64), True) if len(shape_of(x)) != 2 else x
              for x in (loc, conf, *inputs[3:])]
    loc, conf, extra = inputs[0], inputs[1], inputs[2:]
    attrs.pop("num_classes")  # DetectionOutput-8 reads the classes from the shapes
    return [ops.detection_output(loc, conf, priors, attrs, *extra)]


def normalize(ctx, layer, inputs):
    x, = inputs
    p = layer.proto.norm_param
    dims = shape_of(x)
    if len(dims) not in (2, 3, 4):
        raise ctx.fail(layer, f"expected a 2-D to 4-D input, found shape {dims}")
    axes = [1] if not p.across_spatial else list(range(1, len(dims)))
    y = ops.normalize_l2(x, const(axes, np.int64), float(p.eps), "add")
    channels = dims[1]
    scale = ctx.blob(layer, 0, [1] if p.channel_shared else [channels], "the scale")
    if not p.channel_shared:
        scale = scale.reshape([1, channels] + [1] * (len(dims) - 2))
    return [ops.multiply(y, const(scale))]


TRANSLATORS: Dict[str, Callable] = {
    "PriorBox": prior_box, "PriorBoxClustered": prior_box_clustered, "DetectionOutput": detection_output,
    "Normalize": normalize,
}
