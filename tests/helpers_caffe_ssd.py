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
    return inter / (area(box) + area(boxes) - inter)


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
    rescaled on ``inputs`` so their outputs have standard deviations ``conf_std`` (logits: softmax far
    from uniform and from one-hot, some boxes above the confidence threshold) and ``loc_std``."""
    blobs = make_weights(net, seed, batch=1)
    values = reference(net, blobs, inputs)
    for layer in net.layer:
        if layer.type == "Convolution" and ("mbox_conf" in layer.name or "mbox_loc" in layer.name):
            target = conf_std if "mbox_conf" in layer.name else loc_std
            gain = target / max(float(values[layer.top[0]].std()), 1e-12)
            blobs[layer.name] = [b * gain for b in blobs[layer.name]]
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


def assert_scores_spread(rows, threshold: float, at_least: int = 3) -> None:
    """A detection output that proves something: several boxes, scores not all equal nor all ~1."""
    rows = detections(rows)
    assert len(rows) >= at_least, f"only {len(rows)} detection(s) above the threshold {threshold}"
    scores = rows[:, 2]
    assert scores.min() > threshold
    assert scores.max() < 0.99, f"scores saturated: top score {scores.max():.4f}"
    assert scores.std() > 0.01, f"scores hardly spread: std {scores.std():.4f}"
    assert len(set(rows[:, 1].astype(int))) >= 2, "detections of a single class only"
