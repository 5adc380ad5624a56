"""The SSD fork's layers for the Caffe tests: numpy references written from Caffe's definitions
(``PriorBox``, ``PriorBoxClustered``, ``Normalize``, ``DetectionOutput`` with its decoding, per-class
NMS and keep_top_k), registered into ``helpers_caffe.forward``; small SSD-family test nets; weights
whose detection heads give a spread of scores; and the comparison of detections as sets.

Importing this module registers the references (``helpers_caffe.EXTRA_FORWARD``).
"""

from __future__ import annotations

import math

import numpy as np

import helpers_caffe
from helpers_caffe import make_weights, net_inputs, reference


# -- numpy references (Caffe's SSD fork) -----------------------------------------------------------

def _image_size(param, image_hw):
    if param.img_h or param.img_w:
        return float(param.img_h), float(param.img_w)
    if param.img_size:
        return float(param.img_size), float(param.img_size)
    return float(image_hw[0]), float(image_hw[1])


def _steps(param, layer_hw, img):
    if param.step_h or param.step_w:
        return float(param.step_h), float(param.step_w)
    if param.step:
        return float(param.step), float(param.step)
    return img[0] / layer_hw[0], img[1] / layer_hw[1]


def _box_sizes(param):
    """(width, height) of each prior at one location, in Caffe's order."""
    if len(param.width):  # PriorBoxClustered
        return list(zip(param.width, param.height))
    ratios = [1.0]
    for ar in param.aspect_ratio:
        if any(abs(ar - r) < 1e-6 for r in ratios):
            continue
        ratios.append(float(ar))
        if param.flip:
            ratios.append(1.0 / ar)
    sizes = []
    for s, min_size in enumerate(param.min_size):
        sizes.append((min_size, min_size))
        if len(param.max_size):
            side = math.sqrt(min_size * param.max_size[s])
            sizes.append((side, side))
        sizes += [(min_size * math.sqrt(r), min_size / math.sqrt(r)) for r in ratios if abs(r - 1) >= 1e-6]
    return sizes


def prior_box_ref(param, layer_hw, image_hw) -> np.ndarray:
    """Caffe's prior blob [1, 2, 4 * priors]: corner boxes (normalised) and their variances."""
    img = _image_size(param, image_hw)
    step_h, step_w = _steps(param, layer_hw, img)
    sizes = np.array(_box_sizes(param), dtype=np.float64)  # [k, 2]
    ys, xs = np.meshgrid(np.arange(layer_hw[0]), np.arange(layer_hw[1]), indexing="ij")
    cx = ((xs.ravel() + param.offset) * step_w)[:, None]
    cy = ((ys.ravel() + param.offset) * step_h)[:, None]
    boxes = np.stack([(cx - sizes[:, 0] / 2) / img[1], (cy - sizes[:, 1] / 2) / img[0],
                      (cx + sizes[:, 0] / 2) / img[1], (cy + sizes[:, 1] / 2) / img[0]], axis=-1).reshape(-1, 4)
    if param.clip:
        boxes = np.clip(boxes, 0.0, 1.0)
    variance = np.broadcast_to(np.array(list(param.variance) or [0.1], dtype=np.float64), boxes.shape)
    return np.stack([boxes.ravel(), variance.ravel()])[None]


def normalize_ref(x, scale, across_spatial: bool, eps: float) -> np.ndarray:
    axes = tuple(range(1, x.ndim)) if across_spatial else (1,)
    y = x / np.sqrt((x * x).sum(axis=axes, keepdims=True) + eps)
    return y * (scale.reshape(1, -1, *[1] * (x.ndim - 2)) if scale.size > 1 else scale[0])


def decode_boxes(priors, variances, loc, code_type: int, encoded: bool) -> np.ndarray:
    """Caffe's DecodeBBox for [P, 4] corner priors and [P, 4] locations (normalised boxes)."""
    v = np.ones_like(variances) if encoded else variances
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    if code_type == 1:  # CORNER
        return priors + v * loc
    if code_type == 3:  # CORNER_SIZE
        return priors + v * loc * np.stack([pw, ph, pw, ph], axis=1)
    cx = v[:, 0] * loc[:, 0] * pw + (priors[:, 0] + priors[:, 2]) / 2
    cy = v[:, 1] * loc[:, 1] * ph + (priors[:, 1] + priors[:, 3]) / 2
    w, h = np.exp(v[:, 2] * loc[:, 2]) * pw, np.exp(v[:, 3] * loc[:, 3]) * ph
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


def _iou(box, boxes):
    lo, hi = np.maximum(box[:2], boxes[:, :2]), np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    union = area(box) + area(boxes) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _nms(boxes, scores, threshold, top_k, nms_threshold):
    order = [i for i in np.argsort(-scores, kind="stable") if scores[i] > threshold]
    order = order[:top_k] if top_k > 0 else order
    kept = []
    for i in order:
        if not kept or np.all(_iou(boxes[i], boxes[kept]) <= nms_threshold):
            kept.append(i)
    return kept


def detection_output_ref(param, loc, conf, priors) -> np.ndarray:
    """Caffe's DetectionOutput (share_location, batch 1): rows [image, label, score, x0, y0, x1, y1]."""
    num = priors.shape[-1] // 4
    conf = conf.reshape(num, -1)
    prior_boxes, variances = priors[0, 0].reshape(num, 4), priors[0, 1].reshape(num, 4)
    boxes = decode_boxes(prior_boxes, variances, loc.reshape(num, 4), param.code_type,
                         param.variance_encoded_in_target)
    nms = param.nms_param
    rows = []
    for label in range(conf.shape[1]):
        if label == param.background_label_id:
            continue
        for i in _nms(boxes, conf[:, label], param.confidence_threshold, nms.top_k, nms.nms_threshold):
            rows.append([0, label, conf[i, label], *boxes[i]])
    rows.sort(key=lambda r: -r[2])
    if param.keep_top_k > -1:
        rows = rows[:param.keep_top_k]
    return np.array(rows, dtype=np.float64).reshape(1, 1, -1, 7)


def _normalize_forward(layer, xs, blobs, rng):
    p = layer.norm_param
    x = xs[0]
    scale, = blobs(lambda: [rng.uniform(10.0, 30.0, 1 if p.channel_shared else x.shape[1])])
    return [normalize_ref(x, scale, p.across_spatial, p.eps)]


def _prior_forward(layer, xs, blobs, rng):
    return [prior_box_ref(layer.prior_box_param, xs[0].shape[2:], xs[1].shape[2:])]


def _detection_forward(layer, xs, blobs, rng):
    return [detection_output_ref(layer.detection_output_param, xs[0][:1], xs[1][:1], xs[2])]


helpers_caffe.EXTRA_FORWARD.update({"Normalize": _normalize_forward, "PriorBox": _prior_forward,
                                    "PriorBoxClustered": _prior_forward, "DetectionOutput": _detection_forward})


# -- weights with a spread of detection scores ----------------------------------------------------

def ssd_weights(net, seed: int, inputs: dict, *, conf_std: float = 2.5, loc_std: float = 0.7) -> dict:
    """``make_weights`` with the detection heads (convolutions named ``*mbox_conf``/``*mbox_loc``)
    centred and rescaled on ``inputs``: each output channel gets mean 0 (no class wins everywhere by
    its offset alone; maps of 4 locations or more) and the head's outputs standard deviation ``conf_std`` (logits: softmax far
    from uniform and from one-hot, some boxes above the confidence threshold) or ``loc_std``."""
    blobs = make_weights(net, seed, batch=1)
    values = reference(net, blobs, inputs)
    for layer in net.layer:
        if layer.type == "Convolution" and ("mbox_conf" in layer.name or "mbox_loc" in layer.name):
            target = conf_std if "mbox_conf" in layer.name else loc_std
            out = values[layer.top[0]]
            # (a map of a few locations keeps its offsets: centring would leave nothing)
            means = out.mean(axis=(0, 2, 3)) if out.shape[2] * out.shape[3] >= 4 else np.zeros(out.shape[1])
            gain = target / max(float((out - means.reshape(1, -1, 1, 1)).std()), 1e-12)
            weights, bias = blobs[layer.name]
            blobs[layer.name] = [weights * gain, (bias - means) * gain]
    return blobs


def preprocessed(net, seed: int, mean: float, scale: float) -> dict:
    """Image-like inputs after the MO preprocessing (x - mean) / scale: what the reference runs on."""
    return {name: (helpers_caffe.image_like(shape, seed).astype(np.float64) - mean) / scale
            for name, shape in net_inputs(net).items()}


# -- comparing detections -------------------------------------------------------------------------

def detections(output) -> np.ndarray:
    """The rows of a [1, 1, N, 7] DetectionOutput up to the first image id -1 (OpenVINO's end mark)."""
    rows = np.asarray(output, dtype=np.float64).reshape(-1, 7)
    end = np.flatnonzero(rows[:, 0] < 0)
    return rows[:end[0]] if end.size else rows


def assert_same_detections(got, want, tol: float = 1e-4) -> float:
    """Same count, and each wanted row matched by one row with its label, score and box within ``tol``.
    Returns the largest difference of a matched pair."""
    got, want = detections(got), detections(want)
    assert len(got) == len(want), f"{len(got)} detections, expected {len(want)}"
    free = list(range(len(got)))
    worst = 0.0
    for row in want:
        diffs = [float(np.abs(got[i, 2:] - row[2:]).max()) if got[i, 1] == row[1] and got[i, 0] == row[0]
                 else math.inf for i in free]
        best = int(np.argmin(diffs)) if diffs else -1
        assert best >= 0 and diffs[best] <= tol, \
            f"no detection matches {row.tolist()} within {tol} (closest differs by {min(diffs, default=math.inf)})"
        worst = max(worst, diffs[best])
        free.pop(best)
    return worst


def assert_scores_spread(rows, threshold: float, at_least: int = 3, classes: int = 2) -> None:
    """A detection output that proves something: several boxes, scores not all equal nor all ~1."""
    rows = detections(rows)
    assert len(rows) >= at_least, f"only {len(rows)} detection(s) above the threshold {threshold}"
    scores = rows[:, 2]
    assert scores.min() > threshold
    assert scores.max() < 0.99, f"scores saturated: top score {scores.max():.4f}"
    assert scores.std() > 0.01, f"scores hardly spread: std {scores.std():.4f}"
    assert len(set(rows[:, 1].astype(int))) >= classes, f"detections of fewer than {classes} classes"


# -- SSD-family test nets --------------------------------------------------------------------------

def layer(name, kind, bottoms, tops, params=""):
    b = "".join(f' bottom: "{x}"' for x in bottoms)
    t = "".join(f' top: "{x}"' for x in tops)
    return f'layer {{ name: "{name}" type: "{kind}"{b}{t} {params} }}\n'


def conv_relu(name, bottom, out, kernel=3, stride=1, pad=1):
    return layer(name, "Convolution", [bottom], [name], "convolution_param { num_output: %d kernel_size: %d "
                 "stride: %d pad: %d }" % (out, kernel, stride, pad)) + layer(f"{name}_relu", "ReLU", [name], [name])


def _head(source, priors_kind, prior_param, num_priors, classes):
    """One SSD head on ``source``: loc/conf convolutions, Permute + Flatten, and the priors."""
    text = ""
    for part, width in (("loc", 4), ("conf", classes)):
        name = f"{source}_mbox_{part}"
        text += layer(name, "Convolution", [source], [name],
                      "convolution_param { num_output: %d kernel_size: 3 pad: 1 }" % (num_priors * width))
        text += layer(f"{name}_perm", "Permute", [name], [f"{name}_perm"],
                      "permute_param { order: 0 order: 2 order: 3 order: 1 }")
        text += layer(f"{name}_flat", "Flatten", [f"{name}_perm"], [f"{name}_flat"], "flatten_param { axis: 1 }")
    return text + layer(f"{source}_mbox_priorbox", priors_kind, [source, "data"], [f"{source}_mbox_priorbox"],
                        "prior_box_param { %s }" % prior_param)


def ssd_net(name, shape, body, heads, classes, detection_param, priors_kind="PriorBox"):
    """A net: input ``shape``, ``body`` (layers), one head per (blob, prior_box_param text, priors per
    location), the concatenations, the conf Reshape/Softmax(axis 2)/Flatten, and ``detection_out``."""
    text = f'name: "{name}"\ninput: "data"\ninput_shape {{ %s }}\n' % " ".join(f"dim: {d}" for d in shape) + body
    for source, param, count in heads:
        text += _head(source, priors_kind, param, count, classes)
    sources = [h[0] for h in heads]
    for part, axis in (("loc", 1), ("conf", 1), ("priorbox", 2)):
        tops = [f"{s}_mbox_{part}" + ("" if part == "priorbox" else "_flat") for s in sources]
        text += layer(f"mbox_{part}", "Concat", tops, [f"mbox_{part}"], "concat_param { axis: %d }" % axis)
    text += layer("mbox_conf_reshape", "Reshape", ["mbox_conf"], ["mbox_conf_reshape"],
                  "reshape_param { shape { dim: 0 dim: -1 dim: %d } }" % classes)
    text += layer("mbox_conf_softmax", "Softmax", ["mbox_conf_reshape"], ["mbox_conf_softmax"],
                  "softmax_param { axis: 2 }")
    text += layer("mbox_conf_flatten", "Flatten", ["mbox_conf_softmax"], ["mbox_conf_flatten"],
                  "flatten_param { axis: 1 }")
    return text + layer("detection_out", "DetectionOutput", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"],
                        ["detection_out"], "detection_output_param { num_classes: %d %s }" % (classes, detection_param))


_DETECTION = ("share_location: true background_label_id: 0 nms_param { nms_threshold: 0.45 top_k: 400 } "
              "code_type: CENTER_SIZE keep_top_k: %d confidence_threshold: %g")

# Like face-detection-retail-0044's head: clustered priors (widths/heights from k-means) on one map,
# two classes (background, face), the image size given explicitly.
CLUSTERED_SHAPE = [1, 3, 96, 96]
CLUSTERED_THRESHOLD = 0.75


def clustered_net() -> str:
    body = conv_relu("c1", "data", 16, stride=2) + conv_relu("c2", "c1", 32, stride=2) + \
        conv_relu("c3", "c2", 32, stride=2)
    widths = [9.4, 25.1, 14.7, 34.7, 143.0]
    heights = [15.0, 39.6, 25.5, 63.2, 227.5]
    param = " ".join(f"width: {w}" for w in widths) + " " + " ".join(f"height: {h}" for h in heights) + \
        " clip: false variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 img_h: 96 img_w: 96 step: 8 offset: 0.5"
    return ssd_net("clustered", CLUSTERED_SHAPE, body, [("c3", param, len(widths))], 2,
                   _DETECTION % (-1, CLUSTERED_THRESHOLD), priors_kind="PriorBoxClustered")  # keep all


# Like ssd300: conv4_3-style Normalize (per-channel scale) on the first map, PriorBox with min and max
# sizes, flip, clip, one or two aspect ratios and an explicit step on four maps, priors concatenated.
SSD300_SHAPE = [1, 3, 96, 96]
SSD300_THRESHOLD = 0.65
SSD300_CLASSES = 5


def ssd300_head_net() -> str:
    body = conv_relu("c1", "data", 16, stride=2) + conv_relu("c2", "c1", 32, stride=2)
    body += layer("c2_norm", "Normalize", ["c2"], ["c2_norm"],
                  'norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 20 } }')
    body += conv_relu("c3", "c2", 32, stride=2) + conv_relu("c4", "c3", 32, stride=2) + \
        conv_relu("c5", "c4", 32, pad=0)

    def prior(min_size, max_size, ratios, step):
        return f"min_size: {min_size} max_size: {max_size} " + "".join(f"aspect_ratio: {r} " for r in ratios) + \
            f"flip: true clip: true variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 step: {step} offset: 0.5"
    heads = [("c2_norm", prior(10, 20, [2], 4), 4), ("c3", prior(20, 40, [2, 3], 8), 6),
             ("c4", prior(40, 70, [2, 3], 16), 6), ("c5", prior(70, 96, [2], 24), 4)]
    return ssd_net("ssd300_head", SSD300_SHAPE, body, heads, SSD300_CLASSES, _DETECTION % (200, SSD300_THRESHOLD))
