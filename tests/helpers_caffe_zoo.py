"""Small stand-ins for the built-in Caffe zoo (models/public/*), for converting every built-in Caffe
model natively in CI without its real weights.

A stand-in keeps what the model's registry entry fixes: the input name and shape of its Model
Optimizer arguments, the layer types the model uses, the output names of ``--output`` (and the
shapes of its model card), the file names and archive layout, and text its postprocessing
rewrites. What it shrinks is the channel count: the upstream prototxt where ../shared has one
(8 models, and their families: densenet-121 stands in for densenet-161/169/201, se-resnet-101 for
se-resnet-50/152, se-resnext-50 for se-resnext-101, squeezenet1.1 for squeezenet1.0) with every
width divided by 16; else a small net written here. Weights are random and well scaled
(helpers_caffe / helpers_caffe_ssd).
"""

from __future__ import annotations

import io
import math
import re
import tarfile
from pathlib import Path

import helpers_caffe
import helpers_caffe_ssd  # noqa: F401 - registers the SSD layers' numpy references
from helpers_caffe import parse_prototxt
from helpers_caffe_ssd import conv_relu, layer, ssd_net, ssd_weights

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
UPSTREAM = {  # model -> the upstream prototxt in ../shared it stands on
    "mobilenet-ssd": "caffe_zoo/mobilenet-ssd/mobilenet-ssd.prototxt",
    "mtcnn-p": "caffe_zoo/mtcnn-p/mtcnn-p.prototxt",
    "densenet-121": "caffe_zoo/densenet-121/densenet-121.prototxt",
    "squeezenet1.1": "caffe_zoo/squeezenet1.1/squeezenet1.1.prototxt",
    "googlenet-v1": "caffe_zoo/googlenet-v1/googlenet-v1.prototxt",
    "se-resnext-50": "caffe_zoo/se-resnext-50/se-resnext-50.prototxt",
    "Sphereface": "caffe_zoo/Sphereface/Sphereface.prototxt",
    "se-resnet-101": "se-resnet-101/SE-ResNet-101.prototxt",
}
FAMILY = {"densenet-161": "densenet-121", "densenet-169": "densenet-121", "densenet-201": "densenet-121",
          "se-resnet-50": "se-resnet-101", "se-resnet-152": "se-resnet-101", "se-resnext-101": "se-resnext-50",
          "squeezenet1.0": "squeezenet1.1"}
KEEP_WIDTHS = {1000, 1001}  # class counts stay, so outputs keep their shapes
# The detectors' DetectionOutput: up to 200 boxes, as the real ssd300/ssd512/pelee/face detectors keep.
DETECTION = ("share_location: true background_label_id: 0 nms_param { nms_threshold: 0.45 top_k: 400 } "
             "code_type: CENTER_SIZE keep_top_k: 200 confidence_threshold: 0.01")


def upstream_prototxt(model: str) -> Path:
    return SHARED / UPSTREAM[FAMILY.get(model, model)]


def _narrow(n: int) -> int:
    return max(2, n // 16) if n >= 32 and n % 8 == 0 and n not in KEEP_WIDTHS else n


def shrink(text: str, keep: set) -> str:
    """The prototxt with every Convolution/InnerProduct width divided by 16 (see _narrow), except the
    SSD heads (``*mbox*``) and layers whose tops are in ``keep``; groups follow their widths."""
    from google.protobuf import text_format
    net = parse_prototxt(text)
    for item in list(net.layer) + list(net.layers):
        if "mbox" in item.name or set(item.top) & keep:
            continue
        for param in (item.convolution_param, item.inner_product_param):
            if param.num_output:
                old, new = param.num_output, _narrow(param.num_output)
                param.num_output = new
                if getattr(param, "group", 1) > 1:
                    param.group = new if param.group == old else math.gcd(param.group, new)
    return text_format.MessageToString(net)


# -- small nets written here (real input shapes, tiny widths) -------------------------------------

def _input(shape, batch_dim10=False) -> str:
    dims = [10 if batch_dim10 else shape[0]] + list(shape[1:])
    return 'input: "data"\n' + "".join(f"input_dim: {d}\n" for d in dims)


def _conv(name, bottom, out, kernel, stride=1, pad=0, group=1, top=None) -> str:
    extra = f" group: {group}" if group > 1 else ""
    return layer(name, "Convolution", [bottom], [top or name],
                 f"convolution_param {{ num_output: {out} kernel_size: {kernel} stride: {stride} pad: {pad}{extra} }}")


def _act(name, kind, blob) -> str:
    return layer(name, kind, [blob], [blob])


def _pool(name, bottom, method="MAX", kernel=3, stride=2, pad=0, global_=False) -> str:
    spec = "global_pooling: true" if global_ else f"kernel_size: {kernel} stride: {stride} pad: {pad}"
    return layer(name, "Pooling", [bottom], [name], f"pooling_param {{ pool: {method} {spec} }}")


def _bn(name, blob) -> str:
    return (layer(f"{name}/bn", "BatchNorm", [blob], [blob], "batch_norm_param { use_global_stats: true }")
            + layer(f"{name}/scale", "Scale", [blob], [blob], "scale_param { bias_term: true }"))


def _ip(name, bottom, out, top=None) -> str:
    return layer(name, "InnerProduct", [bottom], [top or name], f"inner_product_param {{ num_output: {out} }}")


def _classifier_tail(bottom, fc="fc", prob="prob", hidden=()) -> str:
    text, blob = "", bottom
    for i, width in enumerate(hidden):
        text += _ip(f"{fc}{i + 6}", blob, width) + _act(f"relu{i + 6}", "ReLU", f"{fc}{i + 6}")
        text += layer(f"drop{i + 6}", "Dropout", [f"{fc}{i + 6}"], [f"{fc}{i + 6}"])
        blob = f"{fc}{i + 6}"
    return text + _ip(f"{fc}8", blob, 1000) + layer(prob, "Softmax", [f"{fc}8"], [prob])


def alexnet(caffenet=False) -> str:
    text = _input([1, 3, 227, 227], batch_dim10=not caffenet)
    text += _conv("conv1", "data", 8, 11, stride=4) + _act("relu1", "ReLU", "conv1")
    lrn = layer("norm1", "LRN", ["pool1" if caffenet else "conv1"], ["norm1"],
                "lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 }")
    text += (_pool("pool1", "conv1") + lrn) if caffenet else (lrn + _pool("pool1", "norm1"))
    text += _conv("conv2", "norm1" if caffenet else "pool1", 8, 5, pad=2, group=2) + _act("relu2", "ReLU", "conv2")
    text += _pool("pool2", "conv2") + _conv("conv3", "pool2", 8, 3, pad=1) + _act("relu3", "ReLU", "conv3")
    text += _conv("conv5", "conv3", 8, 3, pad=1, group=2) + _act("relu5", "ReLU", "conv5") + _pool("pool5", "conv5")
    return text + _classifier_tail("pool5", hidden=(16, 16))


def vgg(blocks) -> str:
    text, blob = _input([1, 3, 224, 224], batch_dim10=True), "data"
    for b, count in enumerate(blocks, 1):
        for i in range(1, count + 1):
            name = f"conv{b}_{i}"
            text += _conv(name, blob, 4, 3, pad=1) + _act(f"relu{b}_{i}", "ReLU", name)
            blob = name
        text += _pool(f"pool{b}", blob, kernel=2, stride=2)
        blob = f"pool{b}"
    return text + _classifier_tail(blob, hidden=(16, 16))


def googlenet_v2() -> str:
    """V1 ``layers {`` blocks with V2 type names (what the entry's postprocessing rewrites), BN-Inception."""
    text = _input([1, 3, 224, 224], batch_dim10=True)
    text += _conv("conv1", "data", 8, 7, stride=2, pad=3) + _bn("conv1", "conv1") + _act("conv1/relu", "ReLU", "conv1")
    text += _pool("pool1", "conv1")
    branches = []
    for name, kernel in (("inc/1x1", 1), ("inc/3x3", 3)):
        text += _conv(name, "pool1", 4, kernel, pad=kernel // 2) + _bn(name, name) + _act(f"{name}/relu", "ReLU", name)
        branches.append(name)
    text += _pool("inc/pool", "pool1", kernel=3, stride=1, pad=1)
    text += layer("inc/output", "Concat", branches + ["inc/pool"], ["inc/output"])
    text += _pool("pool5", "inc/output", "AVE", global_=True)
    text += _ip("loss3/classifier", "pool5", 1000) + layer("prob", "Softmax", ["loss3/classifier"], ["prob"])
    return text.replace("layer {", "layers {")


def se_inception() -> str:
    text = _input([1, 3, 224, 224])
    text += _conv("conv1", "data", 8, 7, stride=2, pad=3) + _bn("conv1", "conv1") + _act("conv1/relu", "ReLU", "conv1")
    text += _pool("pool1", "conv1")
    text += _conv("inc/1x1", "pool1", 8, 1) + _bn("inc/1x1", "inc/1x1") + _act("inc/relu", "ReLU", "inc/1x1")
    text += _conv("inc/3x3", "pool1", 8, 3, pad=1) + _bn("inc/3x3", "inc/3x3") + _act("inc/relu3", "ReLU", "inc/3x3")
    text += layer("inc/output", "Concat", ["inc/1x1", "inc/3x3"], ["inc/output"])
    text += _pool("se/pool", "inc/output", "AVE", global_=True) + _conv("se/down", "se/pool", 4, 1)
    text += _act("se/relu", "ReLU", "se/down") + _conv("se/up", "se/down", 16, 1)
    text += layer("se/prob", "Sigmoid", ["se/up"], ["se/up"])
    text += layer("se/axpy", "Axpy", ["se/up", "inc/output", "inc/output"], ["se/out"])
    text += _pool("pool5", "se/out", "AVE", global_=True)
    return text + _ip("classifier", "pool5", 1000) + layer("prob", "Softmax", ["classifier"], ["prob"])


def mobilenet(v2=False) -> str:
    text = _input([1, 3, 224, 224])
    text += _conv("conv1", "data", 8, 3, stride=2, pad=1) + _bn("conv1", "conv1") + _act("relu1", "ReLU", "conv1")
    blob = "conv1"
    for i, stride in enumerate((1, 2), 2):
        dw, pw = f"conv{i}/dw", f"conv{i}/sep"
        text += _conv(dw, blob, 8, 3, stride=stride, pad=1, group=8) + _bn(dw, dw) + _act(f"{dw}/relu", "ReLU", dw)
        text += _conv(pw, dw, 8, 1) + _bn(pw, pw)
        if v2 and stride == 1:
            text += layer(f"block{i}", "Eltwise", [blob, pw], [f"block{i}"])
            pw = f"block{i}"
        else:
            text += _act(f"{pw}/relu", "ReLU", pw)
        blob = pw
    text += _pool("pool6", blob, "AVE", global_=True) + _conv("fc7", "pool6", 1000, 1)
    return text + layer("prob", "Softmax", ["fc7"], ["prob"])


def mtcnn(stage: str) -> str:
    size, heads = {"r": (24, {"conv5-1": 2, "conv5-2": 4}), "o": (48, {"conv6-1": 2, "conv6-2": 4, "conv6-3": 10})}[stage]
    text = _input([1, 3, size, size])
    blob = "data"
    for i in range(1, 4):
        text += _conv(f"conv{i}", blob, 4, 3) + layer(f"prelu{i}", "PReLU", [f"conv{i}"], [f"conv{i}"])
        text += _pool(f"pool{i}", f"conv{i}") if i < 3 else ""
        blob = f"pool{i}" if i < 3 else f"conv{i}"
    fc = "conv4" if stage == "r" else "conv5"
    text += _ip(fc, blob, 16) + layer(f"prelu{fc}", "PReLU", [fc], [fc])
    for name, width in heads.items():
        text += _ip(name, fc, width)
    cls = next(iter(heads))
    return text + layer("prob1", "Softmax", [cls], ["prob1"])


def _ssd_body(depth: int, width: int = 8) -> tuple:
    body, blob, maps = "", "data", []
    for i in range(depth):
        name = f"c{i}"
        body += conv_relu(name, blob, width, stride=2)
        blob = name
        maps.append(name)
    return body, maps


def _prior(min_size, max_size, step) -> str:
    return (f"min_size: {min_size} max_size: {max_size} aspect_ratio: 2 flip: true clip: false variance: 0.1 "
            f"variance: 0.1 variance: 0.2 variance: 0.2 step: {step} offset: 0.5")


def ssd(size: int, save_output: str) -> str:
    body, maps = _ssd_body(6)
    body += layer("c3_norm", "Normalize", ["c3"], ["c3_norm"],
                  'norm_param { across_spatial: false channel_shared: false scale_filler { type: "constant" value: 20 } }')
    heads = [("c3_norm", _prior(size // 10, size // 5, 16), 4), ("c5", _prior(size // 5, size // 2, 64), 4)]
    return ssd_net("ssd", [1, 3, size, size], body, heads, 21, DETECTION + save_output)


SSD_SAVE = '\n    save_output_param {\n      output_directory: "out"\n    }\n'
PELEE_SAVE = ('\n    save_output_param {\n      output_directory: "out"\n      output_name_prefix: "comp4_det_test_"\n'
              '      output_format: "VOC"\n      label_map_file: "labelmap.prototxt"\n'
              '      name_size_file: "test_name_size.txt"\n      num_test_image: 5000\n    }\n')


def pelee() -> str:
    body = conv_relu("stem1", "data", 8, stride=2) + _bn("stem1", "stem1")
    body += conv_relu("stem2", "stem1", 8, stride=2)
    body += conv_relu("dense/a", "stem2", 4) + conv_relu("dense/b", "stem2", 4)
    body += layer("dense/concat", "Concat", ["dense/a", "dense/b"], ["dense/concat"])
    body += conv_relu("ext1", "dense/concat", 8, stride=2) + conv_relu("ext1/res", "ext1", 8)
    body += layer("ext1/sum", "Eltwise", ["ext1", "ext1/res"], ["ext1/sum"])
    body += conv_relu("ext2", "ext1/sum", 8, stride=2)
    heads = [("ext1/sum", _prior(30, 60, 8), 4), ("ext2", _prior(60, 120, 16), 4)]
    return ssd_net("pelee", [1, 3, 304, 304], body, heads, 81, DETECTION + PELEE_SAVE)


def face_retail() -> str:
    body = conv_relu("conv1", "data", 8, stride=2) + _pool("pool1", "conv1")
    blob = "pool1"
    for i, stride in enumerate((2, 2), 2):
        body += conv_relu(f"fire{i}/squeeze", blob, 4, kernel=1, pad=0)
        body += conv_relu(f"fire{i}/e1", f"fire{i}/squeeze", 4, kernel=1, pad=0)
        body += conv_relu(f"fire{i}/e3", f"fire{i}/squeeze", 4)
        body += layer(f"fire{i}/concat", "Concat", [f"fire{i}/e1", f"fire{i}/e3"], [f"fire{i}/concat"])
        body += _pool(f"pool{i}", f"fire{i}/concat")
        blob = f"pool{i}"
    widths = [9.4, 25.1, 14.7, 34.7, 143.0, 77.2, 128.8, 51.1, 75.6]
    heights = [15.0, 39.6, 25.5, 63.2, 227.5, 162.9, 124.5, 105.1, 72.6]
    param = " ".join(f"width: {w}" for w in widths) + " " + " ".join(f"height: {h}" for h in heights) + \
        " clip: false variance: 0.1 variance: 0.1 variance: 0.2 variance: 0.2 img_h: 300 img_w: 300 step: 16 offset: 0.5"
    return ssd_net("face", [1, 3, 300, 300], body, [(blob, param, len(widths))], 2, DETECTION,
                   priors_kind="PriorBoxClustered")


WRITTEN = {
    "alexnet": alexnet, "caffenet": lambda: alexnet(caffenet=True), "vgg16": lambda: vgg([2, 2, 3, 3, 3]),
    "vgg19": lambda: vgg([2, 2, 4, 4, 4]), "googlenet-v2": googlenet_v2, "se-inception": se_inception,
    "mobilenet-v1-1.0-224": mobilenet, "mobilenet-v2": lambda: mobilenet(v2=True),
    "mtcnn-r": lambda: mtcnn("r"), "mtcnn-o": lambda: mtcnn("o"), "pelee-coco": pelee,
    "ssd300": lambda: ssd(300, SSD_SAVE), "ssd512": lambda: ssd(512, SSD_SAVE),
    "face-detection-retail-0044": face_retail,
}


def stand_in_prototxt(model: str, outputs: set) -> str:
    """The stand-in prototxt as served (before the entry's postprocessing)."""
    if model in WRITTEN:
        return WRITTEN[model]()
    text = upstream_prototxt(model).read_text(encoding="utf-8")
    return text if model == "mtcnn-p" else shrink(text, outputs)


def postprocessed(text: str, steps) -> str:
    """``text`` after the entry's regex_replace steps (what the converter will read)."""
    for step in steps:
        if hasattr(step, "pattern"):
            text = step.pattern.sub(step.replacement, text, count=step.count)
    return text


def weights_for(prototxt_text: str, seed: int, input_shape: list, mean: float, scale: float) -> dict:
    """Random well-scaled blobs; the detection heads spread on a preprocessed image-like input."""
    net = parse_prototxt(prototxt_text)
    if any(l.type == "DetectionOutput" for l in net.layer):
        import numpy as np
        x = (helpers_caffe.image_like(input_shape, seed).astype(np.float64) - mean) / scale
        name = next(iter(helpers_caffe.net_inputs(net)))
        return ssd_weights(net, seed, {name: x})
    return helpers_caffe.make_weights(net, seed, batch=1)


def tar_gz(members: dict) -> bytes:
    """A .tar.gz holding ``{path: bytes}``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in members.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def mo_value(args: list, key: str):
    return next((a.split("=", 1)[1] for a in args if a.startswith(f"--{key}=")), None)


def preprocessing(args: list) -> tuple:
    """(mean, scale) of the entry's arguments, as single numbers for the weights' calibration."""
    mean = mo_value(args, "mean_values")
    scale = mo_value(args, "scale_values") or mo_value(args, "scale")
    mean = sum(map(float, re.findall(r"[-\d.]+", mean.split("[", 1)[1]))) / 3 if mean else 0.0
    scale = float(re.findall(r"[\d.]+", scale.split("[", 1)[-1])[0]) if scale else 1.0
    return mean, scale
